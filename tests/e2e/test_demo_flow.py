"""In a real browser with a (small) demo seeded: the admin sees the demo banner and a living
Trends page, then removes the demo on the Administration page and the dashboard is empty again."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, login, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_admin_sees_the_demo_and_removes_it(server: Server, page: Page) -> None:
    made = run_cli(server, "demo", "--days", "12", "--parts-per-shift", "3", "--per-class", "12",
                   "--epochs", "2")  # fmt: skip
    assert made["inspections"] > 100 and made["models"] == 2
    login(page, server, server.admin, server.password)
    expect(page.get_by_text("Demo data: generated parts on three lines")).to_be_visible()
    expect(page.get_by_text("Line 2").first).to_be_visible()  # the Overview lists the lines
    page.goto(f"{server.url}/trends?period=30d")
    expect(page.get_by_role("heading", name="Trends")).to_be_visible()
    expect(page.get_by_text("Recent flagged parts")).to_be_visible()
    expect(page.get_by_text("No inspections in this period")).to_have_count(0)

    page.goto(f"{server.url}/admin")
    page.get_by_role("tab", name="Demo data").click()
    page.get_by_text("Yes, remove all demo data").click()
    page.get_by_role("button", name="Remove demo data").click()
    expect(page.get_by_text("Removed")).to_be_visible()
    page.goto(f"{server.url}/")
    expect(page.get_by_role("heading", name="Plant overview")).to_be_visible()
    expect(page.get_by_text("Demo data: generated parts on three lines")).to_have_count(0)
    left = run_cli(server, "demo", "--remove")
    assert sum(left["removed"].values()) == 0
    assert page.get_by_text("Traceback").count() == 0
