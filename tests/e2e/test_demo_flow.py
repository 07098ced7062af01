"""In a real browser with a (small) demo seeded: the admin sees the demo banner and a living
Trends page, then removes the demo on the Administration page and the dashboard is empty again.
A first `defectlens run` on an empty database seeds the demo while the dashboard is usable; a
stop half-way is rebuilt at the next start."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from core.config import load_settings
from core.demo import status
from tests.e2e.conftest import (
    CHROMIUM_FLAGS,
    Server,
    _cli,
    _free_port,
    _serve,
    _stop,
    chromium_path,
    login,
    run_cli,
)

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


def _demo_state(home: Path) -> dict:  # type: ignore[type-arg]
    try:
        return dict(json.loads((home / "demo.json").read_text()))
    except (OSError, ValueError):
        return {}


def _wait_for(check, what: str, log: Path, timeout: float = 90) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def test_a_first_start_seeds_the_demo_beside_a_usable_dashboard_and_a_stop_is_rebuilt(
    tmp_path: Path,
) -> None:
    home, log = tmp_path / "home", tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEFECTLENS_")}
    env["DEFECTLENS_HOME"] = str(home)
    creds = json.loads(subprocess.run([_cli(), "init", "--json"], env=env, check=True,
                                      capture_output=True).stdout)  # fmt: skip
    port = _free_port()
    proc = _serve(home, port, log, demo=True)  # an empty database: `run` seeds the demo
    _wait_for(lambda: _demo_state(home).get("state") == "preparing", "the seeding", log)
    first_pid = _demo_state(home)["pid"]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True,
                                     args=CHROMIUM_FLAGS)  # fmt: skip
        page = browser.new_page()
        page.set_default_timeout(60_000)
        page.goto(f"http://127.0.0.1:{port}")
        page.get_by_label("Username").fill(creds["admin"])
        page.get_by_label("Password", exact=True).fill(creds["password"])
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", name="Plant overview")).to_be_visible()
        expect(page.get_by_text("The demo is being prepared")).to_be_visible()
        expect(page.get_by_test_id("stException")).to_have_count(0)
        browser.close()

    _stop(proc)  # Ctrl-C / SIGTERM stops the seeding with the server
    _wait_for(lambda: status.interrupted(load_settings(env)), "the seeding to stop", log, 20)
    proc = _serve(home, port, log, demo=True)  # the next start rebuilds the unfinished demo
    try:

        def rebuilding() -> bool:
            state = _demo_state(home)
            return state.get("state") == "preparing" and state.get("pid") not in (None, first_pid)

        _wait_for(rebuilding, "the rebuild", log)
    finally:
        _stop(proc)
