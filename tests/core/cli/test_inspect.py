"""`defectlens ingest` through the real script: the JSON contract, exit codes, --watch,
--captured-at."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core import setup
from core.auth import permissions
from core.config import load_settings
from core.quality import inspections
from tests.core.inspection_support import png, register_active_model, stored_files

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).with_name("defectlens"))


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ, DEFECTLENS_HOME=str(home), DEFECTLENS_NUM_THREADS="2")
    env.pop("DEFECTLENS_DB_URL", None)
    return env


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=_env(home), capture_output=True, text=True, timeout=300)


def _json(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stdout + proc.stderr
    out: dict[str, Any] = json.loads(lines[0])
    return out


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A data directory with a migrated database and an active model."""
    path = tmp_path / "home"
    settings = load_settings({"DEFECTLENS_HOME": str(path)})
    setup.migrate(settings)
    db = setup.open_database(settings)
    register_active_model(db, settings)
    db.dispose()
    return path


def test_ingest_files_folders_and_zips_prints_the_json_contract(home: Path, tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.png").write_bytes(png(1))
    (src / "sub" / "b.png").write_bytes(png(2))
    (src / "broken.png").write_bytes(png(3)[:40])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("z/c.png", png(4))
        zf.writestr("z/d.txt", "text")
    (tmp_path / "batch.zip").write_bytes(buf.getvalue())
    single = tmp_path / "e.png"
    single.write_bytes(png(5))

    proc = _run(
        home,
        "ingest",
        str(src),
        str(tmp_path / "batch.zip"),
        str(single),
        str(tmp_path / "missing.png"),
        "--line",
        "L1",
        "--station",
        "S1",
        "--product",
        "pump",
        "--lot",
        "LOT-1",
        "--serial",
        "SN-9",
        "--json",
    )
    assert proc.returncode == 0, proc.stderr
    out = _json(proc)
    assert out["processed"] == 4
    assert isinstance(out["flagged"], int) and 0 <= out["flagged"] <= 4
    assert isinstance(out["images_per_second"], float) and out["images_per_second"] > 0
    rejected = {Path(r["file"]).name: r["reason"] for r in out["rejected"]}
    assert set(rejected) == {"broken.png", "d.txt", "missing.png"}
    assert "truncated or corrupt" in rejected["broken.png"]
    assert rejected["missing.png"] == "not found"
    assert all(set(r) == {"file", "reason"} for r in out["rejected"])

    settings = load_settings({"DEFECTLENS_HOME": str(home)})
    db = setup.open_database(settings)
    try:
        recs = inspections.list_inspections(db, permissions.SYSTEM)
    finally:
        db.dispose()
    assert len(recs) == 4
    assert {(r.line, r.station, r.product, r.lot, r.serial) for r in recs} == {
        ("L1", "S1", "pump", "LOT-1", "SN-9")
    }

    text = _run(home, "ingest", str(single))
    assert text.returncode == 0 and "processed 1" in text.stdout


def test_nothing_processed_exits_non_zero(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    proc = _run(home, "ingest", str(bad), "--json")
    assert proc.returncode == 1
    out = _json(proc)
    assert out["processed"] == 0 and out["rejected"][0]["reason"] == "file is empty"

    empty = tmp_path / "empty_dir"
    empty.mkdir()
    proc = _run(home, "ingest", str(empty), "--json")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: no files found")


def test_no_active_model_is_a_one_line_error(tmp_path: Path) -> None:
    img = tmp_path / "a.png"
    img.write_bytes(png(1))
    proc = _run(tmp_path / "fresh", "ingest", str(img), "--json")
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("error: no active model")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_watch_processes_dropped_files_and_stops_on_sigterm(home: Path, tmp_path: Path) -> None:
    camera = tmp_path / "camera"
    camera.mkdir()
    proc = subprocess.Popen(
        [CLI, "ingest", str(camera), "--watch", "--poll-seconds", "0.2", "--json"],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        (camera / "a.png").write_bytes(png(1))
        (camera / "junk.png").write_bytes(b"junk")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            (camera / "processed" / "a.png").exists()
            and (camera / "rejected" / "junk.png").exists()
        ):
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    out = json.loads(stdout.strip().splitlines()[-1])
    assert out["processed"] == 1 and [r["file"] for r in out["rejected"]] == ["junk.png"]
    assert (camera / "rejected" / "junk.png.reason.txt").read_text().strip()


def test_no_heatmaps_then_backfill(home: Path, tmp_path: Path) -> None:
    from core.auth import permissions
    from core.quality import flag_rules

    settings = load_settings({"DEFECTLENS_HOME": str(home)})
    db = setup.open_database(settings)
    flag_rules.set_rule(db, permissions.SYSTEM, "*", ["ok", "scratch"], 1.0)  # flag everything
    db.dispose()
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        (src / f"{i}.png").write_bytes(png(i))
    out = _json(_run(home, "ingest", str(src), "--no-heatmaps", "--json"))
    assert out["processed"] == 3 and out["flagged"] == 3 and out["heatmaps"] == 0
    assert _json(_run(home, "ingest", "--backfill", "--json")) == {"heatmaps": 3}
    assert _json(_run(home, "ingest", "--backfill", "--json")) == {"heatmaps": 0}
    usage = _run(home, "ingest", "--json")
    assert usage.returncode == 1 and "give at least one file" in usage.stderr


def _run_in(home: Path, timezone: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(_env(home), DEFECTLENS_TIMEZONE=timezone)
    return subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=300)


def test_captured_at_is_stored_in_utc_and_counted_in_that_rollup_hour(
    home: Path, tmp_path: Path
) -> None:
    from core.auth import permissions
    from core.quality import trends
    from db.queries.trends import TrendFilter

    for i in range(3):
        (tmp_path / f"{i}.png").write_bytes(png(i))
    # No offset: plant-local wall time (Berlin is UTC+2 in July), so 06:15 UTC.
    local = _run_in(home, "Europe/Berlin", "ingest", str(tmp_path / "0.png"),
                    str(tmp_path / "1.png"), "--line", "L7", "--captured-at",
                    "2026-07-01T08:15", "--json")  # fmt: skip
    assert local.returncode == 0, local.stderr
    assert _json(local)["processed"] == 2
    offset = _run_in(home, "Europe/Berlin", "ingest", str(tmp_path / "2.png"), "--line", "L7",
                     "--captured-at", "2026-07-01T09:59:59+02:00", "--json")  # fmt: skip
    assert offset.returncode == 0, offset.stderr

    settings = load_settings({"DEFECTLENS_HOME": str(home), "DEFECTLENS_TIMEZONE": "Europe/Berlin"})
    db = setup.open_database(settings)
    try:
        stored = sorted(r.captured_at for r in inspections.list_inspections(db, permissions.SYSTEM))
        berlin = trends.plant_zone(settings)
        report = trends.trend_report(
            db, settings, permissions.SYSTEM, datetime(2026, 7, 1, 7, tzinfo=berlin),
            datetime(2026, 7, 1, 11, tzinfo=berlin), TrendFilter(line="L7"), "hour",
        )  # fmt: skip
    finally:
        db.dispose()
    assert stored == [datetime(2026, 7, 1, 6, 15, tzinfo=UTC)] * 2 + [
        datetime(2026, 7, 1, 7, 59, 59, tzinfo=UTC)
    ]
    assert [(b.start.hour, b.parts) for b in report.buckets] == [(8, 2), (9, 1)]


def test_bad_captured_at_is_a_one_line_error_and_stores_nothing(home: Path, tmp_path: Path) -> None:
    img = tmp_path / "a.png"
    img.write_bytes(png(1))
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat(timespec="seconds")
    cases = {
        "yesterday": "--captured-at 'yesterday' is not an ISO-8601 time",
        soon: f"--captured-at '{soon}' is in the future",
        "2026-10-25T02:30": "is ambiguous or does not exist in Europe/Berlin",  # clocks go back
        "2026-03-29T02:30": "is ambiguous or does not exist in Europe/Berlin",  # ... and forward
    }
    for value, message in cases.items():
        proc = _run_in(home, "Europe/Berlin", "ingest", str(img), "--captured-at", value, "--json")
        assert proc.returncode == 1 and proc.stdout == "", (value, proc.stderr)
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    watch = _run(home, "ingest", str(tmp_path), "--watch", "--captured-at", "2026-07-01T08:00Z")
    assert watch.returncode == 1 and "not --watch or --backfill" in watch.stderr
    assert "--captured-at" in _run(home, "ingest", "--help").stdout

    settings = load_settings({"DEFECTLENS_HOME": str(home)})
    db = setup.open_database(settings)
    try:
        assert inspections.list_inspections(db, permissions.SYSTEM) == []
    finally:
        db.dispose()
    assert stored_files(settings) == []


def test_a_zip_named_on_the_command_line_is_streamed_past_the_browser_upload_cap(
    home: Path, tmp_path: Path
) -> None:
    # 3 MB stored: over a 1 MB browser cap, which does not apply to the operator's own files.
    pad = bytes(range(256)) * 4000
    with zipfile.ZipFile(tmp_path / "shift.zip", "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(3):
            zf.writestr(f"shift/{i}.png", png(i) + pad)
    env = _env(home) | {"DEFECTLENS_MAX_UPLOAD_MB": "1"}
    proc = subprocess.run(
        [CLI, "ingest", str(tmp_path / "shift.zip"), "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = _json(proc)
    assert (out["processed"], out["rejected"]) == (3, [])
