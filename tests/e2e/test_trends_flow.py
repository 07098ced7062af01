"""In a real browser: a viewer opens Trends, changes the period, and the choice lands in the
URL's query string (so the view can be bookmarked and sent on)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, login, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_viewer_changes_the_period_and_the_url_keeps_it(server: Server, page: Page) -> None:
    vic = run_cli(server, "user", "add", "vic", "--role", "viewer")
    login(page, server, "vic", vic["password"])
    page.get_by_role("link", name="Trends").click()
    expect(page.get_by_role("heading", name="Trends")).to_be_visible()
    expect(page.get_by_text("No inspections in this period")).to_be_visible()
    page.get_by_label("Period").click()  # Streamlit's select box opens a list of options
    page.get_by_role("option", name="30d").click()
    expect(page).to_have_url(re.compile(r"[?&]period=30d"))
    expect(page.get_by_text("by day.")).to_be_visible()  # 30 days are drawn by day
