"""Concurrency (issue 12): 4 `defectlens ingest` processes and the app writing one database.

Each process inspects its own folder of new images (heatmaps on, the default) on its own line
while a thread standing for the dashboard saves a review of every part as soon as it is stored
(tests/db/ingest_race.py; tests/db/test_concurrent_ingest.py runs the same with 25 images a
process). Reported per database: exit codes, "database is locked" or any other error seen by
a process or the app (goal 0), the exact inspection count per line and the review count.

PostgreSQL: a fresh database is created (and dropped) through the admin URL given with
--pg-url or DEFECTLENS_TEST_PG_URL; without one only SQLite runs.

Usage: python bench/concurrency.py [--images 500] [--pg-url URL] > bench/out/concurrency.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import uuid
from typing import Any

from common import OUT_DIR, emit, machine
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.db.ingest_race import PROCESSES, RaceResult, run_race


def _report(r: RaceResult, images: int) -> dict[str, Any]:
    expected = {f"L{p}": images for p in range(PROCESSES)}
    return {
        "processes": PROCESSES,
        "images_per_process": images,
        "exit_codes": r.exit_codes,
        "inspections_per_line": r.per_line,
        "counts_exact": r.per_line == expected,
        "reviews_saved_by_app": r.reviews_saved,
        "reviews_in_database": r.reviews,
        "locked_messages": len(r.locked_messages()),
        "app_errors": r.app_errors[:10],
        "failed_outputs": [o[-1500:] for o, c in zip(r.outputs, r.exit_codes, strict=True) if c],
        "seconds": round(r.seconds, 1),
        "images_per_second_total": round(PROCESSES * images / r.seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--pg-url", default=os.environ.get("DEFECTLENS_TEST_PG_URL"))
    args = parser.parse_args()
    work = OUT_DIR / "concurrency"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    report: dict[str, Any] = {"bench": "concurrency", "machine": machine()}
    report["sqlite"] = _report(run_race(work / "sqlite", None, args.images), args.images)
    if args.pg_url:
        base = make_url(args.pg_url)
        name = f"dl_bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = base.set(database=name).render_as_string(hide_password=False)
            report["postgresql"] = _report(run_race(work / "pg", url, args.images), args.images)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            admin.dispose()
    shutil.rmtree(work, ignore_errors=True)
    emit(report)


if __name__ == "__main__":
    main()
