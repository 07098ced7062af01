"""The PDF trend report from a month of real rows: it renders to pages with pdftoppm, and its
text (pdftotext) carries the period, every filter, KPIs, signals, forecast, annotations and the
recent flagged parts, names in any script included; a missing image file costs only its
thumbnail."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.auth import permissions
from core.config import Settings
from core.quality import image_store, pdf_report, rollup, timeline, trends
from db.engine import Database
from db.models import Image, Inspection
from db.queries import rollups
from db.queries.trends import TrendFilter
from tests.core.inspection_support import png

BERLIN = ZoneInfo("Europe/Berlin")
DAY0 = datetime(2026, 10, 1, tzinfo=BERLIN)
LINE = "Línea 2 — σ"  # a line name outside Latin-1 must print, not crash the PDF


def _poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is missing in CI; .ci/run installs poppler-utils")
        pytest.skip(f"{tool} (poppler-utils) is not installed")
    return path


def _month(db: Database, settings: Settings) -> None:
    """30 days of 200 parts a day on two lines, a spike on day 20, flagged parts with images."""
    with db.write() as s:
        objs = []
        for d in range(30):
            for i in range(200):
                t = (DAY0 + timedelta(days=d, hours=7, minutes=i % 240)).astimezone(UTC)
                bad = i < (40 if d == 20 else 8)
                objs.append(Inspection(
                    captured_at=t, line=LINE if i % 2 else "L1", product="pump",
                    predicted_class=("pit" if i % 3 else "scratch") if bad else "ok",
                    confidence=0.9, probabilities={}, is_defect=bad, flagged=bad,
                    serial=f"SN-{d:02d}-{i:03d}", flag_reason="defect" if bad else None,
                ))  # fmt: skip
        for k, obj in enumerate(objs[-12:]):  # the newest parts get real images, one missing
            data = png(k, scratch=True)
            sha = hashlib.sha256(data).hexdigest()
            rel = image_store.image_path(sha, "png")
            if k != 3:
                (settings.images_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (settings.images_dir / rel).write_bytes(data)
            image = Image(sha256=sha, stored_path=rel, size_bytes=len(data), format="png",
                          width=48, height=40)  # fmt: skip
            s.add(image)
            s.flush()
            obj.image_id, obj.flagged, obj.is_defect = image.id, True, True
            obj.predicted_class = "pit"
        s.add_all(objs)
        s.flush()
        rollups.apply(s, rollups.cells_of_parts(s, [o.id for o in objs], rollup.FALLBACK))


def test_a_month_renders_to_pages_with_everything_in_words(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    pdftoppm, pdftotext = _poppler("pdftoppm"), _poppler("pdftotext")
    s = dataclasses.replace(settings, timezone="Europe/Berlin")
    _month(db, s)
    timeline.add_annotation(db, permissions.SYSTEM, DAY0 + timedelta(days=18), "new supplier lot")
    report = trends.trend_report(db, s, permissions.SYSTEM, DAY0, DAY0 + timedelta(days=30),
                                 TrendFilter(product="pump", shift="06:00"), "day")  # fmt: skip
    assert report.forecast is not None  # 30 days of history
    pdf = pdf_report.trend_pdf(db, s, permissions.SYSTEM, report)
    assert pdf.startswith(b"%PDF-")
    out = tmp_path / "report.pdf"
    out.write_bytes(pdf)

    subprocess.run([pdftoppm, "-r", "40", "-png", str(out), str(tmp_path / "page")], check=True,
                   timeout=60)  # fmt: skip
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) >= 2 and all(p.stat().st_size > 1000 for p in pages)
    text = subprocess.run([pdftotext, "-layout", str(out), "-"], check=True, timeout=60,
                          capture_output=True, text=True).stdout  # fmt: skip
    for expected in (
        "DefectLens trend report", "2026-10-01 00:00 to 2026-10-31 00:00 (Europe/Berlin)",
        "product: pump", "shift: 06:00", "Parts inspected", "6,000", "Signals",
        "Rule 1: 1 point beyond 3σ", "Forecast", "new supplier lot", "Most recent flagged parts",
        "SN-29-199", LINE,
    ):  # fmt: skip
        assert expected in text, f"{expected!r} is not in the PDF"


def test_an_empty_period_is_a_one_page_report_that_says_so(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    pdftotext = _poppler("pdftotext")
    t = datetime(2026, 10, 1, tzinfo=UTC)
    report = trends.trend_report(db, settings, permissions.SYSTEM, t, t + timedelta(days=1),
                                 TrendFilter())  # fmt: skip
    out = tmp_path / "empty.pdf"
    out.write_bytes(pdf_report.trend_pdf(db, settings, permissions.SYSTEM, report))
    text = subprocess.run([pdftotext, str(out), "-"], check=True, timeout=60,
                          capture_output=True, text=True).stdout  # fmt: skip
    assert "No inspections in this period and filter." in text
    assert text.count("\f") == 1  # one page
