"""Regenerate the README's Trends and PDF-report screenshots: 30 synthetic days of production
on three lines (a process drift on Line 2 from day 18, an annotation, frozen limits) written
straight into a fresh database with its rollup, a real server, Debian's Chromium, pdftoppm.

    .venv/bin/python docs/make_trend_screenshots.py
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import expect, sync_playwright

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core import setup  # noqa: E402
from core.auth import permissions  # noqa: E402
from core.config import load_settings  # noqa: E402
from core.quality import baselines, rollup, timeline  # noqa: E402
from db.models import Inspection  # noqa: E402
from db.queries import rollups  # noqa: E402
from db.queries.trends import TrendFilter  # noqa: E402

OUT = REPO / "docs" / "screenshots"
CLI = str(Path(sys.executable).with_name("defectlens"))
CLASSES = ("scratch", "pit", "crack", "inclusion", "patch")
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]


def seed(home: Path) -> None:
    """30 days x 24 h x 3 lines of parts; Line 2 drifts from day 18; limits frozen on days 0-14."""
    settings = load_settings({"DEFECTLENS_HOME": str(home)})
    db = setup.open_database(settings)
    rng = random.Random(7)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=30)
    parts = []
    for h in range(30 * 24):
        t = start + timedelta(hours=h)
        for line in ("Line 1", "Line 2", "Line 3"):
            drift = line == "Line 2" and h >= 18 * 24
            rate = (0.09 if drift else 0.04) * rng.uniform(0.7, 1.3)
            for _ in range(rng.randint(14, 22)):
                bad = rng.random() < rate
                cls = rng.choices(CLASSES, (5, 3, 1, 1, 1))[0] if bad else "ok"
                conf = rng.uniform(0.55, 0.9) if drift else rng.uniform(0.8, 0.99)
                parts.append(Inspection(
                    captured_at=t + timedelta(minutes=rng.randint(0, 59)), line=line,
                    station="Camera 1", product=rng.choice(("impeller-A", "impeller-B")),
                    predicted_class=cls, confidence=conf, probabilities={}, is_defect=bad,
                    flagged=bad or conf < 0.7, serial=f"SN{len(parts):06d}",
                ))  # fmt: skip
    with db.write() as s:
        s.add_all(parts)
        s.flush()
        rollups.apply(s, rollups.cells_of_parts(s, [p.id for p in parts], rollup.FALLBACK))
    timeline.add_annotation(db, permissions.SYSTEM, start + timedelta(days=18, hours=6),
                            "New supplier lot of sand cores", line="Line 2")  # fmt: skip
    baselines.freeze_baseline(db, settings, permissions.SYSTEM, TrendFilter(), "day",
                              (start, start + timedelta(days=15)), note="phase I")  # fmt: skip
    db.dispose()


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="defectlens-trends-"))
    env = dict(os.environ, DEFECTLENS_HOME=str(home))
    env.pop("DEFECTLENS_DB_URL", None)
    admin = json.loads(subprocess.run([CLI, "init", "--json"], env=env, check=True,
                                      capture_output=True, text=True).stdout)  # fmt: skip
    seed(home)
    OUT.mkdir(parents=True, exist_ok=True)
    pdf = home / "report.pdf"
    since = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
    until = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    subprocess.run([CLI, "report", "--since", since, "--until", until, "--format", "pdf",
                    "--out", str(pdf)], env=env, check=True)  # fmt: skip
    subprocess.run(["pdftoppm", "-r", "80", "-png", "-f", "1", "-l", "1", "-singlefile",
                    str(pdf), str(OUT / "report_page1")], check=True)  # fmt: skip

    port = 8598
    server = subprocess.Popen([CLI, "run", "--port", str(port), "--no-demo"], env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health").read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.set_default_timeout(60_000)
            page.goto(url)
            page.get_by_label("Username").fill(admin["admin"])
            page.get_by_label("Password", exact=True).fill(admin["password"])
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("heading", name="Plant overview")).to_be_visible()
            page.wait_for_timeout(2500)
            page.screenshot(path=OUT / "overview.png", full_page=True)
            page.get_by_test_id("stSidebarNav").get_by_role(
                "link", name="Trends", exact=True
            ).click()
            page.get_by_label("Period").click()
            page.get_by_role("option", name="30d").click()
            expect(page.get_by_text("Forecast, not a measurement")).to_be_visible()
            # Streamlit scrolls inside its main block, so a tall window shows the whole page.
            page.set_viewport_size({"width": 1440, "height": 3400})
            page.wait_for_timeout(4000)
            page.screenshot(path=OUT / "trends.png")
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
