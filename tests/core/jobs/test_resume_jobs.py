"""A training job whose process or worker is killed resumes from its last epoch (issue 12).

Real `defectlens worker` subprocesses on a real SQLite file: the training child is SIGKILLed
mid-run, then the worker itself; each time the job goes back to the queue and the next start
goes on after the last finished epoch, until DEFECTLENS_JOB_MAX_ATTEMPTS starts are used up.
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest

from core.auth import permissions
from core.config import Settings
from core.jobs import queue
from core.training import resume
from core.training.config import TrainConfig
from db.engine import Database
from db.models import JobStatus
from db.queries.catalog import DatasetRecord
from db.queries.jobs import JobRecord
from tests.core.jobs_support import import_tiny, pid_alive, start_worker, stop_worker, wait_for

pytestmark = pytest.mark.slow

EPOCHS = 30
RESUMABLE = TrainConfig(epochs=EPOCHS, img_size=32, device="cpu", batch_size=8)
FOREVER = TrainConfig(epochs=4000, img_size=32, device="cpu", batch_size=8)


@pytest.fixture
def dataset(db: Database, settings: Settings, tmp_path: Path) -> DatasetRecord:
    return import_tiny(db, settings, tmp_path / "src")


def _log(settings: Settings, job_id: int) -> str:
    path = queue.log_path(settings, job_id)
    return path.read_text() if path.exists() else ""


def _child_pids(settings: Settings, job_id: int) -> list[int]:
    return [int(p) for p in re.findall(r"started by \S+ \(pid (\d+)\)", _log(settings, job_id))]


def _epochs(db: Database, job_id: int) -> list[int]:
    return [m.epoch for m in queue.job_metrics(db, permissions.SYSTEM, job_id)]


def _finished(db: Database, job_id: int) -> JobRecord | None:
    """The job once it has ended, else None (for wait_for)."""
    job = queue.get_job(db, permissions.SYSTEM, job_id)
    return job if job.is_finished else None


def _kill_child_after_an_epoch(db: Database, settings: Settings, job_id: int, start: int) -> int:
    """SIGKILL the job's training process of the given start once it has finished an epoch."""
    pid = wait_for(lambda: (_child_pids(settings, job_id) + [0] * start)[start - 1], 60,
                   f"start {start} of the job")  # fmt: skip
    done_before = len(_epochs(db, job_id))
    wait_for(lambda: len(_epochs(db, job_id)) > done_before, 60, "an epoch of this start")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not pid_alive(pid), 10, "the killed process to go")
    return len(_epochs(db, job_id))


def test_a_killed_training_process_resumes_from_its_last_epoch(db, settings, dataset, tmp_path):
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, RESUMABLE)
    proc = start_worker(settings, tmp_path / "w.log", "--poll-seconds", "0.2")
    try:
        done_at_kill = _kill_child_after_an_epoch(db, settings, job.id, 1)
        assert done_at_kill < EPOCHS, "the kill came before the end"
        done = wait_for(lambda: _finished(db, job.id), 120,
                        "the resumed job to end")  # fmt: skip
    finally:
        stop_worker(proc)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.attempts == 2 and done.model_id is not None
    # Every epoch recorded once, in order: the second start went on after the first one's last.
    assert _epochs(db, job.id) == list(range(1, EPOCHS + 1))
    text = _log(settings, job.id)
    assert "training process was killed by SIGKILL" in text
    resumed_from = int(re.search(r"resuming after epoch (\d+) of", text).group(1))  # type: ignore[union-attr]
    assert resumed_from >= 1 and resumed_from >= done_at_kill - 1
    # The first start ran only up to the kill: the second one trained the rest, not all of it.
    second = text[text.index("resuming after epoch") :]
    assert f"epoch 1/{EPOCHS} " not in second and f"epoch {EPOCHS}/{EPOCHS} " in second
    assert not (queue.job_dir(settings, job.id) / resume.RESUME_FILE).exists(), "cleaned up"


def test_a_killed_worker_is_swept_and_the_next_worker_resumes_its_job(
    db, settings, dataset, tmp_path
):
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, RESUMABLE)
    first = start_worker(settings, tmp_path / "w1.log", "--poll-seconds", "0.2")
    try:
        wait_for(lambda: _epochs(db, job.id), 60, "the first epoch")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        stop_worker(first)
    second = start_worker(settings, tmp_path / "w2.log", "--poll-seconds", "0.2")
    try:
        done = wait_for(lambda: _finished(db, job.id), 120,
                        "the swept job to be resumed and end")  # fmt: skip
    finally:
        stop_worker(second)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.attempts == 2
    assert _epochs(db, job.id) == list(range(1, EPOCHS + 1))
    assert "worker stopped responding" in _log(settings, job.id) or "is gone" in _log(
        settings, job.id
    )
    assert "resuming after epoch" in _log(settings, job.id)


def test_a_job_killed_at_every_start_fails_after_the_configured_attempts(
    db, settings, dataset, tmp_path
):
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, FOREVER)
    proc = start_worker(settings, tmp_path / "w.log", "--poll-seconds", "0.2",
                        DEFECTLENS_JOB_MAX_ATTEMPTS="2")  # fmt: skip
    try:
        _kill_child_after_an_epoch(db, settings, job.id, 1)
        _kill_child_after_an_epoch(db, settings, job.id, 2)
        done = wait_for(lambda: _finished(db, job.id), 30,
                        "the job to fail")  # fmt: skip
        assert proc.poll() is None, "the worker survives"
    finally:
        stop_worker(proc)
    assert done.status == JobStatus.FAILED
    assert done.attempts == 2
    assert done.error and "killed by SIGKILL" in done.error and "start 2 of 2" in done.error
    epochs = _epochs(db, job.id)
    assert epochs == list(range(1, len(epochs) + 1)), "the second start went on, not over"
