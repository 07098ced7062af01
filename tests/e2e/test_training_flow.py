"""In a real browser: an engineer launches a 1-epoch job on a tiny dataset and sees it finish
(the worker started by `defectlens run` trains it); a reviewer cannot open the training page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import write_tiny_dataset
from tests.e2e.conftest import Server, login, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_engineer_launches_job_and_sees_it_finish(
    server: Server, page: Page, tmp_path: Path
) -> None:
    eng = run_cli(server, "user", "add", "erin", "--role", "engineer")
    ds = run_cli(
        server,
        "dataset",
        "import",
        str(write_tiny_dataset(tmp_path / "tiny")),
        "--name",
        "tiny parts",
    )
    login(page, server, "erin", eng["password"])
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Training", exact=True).click()
    expect(page.get_by_role("heading", name="Training")).to_be_visible()
    page.get_by_role("tab", name="Launch a job").click()
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("1")
    size = page.get_by_role("spinbutton", name="Image size (px)")
    size.fill("32")
    page.get_by_role("button", name="Queue training job").click()
    expect(page.get_by_text("queued; a worker picks it up")).to_be_visible()
    page.get_by_role("tab", name="Jobs").click()
    # The live view refreshes itself every 2 s; no reload.
    # The job's own status line: the job table (a canvas grid) holds "succeeded" too, in an
    # accessibility cell that is never visible, and it may come first in the page.
    expect(page.get_by_text(re.compile(r"^Job #\d+: succeeded$"))).to_be_visible(timeout=180_000)
    models = run_cli(server, "models", "list")["models"]
    assert len(models) == 1 and models[0]["dataset_id"] == ds["id"]


def test_reviewer_cannot_open_training_page(server: Server, page: Page) -> None:
    rev = run_cli(server, "user", "add", "rex", "--role", "reviewer")
    login(page, server, "rex", rev["password"])
    # Each negative check follows a positive wait, so it runs against a rendered page.
    expect(
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Review", exact=True)
    ).to_be_visible()
    expect(
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Training", exact=True)
    ).to_have_count(0)
    page.goto(f"{server.url}/training")
    # Typing the URL loads the app afresh and keeps the login (the session cookie); the page is
    # not in the reviewer's navigation, so Streamlit says "Page not found" and shows the main page.
    expect(page.get_by_role("dialog", name="Page not found")).to_be_visible()
    expect(
        page.get_by_test_id("stSidebarNav").get_by_role("link", name="Review", exact=True)
    ).to_be_visible()  # still logged in
    expect(page.get_by_role("heading", name="Training")).to_have_count(0)
