"""Reliability of the worker with real `defectlens worker` subprocesses and a real SQLite file.

Every test here starts workers as separate processes (each job trains in a child of its
worker), so they are slow by nature; the heartbeat timeout is 3 s in these tests.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file
from sqlalchemy import func, select

from core.auth import permissions
from core.config import Settings
from core.jobs import queue
from core.registry import catalog
from core.training.config import TrainConfig
from db.engine import Database
from db.models import JobStatus, Model
from db.queries import jobs
from db.queries.catalog import DatasetRecord
from tests.core.jobs_support import (
    import_tiny,
    pid_alive,
    start_worker,
    stop_worker,
    wait_for,
)

pytestmark = pytest.mark.slow

QUICK = TrainConfig(epochs=1, img_size=32, device="cpu", batch_size=16)
LONG = TrainConfig(epochs=400, img_size=32, device="cpu", batch_size=16)


@pytest.fixture
def dataset(db: Database, settings: Settings, tmp_path: Path) -> DatasetRecord:
    return import_tiny(db, settings, tmp_path / "src")


def _models_of(db: Database, job_id: int) -> int:
    with db.read() as s:
        return s.scalar(select(func.count(Model.id)).where(Model.training_job_id == job_id)) or 0


def _finished(db: Database, job_id: int) -> jobs.JobRecord | None:
    job = queue.get_job(db, permissions.SYSTEM, job_id)
    return job if job.is_finished else None


def _training_pid(settings: Settings, job_id: int) -> int:
    text = queue.log_path(settings, job_id).read_text()
    return int(re.search(r"started by \S+ \(pid (\d+)\)", text).group(1))  # type: ignore[union-attr]


def test_a_job_runs_to_a_candidate_model_with_metrics_and_log(db, settings, dataset, tmp_path):
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, TrainConfig(
        epochs=2, img_size=32, device="cpu", batch_size=16))  # fmt: skip
    proc = start_worker(settings, tmp_path / "w.log", "--once")
    assert proc.wait(120) == 0
    done = queue.get_job(db, permissions.SYSTEM, job.id)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.progress == 1.0 and done.model_id is not None and done.finished_at is not None
    model = catalog.get_model(db, permissions.SYSTEM, done.model_id)
    assert model.status == "candidate" and model.training_job_id == job.id
    assert [m.epoch for m in queue.job_metrics(db, permissions.SYSTEM, job.id)] == [1, 2]
    assert all(
        m.images_per_second and m.learning_rate
        for m in queue.job_metrics(db, permissions.SYSTEM, job.id)
    )
    # Every epoch stores each class's validation recall (the Training page plots it).
    assert all(
        m.class_recall is not None and set(m.class_recall) == set(model.class_names)
        for m in queue.job_metrics(db, permissions.SYSTEM, job.id)
    )
    assert "epoch 2/2" in queue.log_tail(settings, permissions.SYSTEM, done)
    ckpt = queue.job_dir(settings, job.id)
    assert load_file(ckpt / "checkpoint.safetensors")  # the atomic checkpoint is readable
    assert json.loads((ckpt / "checkpoint.json").read_text())["epoch"] >= 1


def test_sigkill_of_the_worker_fails_the_job_and_the_next_one_runs(db, settings, dataset, tmp_path):
    # One start only: the sweep fails the job (test_resume_jobs.py: with retries it resumes).
    once = {"DEFECTLENS_JOB_MAX_ATTEMPTS": "1"}
    victim = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, LONG)
    nxt = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, QUICK)
    first = start_worker(settings, tmp_path / "w1.log", "--poll-seconds", "0.2", **once)
    try:
        # Mid-training.
        wait_for(lambda: queue.job_metrics(db, permissions.SYSTEM, victim.id), 90, "epoch 1")
        child = _training_pid(settings, victim.id)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        # The orphaned training process notices its worker is gone and stops by itself.
        wait_for(lambda: not pid_alive(child), 15, "the orphaned training process to exit")
        killed_at = time.monotonic()
        second = start_worker(settings, tmp_path / "w2.log", "--poll-seconds", "0.2", **once)
        try:
            failed = wait_for(lambda: _finished(db, victim.id), 60, "the sweep to fail the job")
            assert time.monotonic() - killed_at < 60
            assert failed.status == JobStatus.FAILED
            assert failed.error and "worker stopped responding (no heartbeat since" in failed.error
            assert _models_of(db, victim.id) == 0
            after = wait_for(lambda: _finished(db, nxt.id), 120, "the next queued job")
            assert after.status == JobStatus.SUCCEEDED and after.model_id is not None
            assert after.worker_id != failed.worker_id
        finally:
            stop_worker(second)
    finally:
        stop_worker(first)


def test_cancel_ends_a_running_job_cancelled_within_10_s(db, settings, dataset, tmp_path):
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, LONG)
    proc = start_worker(settings, tmp_path / "w.log", "--poll-seconds", "0.2")
    try:
        wait_for(lambda: queue.job_metrics(db, permissions.SYSTEM, job.id), 90, "the first epoch")
        asked = time.monotonic()
        assert queue.cancel_job(db, permissions.SYSTEM, job.id).cancel_requested
        done = wait_for(lambda: _finished(db, job.id), 10, "the job to end cancelled")
        assert time.monotonic() - asked <= 10
        assert done.status == JobStatus.CANCELLED and done.error is None
        assert done.message and "cancelled after" in done.message
        assert _models_of(db, job.id) == 0
        assert proc.poll() is None, "the worker survives a cancelled job"
    finally:
        stop_worker(proc)


def test_two_workers_run_each_of_six_jobs_exactly_once(db, settings, dataset, tmp_path):
    ids = [
        queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, QUICK).id for _ in range(6)
    ]
    workers = [
        start_worker(settings, tmp_path / f"w{i}.log", "--poll-seconds", "0.1") for i in range(2)
    ]
    try:
        for job_id in ids:
            wait_for(lambda j=job_id: _finished(db, j), 240, f"job {job_id}")
    finally:
        for w in workers:
            stop_worker(w)
    for job_id in ids:
        job = queue.get_job(db, permissions.SYSTEM, job_id)
        assert job.status == JobStatus.SUCCEEDED, job.error
        assert _models_of(db, job_id) == 1
        assert [m.epoch for m in queue.job_metrics(db, permissions.SYSTEM, job_id)] == [1]
        started = queue.log_path(settings, job_id).read_text().count(f"job {job_id} started by")
        assert started == 1
    claims = "".join((tmp_path / f"w{i}.log").read_text() for i in range(2))
    claimed = sorted(int(m) for m in re.findall(r"claimed job (\d+)", claims))
    assert claimed == sorted(ids)


def test_models_dir_unwritable_fails_the_job_and_registers_nothing(db, settings, dataset, tmp_path):
    # Tests run as root, so permissions stop nothing: a FILE where the models folder should be
    # makes the artifact's mkdir fail with ENOTDIR for root too. It breaks while the worker
    # runs (at start the worker would refuse the data directory).
    log = tmp_path / "w.log"
    proc = start_worker(settings, log, "--poll-seconds", "0.2")
    wait_for(lambda: log.exists() and "polling every" in log.read_text(), 60, "the worker")
    models = settings.models_dir
    models.rmdir()
    models.write_bytes(b"not a folder")
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, TrainConfig(
        epochs=2, img_size=32, device="cpu", batch_size=16))  # fmt: skip
    try:
        done = wait_for(lambda: _finished(db, job.id), 120, "the job to end")
        assert proc.poll() is None, "the worker itself survives"
    finally:
        stop_worker(proc)
    assert done.status == JobStatus.FAILED
    assert done.error and done.error.startswith("Not a directory:") and str(models) in done.error
    assert _models_of(db, job.id) == 0 and done.model_id is None
    assert models.read_bytes() == b"not a folder"
    # Earlier files are intact: the epoch checkpoints written before the failure still load.
    ckpt = queue.job_dir(settings, job.id)
    assert load_file(ckpt / "checkpoint.safetensors")
    assert not list(ckpt.glob(".*.tmp")), "no temp file left behind"
    assert "Traceback" in queue.log_tail(settings, permissions.SYSTEM, done, 200)


@pytest.fixture
def tiny_disk(settings: Settings, db: Database) -> Path:
    """A 3 MiB tmpfs where the next job's folder will be (a real ENOSPC, even for root)."""
    target = queue.job_dir(settings, 1)
    target.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(target)], capture_output=True
    )
    if mounted.returncode != 0:
        target.rmdir()
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()})")
    yield target
    subprocess.run(["umount", "-l", str(target)], check=False)


def test_disk_full_while_saving_a_checkpoint_fails_the_job(
    db, settings, dataset, tmp_path, tiny_disk
):
    earlier = tiny_disk / "earlier.txt"
    earlier.write_text("written before the job")
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, QUICK)
    assert queue.job_dir(settings, job.id) == tiny_disk
    proc = start_worker(settings, tmp_path / "w.log", "--once")
    assert proc.wait(120) == 0
    done = queue.get_job(db, permissions.SYSTEM, job.id)
    assert done.status == JobStatus.FAILED
    assert done.error and done.error.startswith("No space left on device")
    assert _models_of(db, job.id) == 0
    assert earlier.read_text() == "written before the job"
    assert not (tiny_disk / "checkpoint.safetensors").exists(), "no half-written checkpoint"
    assert not list(tiny_disk.glob(".*.tmp"))
    with db.read() as s:
        assert s.scalar(select(func.count(Model.id))) == 0
