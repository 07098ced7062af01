"""Peak memory of `defectlens ingest` on a big zip of small images (issue 12, hole 2).

Builds, once, zips of unique 256x256 RGB noise PNGs (about 197 KB each, stored, so the zip is
as big as its images): a baseline of BASE_MB and a big one of BIG_MB (default 2 GB). Each is
ingested by `defectlens ingest ZIP --no-heatmaps --json` as a subprocess into a fresh data
directory, and its peak resident set size is read from the kernel (wait4's ru_maxrss). Memory
is flat when the big zip's peak is about the baseline's: the zip is read entry by entry and
inspected 256 images at a time. Before hole 2 was closed the whole archive and every image in
it were held at once (a 2 GB zip: over 4 GB).

The model is an untrained (but real, verified) defectnet at 32 px from the tests' support
module: what is measured is the ingest path's memory, not the model's accuracy.

Usage: python bench/ingest_memory.py [--big-mb 2048] [--base-mb 200] > bench/out/ingest_memory.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from common import OUT_DIR, emit

CLI = str(Path(sys.executable).with_name("defectlens"))
SIDE = 256


def _make_zip(path: Path, megabytes: int, seed: int) -> dict[str, Any]:
    """A stored zip of unique noise PNGs adding up to about `megabytes` (made once)."""
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return dict(json.loads(meta.read_text()))
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".partial")
    count = written = 0
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        while written < megabytes * 1024 * 1024:
            img = rng.integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
            ok, png = cv2.imencode(".png", img)
            assert ok
            zf.writestr(f"shift/{count // 1000:03d}/{count:06d}.png", png.tobytes())
            count += 1
            written += len(png)
    tmp.replace(path)
    facts = {"images": count, "zip_bytes": path.stat().st_size}
    meta.write_text(json.dumps(facts))
    return facts


def _home(where: Path) -> Path:
    """A fresh data directory with a migrated database and an active model."""
    from core import setup
    from core.config import load_settings
    from tests.core.inspection_support import register_active_model

    shutil.rmtree(where, ignore_errors=True)
    settings = load_settings({"DEFECTLENS_HOME": str(where)})
    setup.migrate(settings)
    db = setup.open_database(settings)
    register_active_model(db, settings)
    db.dispose()
    return where


def _command(checkout: Path | None) -> list[str]:
    """This checkout's `defectlens`, or another checkout's code run with this environment."""
    if checkout is None:
        return [CLI]
    code = f"import sys; sys.path.insert(0, {str(checkout)!r}); from core.cli import main; main()"
    return [sys.executable, "-c", code]


def _ingest(home: Path, archive: Path, checkout: Path | None) -> dict[str, Any]:
    env = dict(os.environ, DEFECTLENS_HOME=str(home))
    env.pop("DEFECTLENS_DB_URL", None)
    if checkout is not None:  # the old code capped CLI zips at the browser's upload limit
        env["DEFECTLENS_MAX_UPLOAD_MB"] = "8192"
    out_path, err_path = home / "ingest.out", home / "ingest.err"
    started = time.perf_counter()
    with open(out_path, "w") as out, open(err_path, "w") as err:
        proc = subprocess.Popen(
            [*_command(checkout), "ingest", str(archive), "--no-heatmaps", "--json"],
            env=env,
            stdout=out,
            stderr=err,
        )
        # Reaped here, not by Popen: wait4 returns the child's own peak resident set.
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed ({proc.returncode}): {err_path.read_text()[-2000:]}")
    result = json.loads(out_path.read_text().strip().splitlines()[-1])
    return {
        "processed": result["processed"],
        "rejected": len(result["rejected"]),
        "images_per_second": result["images_per_second"],
        "wall_seconds": round(seconds, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--big-mb", type=int, default=2048)
    parser.add_argument("--base-mb", type=int, default=200)
    parser.add_argument(
        "--before",
        type=Path,
        help="also run another checkout's code on both zips (e.g. a git worktree of the commit "
        "before hole 2 was closed) for the comparison",
    )
    args = parser.parse_args()
    work = OUT_DIR / "ingest_memory"
    work.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"bench": "ingest_memory"}
    for code, checkout in (("this_checkout", None), ("before", args.before)):
        if code == "before" and checkout is None:
            continue
        runs = {}
        for label, mb, seed in (("baseline", args.base_mb, 1), ("big", args.big_mb, 2)):
            archive = work / f"{label}_{mb}mb.zip"
            facts = _make_zip(archive, mb, seed)
            home = _home(work / f"home_{label}")
            runs[label] = {**facts, **_ingest(home, archive, checkout)}
            shutil.rmtree(home, ignore_errors=True)  # the image store holds a copy of each image
        report[code] = {
            "checkout": str(checkout or Path(__file__).resolve().parents[1]),
            "runs": runs,
            "peak_rss_big_over_baseline": round(
                runs["big"]["peak_rss_mb"] / runs["baseline"]["peak_rss_mb"], 2
            ),
            "zip_size_ratio": round(runs["big"]["zip_bytes"] / runs["baseline"]["zip_bytes"], 1),
        }
    emit(report)


if __name__ == "__main__":
    main()
