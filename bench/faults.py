"""Fault injection (issue 12): SIGKILL of the worker, of a training process and of an ingest.

Each kind runs TRIALS times against a real data directory (SQLite, WAL) with real
`defectlens worker` and `defectlens ingest` subprocesses, killing at a random moment:

- ``worker``: a job trains; its worker is SIGKILLed; a new worker starts. The orphaned
  training process stops by itself, the sweep (3 s heartbeat timeout here) queues the job
  again and the new worker resumes it from its last finished epoch.
- ``child``: one worker keeps running; the training process of a job is SIGKILLed; the
  worker queues the job again and resumes it.
- ``ingest``: `defectlens ingest` of a folder of 300 new images (committed 64 at a time) is
  SIGKILLed.

After every trial: the rows committed before the kill are all still there (per-epoch metrics,
inspections), ``PRAGMA integrity_check`` says ok, every stored image a row points at is on
disk, the image files nobody points at (an ingest killed between writing a file and
committing its row) are swept, and no job is left running. The JSON counts resumed jobs,
rows lost and jobs stuck (goal 0 for the last two).

Usage: python bench/faults.py [--trials 20] [--kinds worker,child,ingest] > bench/out/faults.json
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import OUT_DIR, ROOT, emit, machine
from sqlalchemy import func, select, text

from core import setup
from core.auth import permissions
from core.config import Settings, load_settings
from core.jobs import queue
from core.quality import image_store
from core.training.config import TrainConfig
from db.engine import Database
from db.models import Image, Inspection, JobStatus, TrainingJob
from db.queries import job_metrics, jobs
from tests.core.inspection_support import png, register_active_model
from tests.core.jobs_support import import_tiny, pid_alive, start_worker, stop_worker, wait_for

CLI = [sys.executable, "-c", "from core.cli import main; main()"]
JOB = TrainConfig(epochs=30, img_size=32, device="cpu", batch_size=8)


def _home(where: Path) -> tuple[Settings, Database]:
    shutil.rmtree(where, ignore_errors=True)
    settings = load_settings({"DEFECTLENS_HOME": str(where)})
    setup.migrate(settings)
    return settings, setup.open_database(settings)


def _job(db: Database, job_id: int) -> jobs.JobRecord:
    with db.read() as s:
        job = jobs.get_job(s, job_id)
    assert job is not None
    return job


def _epochs(db: Database, job_id: int) -> list[int]:
    with db.read() as s:
        return [m.epoch for m in job_metrics.list_metrics(s, job_id)]


def _child_pids(settings: Settings, job_id: int) -> list[int]:
    path = queue.log_path(settings, job_id)
    text_ = path.read_text() if path.exists() else ""
    return [int(p) for p in re.findall(r"started by \S+ \(pid (\d+)\)", text_)]


def check_store(db: Database, settings: Settings) -> dict[str, Any]:
    """Integrity, every row's file present, orphans swept, no job running."""
    with db.read() as s:
        integrity = s.execute(text("PRAGMA integrity_check")).scalar_one()
        stored = s.scalars(select(Image.stored_path)).all()
        running = s.scalar(
            select(func.count(TrainingJob.id)).where(TrainingJob.status == JobStatus.RUNNING)
        )
    missing = [p for p in stored if not (settings.images_dir / p).is_file()]
    swept = image_store.sweep_orphans(db, settings, grace_s=0)
    return {"integrity": integrity, "missing_files": len(missing), "orphans_swept": swept,
            "jobs_running": running}  # fmt: skip


def _job_trial(db: Database, settings: Settings, job_id: int, kill: Any) -> dict[str, Any]:
    """Kill (via ``kill``) at a random moment of a running job; how the job ended."""
    wait_for(lambda: _child_pids(settings, job_id), 120, "the job to start")
    time.sleep(random.uniform(0.2, 4.0))
    committed = _epochs(db, job_id)
    state = _job(db, job_id).status
    kill()
    return {"status_at_kill": str(state), "epochs_committed_at_kill": len(committed),
            "committed": committed}  # fmt: skip


def _outcome(db: Database, job_id: int, committed: list[int]) -> dict[str, Any]:
    done = wait_for(lambda: (j := _job(db, job_id)).is_finished and j, 180, "the job to end")
    final = _epochs(db, job_id)
    return {
        "status": str(done.status),
        "attempts": done.attempts,
        "resumed": done.status == JobStatus.SUCCEEDED and done.attempts > 1,
        "rows_lost": len(set(committed) - set(final)),
        "epochs_in_order": final == list(range(1, len(final) + 1)),
        "error": done.error,
    }


