"""Four `defectlens ingest` processes and the app's reviewers writing one database at once.

Shared by tests/db/test_concurrent_ingest.py (small) and bench/concurrency.py (large): each
process inspects its own folder of new images on its own line; meanwhile a thread in this
process, standing for the dashboard, saves a review of every part as soon as it is stored.
What must hold: every process exits 0, no "database is locked" (or any error) reaches its
output, the inspection count is exact per line, and every review is stored exactly once.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from core import setup
from core.auth import accounts, permissions
from core.auth.permissions import CurrentUser
from core.config import load_settings
from core.quality import review
from db.engine import Database
from db.models import Inspection, Review, Role
from tests.core.inspection_support import png, register_active_model

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from core.cli import main; main()"]
PROCESSES = 4


@dataclass
class RaceResult:
    """What the race left behind."""

    exit_codes: list[int]
    outputs: list[str]
    per_line: dict[str, int]
    reviews: int
    reviews_saved: int
    app_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def locked_messages(self) -> list[str]:
        return [o for o in self.outputs if "locked" in o.lower()] + [
            e for e in self.app_errors if "locked" in e.lower()
        ]


def _reviewer(db: Database, stop: threading.Event, out: dict[str, Any]) -> None:
    """The app: review every stored part, as a reviewer clicking through the queue would."""
    info, _ = accounts.create_user(db, permissions.SYSTEM, "racer", Role.REVIEWER)
    actor = CurrentUser(id=info.id, username=info.username, role=info.role)
    done: set[int] = set()
    while True:
        last_pass = stop.is_set()
        with db.read() as s:
            ids = [i for i in s.scalars(select(Inspection.id)).all() if i not in done]
        for inspection_id in ids:
            try:
                review.record_review(db, actor, inspection_id, true_class="ok",
                                     disposition="accept", note=None,
                                     expected_version=0)  # fmt: skip
                out["saved"] += 1
            except Exception as e:  # noqa: BLE001 - every error is a finding of the race
                out["errors"].append(f"{type(e).__name__}: {e}")
            done.add(inspection_id)
        if last_pass:
            return
        time.sleep(0.05)


def run_race(home: Path, db_url: str | None, images_per_process: int) -> RaceResult:
    """Set up a data directory on db_url (None: SQLite in home), race, and count."""
    env_settings = {"DEFECTLENS_HOME": str(home)}
    if db_url:
        env_settings["DEFECTLENS_DB_URL"] = db_url
    settings = load_settings(env_settings)
    setup.migrate(settings)
    db = setup.open_database(settings)
    register_active_model(db, settings)
    folders = []
    for p in range(PROCESSES):
        folder = home.parent / f"{home.name}-images{p}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(images_per_process):
            (folder / f"p{p}-{i:04d}.png").write_bytes(png(100_000 * (p + 1) + i))
        folders.append(folder)
    env = dict(os.environ, **env_settings)
    if not db_url:
        env.pop("DEFECTLENS_DB_URL", None)
    stop = threading.Event()
    app: dict[str, Any] = {"saved": 0, "errors": []}
    thread = threading.Thread(target=_reviewer, args=(db, stop, app))
    started = time.perf_counter()
    thread.start()
    procs = [
        subprocess.Popen([*CLI, "ingest", str(f), "--line", f"L{p}", "--json"], env=env,
                         cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for p, f in enumerate(folders)
    ]  # fmt: skip
    outputs = [proc.communicate(timeout=900)[0].decode(errors="replace") for proc in procs]
    stop.set()
    thread.join(300)
    seconds = time.perf_counter() - started
    with db.read() as s:
        per_line = dict(
            s.execute(select(Inspection.line, func.count(Inspection.id)).group_by(Inspection.line))
            .tuples()
            .all()
        )
        reviews = s.scalar(select(func.count(Review.id))) or 0
    db.dispose()
    return RaceResult([p.returncode for p in procs], outputs, per_line, reviews, app["saved"],
                      app["errors"], seconds)  # fmt: skip
