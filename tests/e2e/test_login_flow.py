"""In a real browser: log in as the admin `init` printed, see the home page, log out."""

from __future__ import annotations

import signal
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _login(page: Page, server: Server, username: str, password: str) -> None:
    page.goto(server.url)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()


def test_health_endpoint(server: Server) -> None:
    with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=5) as resp:
        assert resp.read().decode().strip() == "ok"


def test_admin_logs_in_sees_home_and_logs_out(server: Server, page: Page) -> None:
    _login(page, server, server.admin, server.password)
    expect(page.get_by_role("heading", name="Plant overview")).to_be_visible()
    expect(page.get_by_text("Administration")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_role("heading", name="Plant overview")).to_have_count(0)


def test_wrong_password_is_refused(server: Server, page: Page) -> None:
    _login(page, server, server.admin, "not-the-password")
    expect(page.get_by_text("Wrong username or password.")).to_be_visible()
    expect(page.get_by_role("heading", name="Plant overview")).to_have_count(0)


def test_admin_page_url_is_guarded_without_login(server: Server, page: Page) -> None:
    page.goto(f"{server.url}/admin")
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page.get_by_role("heading", name="Administration")).to_have_count(0)


def test_sigterm_stops_the_server_cleanly(server: Server) -> None:
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=20) == 0