def trial_worker(work: Path, n: int) -> dict[str, Any]:
    settings, db = _home(work / f"worker{n}")
    dataset = import_tiny(db, settings, work / f"src{n}")
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, JOB)
    first = start_worker(settings, work / f"w{n}a.log", "--poll-seconds", "0.2")
    try:
        at_kill = _job_trial(db, settings, job.id, lambda: os.kill(first.pid, signal.SIGKILL))
        first.wait(10)
    finally:
        stop_worker(first)
    second = start_worker(settings, work / f"w{n}b.log", "--poll-seconds", "0.2")
    try:
        out = _outcome(db, job.id, at_kill.pop("committed"))
    finally:
        stop_worker(second)
    result = {**at_kill, **out, **check_store(db, settings)}
    db.dispose()
    return result


def trials_child(work: Path, count: int) -> list[dict[str, Any]]:
    settings, db = _home(work / "child")
    dataset = import_tiny(db, settings, work / "src-child")
    proc = start_worker(settings, work / "w-child.log", "--poll-seconds", "0.2")
    results = []
    try:
        for _ in range(count):
            job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, JOB)

            def kill(job_id: int = job.id) -> None:
                pid = _child_pids(settings, job_id)[-1]
                if pid_alive(pid):
                    os.kill(pid, signal.SIGKILL)

            at_kill = _job_trial(db, settings, job.id, kill)
            out = _outcome(db, job.id, at_kill.pop("committed"))
            results.append({**at_kill, **out, **check_store(db, settings)})
        assert proc.poll() is None, "the worker survived every kill"
    finally:
        stop_worker(proc)
        db.dispose()
    return results


def trials_ingest(work: Path, count: int, images: int) -> list[dict[str, Any]]:
    settings, db = _home(work / "ingest")
    register_active_model(db, settings)
    env = dict(os.environ, DEFECTLENS_HOME=str(settings.home))
    env.pop("DEFECTLENS_DB_URL", None)
    results = []
    for n in range(count):
        folder = work / f"images{n}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for i in range(images):
            (folder / f"part{i:03d}.png").write_bytes(png(10_000 * (n + 1) + i))
        with db.read() as s:
            before = s.scalar(select(func.count(Inspection.id))) or 0
        proc = subprocess.Popen([*CLI, "ingest", str(folder), "--line", f"L{n}", "--json"],
                                env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(random.uniform(0.5, 12.0))
        with db.read() as s:
            committed = s.scalar(select(func.count(Inspection.id))) or 0
        finished_first = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        with db.read() as s:
            after = s.scalar(select(func.count(Inspection.id))) or 0
        results.append({"finished_before_kill": finished_first, "rows_before": before,
                        "rows_committed_at_kill": committed - before,
                        "rows_after": after - before, "rows_lost": max(0, committed - after),
                        **check_store(db, settings)})  # fmt: skip
    db.dispose()
    return results


def _summary(trials: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "trials": len(trials),
        "rows_lost": sum(t["rows_lost"] for t in trials),
        "jobs_stuck": sum(t["jobs_running"] for t in trials),
        "integrity_not_ok": sum(t["integrity"] != "ok" for t in trials),
        "missing_files": sum(t["missing_files"] for t in trials),
        "orphans_swept": sum(t["orphans_swept"] for t in trials),
        "resumed": sum(bool(t.get("resumed")) for t in trials),
        "failed": sum(t.get("status") == str(JobStatus.FAILED) for t in trials),
        "out_of_order": sum(t.get("epochs_in_order") is False for t in trials),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--kinds", default="worker,child,ingest")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--ingest-images",
        type=int,
        default=300,
        help="images per killed ingest (64 are committed at a time)",
    )
    args = parser.parse_args()
    random.seed(args.seed)
    os.environ.setdefault("DEFECTLENS_JOB_HEARTBEAT_TIMEOUT_S", "3")
    work = OUT_DIR / "faults"
    report: dict[str, Any] = {"bench": "faults", "machine": machine(), "kinds": {}}
    started = time.perf_counter()
    for kind in args.kinds.split(","):
        t0 = time.perf_counter()
        if kind == "worker":
            trials = [trial_worker(work, n) for n in range(args.trials)]
        elif kind == "child":
            trials = trials_child(work, args.trials)
        elif kind == "ingest":
            trials = trials_ingest(work, args.trials, args.ingest_images)
        else:
            raise SystemExit(f"unknown kind {kind!r}")
        report["kinds"][kind] = {"summary": _summary(trials), "seconds": round(
            time.perf_counter() - t0, 1), "trials": trials}  # fmt: skip
        print(f"{kind}: {report['kinds'][kind]['summary']}", file=sys.stderr)
    report["seconds"] = round(time.perf_counter() - started, 1)
    emit(report)


if __name__ == "__main__":
    main()
