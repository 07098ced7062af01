"""In a real browser: a reviewer uploads part images, opens a result, and reviews a flagged
part; the decision is stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import write_tiny_dataset
from tests.e2e.conftest import Server, login, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_upload_open_result_and_review(server: Server, page: Page, tmp_path: Path) -> None:
    data = write_tiny_dataset(tmp_path / "tiny")
    trained = run_cli(
        server, "train", "--data", str(data), "--epochs", "3", "--img-size", "32", "--device", "cpu"
    )
    run_cli(server, "models", "promote", str(trained["model_id"]))
    rev = run_cli(server, "user", "add", "rita", "--role", "reviewer")

    login(page, server, "rita", rev["password"])
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Inspect", exact=True).click()
    expect(page.get_by_role("heading", name="Inspect parts")).to_be_visible()
    page.get_by_label("Line").fill("L1")
    page.locator('input[type="file"]').set_input_files(
        [str(data / "scratch" / "scratch_0.png"), str(data / "ok" / "ok_0.png")]
    )
    expect(page.get_by_text("ok_0.png").first).to_be_visible()
    page.get_by_role("button", name="Inspect", exact=True).click()
    expect(page.get_by_text("2 inspected")).to_be_visible(timeout=60_000)
    expect(page.get_by_role("heading", name="Results")).to_be_visible()
    expect(page.get_by_text("Open a result")).to_be_visible()
    expect(page.get_by_text("Grad-CAM heatmap: where the model looked")).to_be_visible()

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Review", exact=True).click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    expect(page.get_by_text("Heatmap (stored at inspection)")).to_be_visible()
    expect(page.get_by_role("heading", name="Part #1")).to_be_visible()
    page.get_by_role("button", name="Accept (A)").click()
    expect(page.get_by_text("Part #1 saved: scratch, accept.")).to_be_visible()
    # The reviewed part left the queue (the weak test model may have flagged the other part).
    expect(page.get_by_role("heading", name="Part #1")).to_have_count(0)
