"""In a real browser: a viewer opens Trends, changes the period, and the choice lands in the
URL's query string (so the view can be bookmarked and sent on); a viewer downloads the PDF
report of a month and it renders to pages with pdftoppm."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, login, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_viewer_changes_the_period_and_the_url_keeps_it(server: Server, page: Page) -> None:
    vic = run_cli(server, "user", "add", "vic", "--role", "viewer")
    login(page, server, "vic", vic["password"])
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Trends", exact=True).click()
    expect(page.get_by_role("heading", name="Trends")).to_be_visible()
    expect(page.get_by_text("No inspections in this period")).to_be_visible()
    page.get_by_label("Period").click()  # Streamlit's select box opens a list of options
    page.get_by_role("option", name="30d").click()
    expect(page).to_have_url(re.compile(r"[?&]period=30d"))
    expect(page.get_by_text("by day.")).to_be_visible()  # 30 days are drawn by day


def _seed_month(server: Server) -> None:
    """28 days of parts on two lines, a spike 10 days ago, counted in the rollup as ingest does."""
    from core import setup
    from core.config import load_settings
    from core.quality import rollup
    from db.models import Inspection
    from db.queries import rollups

    settings = load_settings({"DEFECTLENS_HOME": str(server.home)})
    db = setup.open_database(settings)
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    with db.write() as s:
        objs = [
            Inspection(captured_at=end - timedelta(days=d, hours=3), line=f"L{1 + i % 2}",
                       product="pump", predicted_class="pit" if i < (20 if d == 10 else 2)
                       else "ok", confidence=0.9, probabilities={},
                       is_defect=i < (20 if d == 10 else 2), flagged=i < (20 if d == 10 else 2),
                       serial=f"SN-{d}-{i}")
            for d in range(1, 29) for i in range(40)
        ]  # fmt: skip
        s.add_all(objs)
        s.flush()
        rollups.apply(s, rollups.cells_of_parts(s, [o.id for o in objs], rollup.FALLBACK))
    db.dispose()


def test_viewer_downloads_the_pdf_report_and_it_renders(
    server: Server, page: Page, tmp_path: Path
) -> None:
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        pytest.fail("pdftoppm is missing; .ci/run installs poppler-utils")
    _seed_month(server)
    vic = run_cli(server, "user", "add", "vic", "--role", "viewer")
    login(page, server, "vic", vic["password"])
    page.goto(f"{server.url}/trends?period=30d&by=day")  # a bookmarked view keeps the login
    expect(page.get_by_text("Forecast, not a measurement")).to_be_visible()
    page.get_by_role("button", name="Prepare PDF report").click()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download PDF").click()
    out = tmp_path / "report.pdf"
    info.value.save_as(out)
    assert out.read_bytes().startswith(b"%PDF-")
    subprocess.run([pdftoppm, "-r", "30", "-png", str(out), str(tmp_path / "page")], check=True,
                   timeout=60)  # fmt: skip
    assert len(list(tmp_path.glob("page*.png"))) >= 2
