"""In a real browser: log in as the admin `init` printed, see the home page, log out; the login
survives a refresh, a second tab, a typed deep link and a server restart; a deep link opened
while logged out returns to its page after login; logout then refresh shows the login form."""

from __future__ import annotations

import signal
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, restart, run_cli

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
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    expect(page.get_by_role("heading", name="Plant overview")).to_have_count(0)
    page.reload()  # the ended session's cookie logs no one in
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    expect(page).to_have_url(f"{server.url}/session/login?next=%2F")


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


def test_a_deep_link_returns_after_login_and_the_login_survives_refresh_tabs_and_restart(
    server: Server, page: Page
) -> None:
    vic = run_cli(server, "user", "add", "vic", "--role", "viewer")
    page.goto(f"{server.url}/trends?period=30d")  # a link a colleague sent, while logged out
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.get_by_label("Username").fill("vic")
    page.get_by_label("Password", exact=True).fill(vic["password"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Trends")).to_be_visible()
    expect(page).to_have_url(f"{server.url}/trends?period=30d")

    page.reload()
    expect(page.get_by_role("heading", name="Trends")).to_be_visible()
    second = page.context.new_page()
    second.goto(f"{server.url}/")  # a second tab, typed
    expect(second.get_by_role("heading", name="Plant overview")).to_be_visible()
    restart(server)
    page.reload()
    expect(page.get_by_role("heading", name="Trends")).to_be_visible()
    # A viewer's typed URL for a page the role lacks shows no such page.
    second.goto(f"{server.url}/admin")
    expect(second.get_by_role("heading", name="Administration")).to_have_count(0)

    cookie = next(c for c in page.context.cookies() if c["name"] == "defectlens_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    second.reload()  # logout ends the session for every tab of the browser
    expect(second.get_by_role("button", name="Log in")).to_be_visible()


def test_a_password_reset_logs_the_user_out_everywhere(server: Server, page: Page) -> None:
    rita = run_cli(server, "user", "add", "rita", "--role", "reviewer")
    page.goto(server.url)
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password", exact=True).fill(rita["password"])
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Plant overview")).to_be_visible()
    run_cli(server, "user", "reset-password", "rita")
    page.reload()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
