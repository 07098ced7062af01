"""Load (issue 12): 20 browser sessions doing inspect, review and trends against one server.

One `defectlens run --no-demo` on a fresh data directory: an active model (untrained, so every
part is unsure and lands in the review queue), 1,200 parts spread over the last 30 days on
three lines, and 20 reviewer accounts. One headless Debian Chromium holds 20 contexts (separate
cookies, so separate logins and sessions); each logs in and then, for --minutes, cycles:

- **inspect**: open Inspect, upload one new PNG, press Inspect, wait for its result;
- **review**: open Review, choose the second class and press "a" (accept), wait for "saved";
- **trends**: open Trends, wait for the page to finish its run with its charts.

Each step's page-ready latency is from the click or navigation to Streamlit reporting the run
finished with the step's text on the page. A Streamlit exception on a page, a timeout or a step
that fails counts as an error. The server's memory (its process tree's RSS) is read at start,
after one warm-up session has done each step once (the model, PyTorch and Plotly loaded), during
the load, and 30 s and 160 s after the sessions close (Streamlit drops a closed session's state
after its 120 s disconnected-session TTL).

Usage: python bench/load_browsers.py [--sessions 20] [--minutes 2] > bench/out/load_browsers.json
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from common import OUT_DIR, emit, machine
from PIL import Image

from core import setup
from core.auth import accounts, permissions
from core.config import load_settings
from core.quality import ingest
from db.models import Role
from tests.core.inspection_support import png, register_active_model
from tests.e2e.conftest import CHROMIUM_FLAGS, chromium_path

PASSWORD = "load-test-password-1"
READY = (
    "() => document.querySelector('[data-testid=\"stApp\"]')"
    "?.getAttribute('data-test-script-state') === 'notRunning'"
)


def _prepare(home: Path, sessions: int) -> None:
    settings = load_settings({"DEFECTLENS_HOME": str(home)})
    setup.migrate(settings)
    db = setup.open_database(settings)
    register_active_model(db, settings)
    for i in range(sessions + 1):  # the last one warms the server up
        accounts.create_user(db, permissions.SYSTEM, f"load{i:02d}", Role.REVIEWER,
                             password=PASSWORD)  # fmt: skip
    now = datetime.now(UTC)
    for day in range(30):
        for line in ("Line 1", "Line 2", "Line 3"):
            items = [(f"d{day}-{line}-{i}.png", png(day * 1000 + hash(line) % 97 * 10 + i))
                     for i in range(13)]  # fmt: skip
            at = now - timedelta(days=30 - day, hours=1)
            trace = ingest.Traceability(line=line, product="impeller-A", captured_at=at)
            ingest.ingest_many(db, settings, permissions.SYSTEM, items, trace, with_heatmaps=False)
    db.dispose()


def _rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            continue
    return round(total / 1024, 1)


def _serve(home: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DEFECTLENS_HOME=str(home), DEFECTLENS_LOGIN_DELAY_S="0.1")
    env.pop("DEFECTLENS_DB_URL", None)
    cli = str(Path(sys.executable).with_name("defectlens"))
    with log.open("ab") as out:
        proc = subprocess.Popen([cli, "run", "--no-demo", "--port", str(port)], env=env,
                                stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return proc, url
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"server did not start: {log.read_text()[-2000:]}")


def _part_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


async def _ready(page: Any, text: Any) -> None:
    from playwright.async_api import expect

    await expect(page.get_by_text(text).first).to_be_visible(timeout=120_000)
    await page.wait_for_function(READY, timeout=120_000)
    if await page.get_by_test_id("stException").count():
        raise RuntimeError("a Streamlit exception is on the page")


async def _nav(page: Any, name: str) -> None:
    await page.get_by_test_id("stSidebarNav").get_by_role("link", name=name, exact=True).click()


async def _session(browser: Any, url: str, n: int, until: float, out: dict[str, Any]) -> None:
    from playwright.async_api import expect

    context = await browser.new_context(viewport={"width": 1300, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(120_000)
    steps, seed = out["steps"], 1_000_000 * (n + 1)
    try:
        t = time.perf_counter()
        await page.goto(url)
        await page.get_by_label("Username").fill(f"load{n:02d}")
        await page.get_by_label("Password", exact=True).fill(PASSWORD)
        for _attempt in range(10):
            await page.get_by_role("button", name="Log in").click()
            # 20 logins at once: at most 2 password checks run together and a login that waits
            # over 10 s is told the server is busy; a person tries again, and so does this.
            busy = page.get_by_text("server is busy")
            landed = page.get_by_role("heading", name="Plant overview").or_(busy)
            await expect(landed.first).to_be_visible(timeout=120_000)
            if not await busy.count():
                break
            out["busy"] += 1
            await page.get_by_label("Password", exact=True).fill(PASSWORD)
        await _ready(page, "Plant overview")
        steps["login"].append(time.perf_counter() - t)
        first = True
        while first or time.perf_counter() < until:  # every session does each step at least once
            first = False
            for step in ("inspect", "review", "trends"):
                seed += 1
                t = time.perf_counter()
                try:
                    if step == "inspect":
                        await _nav(page, "Inspect")
                        await _ready(page, "Inspect parts")
                        name = f"s{n}-{seed}.png"
                        await page.locator('input[type="file"]').set_input_files(
                            {"name": name, "mimeType": "image/png", "buffer": _part_png(seed)}
                        )
                        # The upload is done when the uploader lists the file.
                        await expect(page.get_by_text(name).first).to_be_visible(timeout=120_000)
                        await page.get_by_role("button", name="Inspect", exact=True).click()
                        await _ready(page, re.compile(r"1 inspected, \d+ flagged"))
                    elif step == "review":
                        await _nav(page, "Review")
                        await _ready(page, re.compile(r"^Part #\d+$"))
                        await page.evaluate("document.activeElement?.blur()")
                        await page.keyboard.press("2")
                        await page.keyboard.press("a")
                        # Sessions review the same queue: a part another session saved first
                        # is a Conflict (optimistic check), the product working, not an error.
                        await _ready(page, re.compile(r"Part #\d+ saved: \w+, accept\.|"
                                                      r"was reviewed by load\d+ at"))  # fmt: skip
                        if await page.get_by_text(re.compile(r"was reviewed by load")).count():
                            out["conflicts"] += 1
                    else:
                        await _nav(page, "Trends")
                        await _ready(page, "Defect rate")
                    steps[step].append(time.perf_counter() - t)
                except Exception as e:  # noqa: BLE001 - every failure is a finding of the load
                    out["errors"].append(f"session {n} {step}: {type(e).__name__}: {e}"[:300])
                    await page.goto(url)
        out["completed"] += 1
    except Exception as e:  # noqa: BLE001
        out["errors"].append(f"session {n} login: {type(e).__name__}: {e}"[:300])
    finally:
        await context.close()


def _stats(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    qs = (statistics.quantiles(values, n=20, method="inclusive") if len(values) > 1
          else [values[0]] * 19)  # fmt: skip
    return {"n": len(values), "p50_s": round(statistics.median(values), 2),
            "p95_s": round(qs[18], 2), "max_s": round(max(values), 2)}  # fmt: skip


async def _load(url: str, sessions: int, minutes: float, pid: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    out: dict[str, Any] = {"steps": {k: [] for k in ("login", "inspect", "review", "trends")},
                           "errors": [], "completed": 0, "conflicts": 0, "busy": 0}  # fmt: skip
    samples: list[float] = []

    async def sample() -> None:
        while True:
            samples.append(_rss_mb(pid))
            await asyncio.sleep(2)

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), headless=True,
                                           args=CHROMIUM_FLAGS)  # fmt: skip
        # One session first does each step once: the server loads the model, PyTorch, Plotly
        # and its caches, which it keeps whatever the load. Memory is measured from there.
        warm: dict[str, Any] = {"steps": {k: [] for k in out["steps"]}, "errors": [],
                                "completed": 0, "conflicts": 0, "busy": 0}  # fmt: skip
        await _session(browser, url, sessions, time.perf_counter(), warm)
        out["warm_errors"] = warm["errors"]
        await asyncio.sleep(5)
        out["rss_warm_mb"] = _rss_mb(pid)
        sampler = asyncio.create_task(sample())
        until = time.perf_counter() + minutes * 60
        await asyncio.gather(*(_session(browser, url, n, until, out) for n in range(sessions)))
        await browser.close()
    sampler.cancel()
    out["rss_peak_mb"] = max(samples) if samples else None
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=2.0)
    args = parser.parse_args()
    work = OUT_DIR / "load_browsers"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _prepare(work / "home", args.sessions)
    proc, url = _serve(work / "home", work / "server.log")
    try:
        time.sleep(5)
        rss_start = _rss_mb(proc.pid)
        t0 = time.perf_counter()
        out = asyncio.run(_load(url, args.sessions, args.minutes, proc.pid))
        wall = time.perf_counter() - t0
        time.sleep(30)
        rss_30s = _rss_mb(proc.pid)
        # Streamlit drops a disconnected session's state after server.disconnectedSessionTTL
        # (120 s by default).
        time.sleep(130)
        rss_160s = _rss_mb(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    emit({
        "bench": "load_browsers",
        "machine": machine(),
        "sessions": args.sessions,
        "minutes": args.minutes,
        "completed_sessions": out["completed"],
        "errors": len(out["errors"]),
        "error_samples": out["errors"][:20],
        "steps": {k: _stats(v) for k, v in out["steps"].items()},
        "wall_seconds": round(wall, 1),
        "review_conflicts": out["conflicts"],
        "login_busy_answers": out["busy"],
        "warm_up_errors": out["warm_errors"],
        "server_rss_mb": {"start": rss_start, "warm": out["rss_warm_mb"],
                          "peak": out["rss_peak_mb"], "after_30s": rss_30s,
                          "after_160s": rss_160s},
    })  # fmt: skip


if __name__ == "__main__":
    main()
