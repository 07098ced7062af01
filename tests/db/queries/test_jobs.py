"""The job state machine's guarded UPDATEs on real migrated databases: SQLite, and PostgreSQL
(marked postgres; the `database` fixture is in conftest.py). Dropping any one guard (the
status, the owner, the staleness, the backend filter, SKIP LOCKED) makes a test here fail."""

from __future__ import annotations

import multiprocessing
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from db.engine import Database
from db.models import Dataset, JobStatus, TrainingJob
from db.queries import job_backends, job_metrics, jobs

T0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


@pytest.fixture
def queue_jobs(database: Database) -> Callable[..., list[int]]:
    """Insert n queued jobs on one dataset; their ids, oldest first."""
    with database.write() as s:
        dataset = Dataset(
            name="d",
            source="test",
            class_names=["ok", "scratch"],
            counts={"ok": 1, "scratch": 1},
            manifest_path="/m.json",
            content_hash="a" * 64,
        )
        s.add(dataset)
        s.flush()
        dataset_id = dataset.id

    def _queue(n: int = 1, backend: str = "local") -> list[int]:
        with database.write() as s:
            return [
                jobs.add_job(
                    s,
                    dataset_id=dataset_id,
                    config={"epochs": 1},
                    backend=backend,
                    created_by=None,
                    message="waiting for a worker",
                )
                for _ in range(n)
            ]

    return _queue


def _row(database: Database, job_id: int) -> TrainingJob:
    with database.read() as s:
        row = s.get(TrainingJob, job_id)
        assert row is not None
        return row


def _claim(database: Database, job_id: int, worker: str, now: datetime = T0) -> bool:
    with database.write() as s:
        return jobs.claim_job(s, job_id, worker, now)


# ------------------------------------------------------------------------------------- claiming


def test_claim_next_takes_the_oldest_queued_job_of_the_workers_backends(database, queue_jobs):
    ray_job = queue_jobs(1, backend="ray")[0]
    first, second = queue_jobs(2)
    with database.write() as s:
        claimed = jobs.claim_next(s, "w1", T0)
    assert claimed is not None and claimed.id == first
    assert claimed.status == JobStatus.RUNNING and claimed.worker_id == "w1"
    assert claimed.started_at == T0 and claimed.heartbeat_at == T0
    with database.write() as s:
        assert jobs.claim_next(s, "w2", T0).id == second  # type: ignore[union-attr]
        assert jobs.claim_next(s, "w3", T0) is None  # the Ray job is not a worker's
        assert jobs.claim_next(s, "w3", T0, backends=("ray",)).id == ray_job  # type: ignore[union-attr]


def test_a_claimed_job_cannot_be_claimed_again(database, queue_jobs):
    (job,) = queue_jobs()
    assert _claim(database, job, "a")
    assert not _claim(database, job, "b", T0 + MINUTE)
    row = _row(database, job)
    assert (row.worker_id, row.started_at) == ("a", T0)


def test_a_waiting_claimer_loses_to_the_one_that_committed_first(database, queue_jobs):
    """Two write transactions race for one job: the second waits for the first (row lock on
    PostgreSQL, BEGIN IMMEDIATE on SQLite), then its status guard no longer matches."""
    (job,) = queue_jobs()
    other = Database(database.url)
    first_claimed, release = threading.Event(), threading.Event()
    second: dict[str, Any] = {}

    def first_claimer() -> None:
        with database.write() as s:
            assert jobs.claim_job(s, job, "first", T0)
            first_claimed.set()
            release.wait(30)

    def second_claimer() -> None:
        with other.write() as s:
            second["won"] = jobs.claim_job(s, job, "second", T0)

    t1 = threading.Thread(target=first_claimer)
    t1.start()
    try:
        assert first_claimed.wait(30)
        t2 = threading.Thread(target=second_claimer)
        t2.start()
        time.sleep(0.3)
        assert t2.is_alive(), "the second claim must wait for the first transaction"
    finally:
        release.set()
        t1.join(30)
    t2.join(30)
    other.dispose()
    assert second == {"won": False}
    assert _row(database, job).worker_id == "first"


def test_claim_next_passes_over_a_job_another_claim_holds(database, queue_jobs):
    """While one worker's claim of the oldest job is uncommitted, another worker gets the next
    job (PostgreSQL: SKIP LOCKED, without waiting; SQLite: after the first commits)."""
    first, second = queue_jobs(2)
    other = Database(database.url)
    holding, release = threading.Event(), threading.Event()
    got: dict[str, Any] = {}

    def slow_claimer() -> None:
        with database.write() as s:
            got["slow"] = jobs.claim_next(s, "slow", T0)
            holding.set()
            release.wait(30)

    def quick_claimer() -> None:
        with other.write() as s:
            got["quick"] = jobs.claim_next(s, "quick", T0)
        got["quick_done_while_held"] = not release.is_set()

    t1 = threading.Thread(target=slow_claimer)
    t1.start()
    try:
        assert holding.wait(30)
        t2 = threading.Thread(target=quick_claimer)
        t2.start()
        t2.join(1.0 if not database.is_sqlite else 0.3)
    finally:
        release.set()
        t1.join(30)
    t2.join(30)
    other.dispose()
    assert got["slow"].id == first
    assert got["quick"] is not None and got["quick"].id == second
    if not database.is_sqlite:
        assert got["quick_done_while_held"], "SKIP LOCKED: no waiting for the held row"


def _claim_all(url: str, worker: str, start: Any, results: Any) -> None:
    """Runs in a spawned process: claim until the queue is empty; report the ids."""
    try:
        database = Database(url)
        with database.read() as s:  # connect before the start line
            s.execute(select(1))
        start.wait(timeout=60)
        claimed = []
        while True:
            with database.write() as s:
                job = jobs.claim_next(s, worker, datetime.now(UTC))
            if job is None:
                break
            claimed.append(job.id)
        database.dispose()
        results.put((worker, claimed, None))
    except BaseException:  # noqa: BLE001 - report any failure to the parent test
        results.put((worker, [], traceback.format_exc()))
        raise


@pytest.mark.slow
def test_concurrent_worker_processes_claim_each_job_exactly_once(database, queue_jobs):
    ids = queue_jobs(40)
    ctx = multiprocessing.get_context("spawn")
    workers = [f"w{i}" for i in range(4)]
    start, results = ctx.Barrier(len(workers) + 1), ctx.Queue()
    procs = [
        ctx.Process(target=_claim_all, args=(database.url, w, start, results)) for w in workers
    ]
    for p in procs:
        p.start()
    try:
        start.wait(timeout=120)
        outcomes = [results.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    assert [tb for _w, _ids, tb in outcomes if tb] == []
    claimed = {w: got for w, got, _tb in outcomes}
    flat = sorted(i for got in claimed.values() for i in got)
    assert flat == ids, "every job claimed exactly once"
    with database.read() as s:
        owners = dict(s.execute(select(TrainingJob.id, TrainingJob.worker_id)).all())
    assert owners == {i: w for w, got in claimed.items() for i in got}


# ------------------------------------------------------------------------- heartbeat and finish


def test_only_the_owner_may_heartbeat(database, queue_jobs):
    (job,) = queue_jobs()
    assert _claim(database, job, "owner")
    later = T0 + MINUTE
    with database.write() as s:
        stranger = jobs.heartbeat(s, job, "stranger", later, progress=0.9, message="hijacked")
    assert not stranger.owned
    row = _row(database, job)
    assert (row.heartbeat_at, row.progress, row.message) == (T0, 0.0, "starting")
    with database.write() as s:
        beat = jobs.heartbeat(s, job, "owner", later, progress=1.7, message="epoch 1/2")
    assert beat.owned and not beat.cancel_requested
    row = _row(database, job)
    assert (row.heartbeat_at, row.progress, row.message) == (later, 1.0, "epoch 1/2")


def test_a_queued_or_finished_job_takes_no_heartbeat(database, queue_jobs):
    queued, done = queue_jobs(2)
    assert _claim(database, done, "w")
    with database.write() as s:
        assert jobs.finish(s, done, "w", JobStatus.SUCCEEDED, T0)
        assert not jobs.heartbeat(s, queued, "w", T0).owned
        assert not jobs.heartbeat(s, done, "w", T0 + MINUTE).owned
    assert _row(database, done).heartbeat_at == T0


def test_finish_is_guarded_by_owner_and_status(database, queue_jobs):
    (job,) = queue_jobs()
    assert _claim(database, job, "w1")
    with database.write() as s:
        assert not jobs.finish(s, job, "w2", JobStatus.FAILED, T0, error="not mine")
        assert jobs.finish(s, job, "w1", JobStatus.SUCCEEDED, T0 + MINUTE, message="model 1")
        assert not jobs.finish(s, job, "w1", JobStatus.FAILED, T0 + 2 * MINUTE, error="late")
        assert not jobs.finish(s, job, None, JobStatus.CANCELLED, T0 + 2 * MINUTE)
    row = _row(database, job)
    assert (row.status, row.error, row.message) == ("succeeded", None, "model 1")
    assert (row.progress, row.finished_at) == (1.0, T0 + MINUTE)
    with database.write() as s, pytest.raises(ValueError, match="not a final status"):
        jobs.finish(s, job, "w1", JobStatus.RUNNING, T0)


def test_finish_does_not_overwrite_a_cancelled_job(database, queue_jobs):
    (job,) = queue_jobs()
    with database.write() as s:
        assert jobs.cancel_queued(s, job, T0, "cancelled by eve before it started")
        assert not jobs.finish(s, job, None, JobStatus.SUCCEEDED, T0 + MINUTE)
    row = _row(database, job)
    assert (row.status, row.finished_at, row.progress) == ("cancelled", T0, 0.0)


def test_should_stop_for_cancel_other_owner_or_end(database, queue_jobs):
    (job,) = queue_jobs()
    with database.read() as s:
        assert jobs.should_stop(s, job, "w")  # queued, not running under w
        assert jobs.should_stop(s, 12345, "w")  # gone
    assert _claim(database, job, "w")
    with database.read() as s:
        assert not jobs.should_stop(s, job, "w")
        assert jobs.should_stop(s, job, "someone else")
    with database.write() as s:
        assert jobs.request_cancel(s, job, "cancel requested")
    with database.read() as s:
        assert jobs.should_stop(s, job, "w")


# -------------------------------------------------------------------------------------- sweeping


def test_sweep_fails_stale_running_jobs_and_leaves_fresh_ones(database, queue_jobs):
    stale, fresh, never_beat, queued = queue_jobs(4)
    assert _claim(database, stale, "dead", T0)
    assert _claim(database, fresh, "alive", T0)
    assert _claim(database, never_beat, "dead", T0)
    now = T0 + 10 * MINUTE
    with database.write() as s:
        assert jobs.heartbeat(s, fresh, "alive", now - MINUTE).owned
    cutoff = now - 5 * MINUTE
    with database.read() as s:
        found = jobs.find_stale(s, cutoff)
    assert [j.id for j in found] == [stale, never_beat]
    assert found[0].worker_id == "dead" and found[0].heartbeat_at == T0
    with database.write() as s:
        for j in found:
            assert jobs.fail_stale(s, j.id, cutoff, "worker stopped responding", now)
    assert _row(database, stale).status == _row(database, never_beat).status == "failed"
    row = _row(database, stale)
    assert (row.error, row.message, row.finished_at) == (
        "worker stopped responding",
        "failed: worker stopped responding",
        now,
    )
    assert _row(database, fresh).status == "running"
    assert _row(database, queued).status == "queued"
    with database.write() as s:  # the dead worker cannot resurrect or end it
        assert not jobs.heartbeat(s, stale, "dead", now).owned
        assert not jobs.finish(s, stale, "dead", JobStatus.SUCCEEDED, now)
    assert _row(database, stale).status == "failed"


def test_a_beat_after_the_stale_check_saves_the_job(database, queue_jobs):
    (job,) = queue_jobs()
    assert _claim(database, job, "slow", T0)
    now = T0 + 10 * MINUTE
    cutoff = now - 5 * MINUTE
    with database.read() as s:
        assert [j.id for j in jobs.find_stale(s, cutoff)] == [job]
    with database.write() as s:
        assert jobs.heartbeat(s, job, "slow", now).owned  # it was only slow
    with database.write() as s:
        assert not jobs.fail_stale(s, job, cutoff, "worker stopped responding", now)
    assert _row(database, job).status == "running"


# ------------------------------------------------------------------------------------ cancelling


def test_cancel_of_a_queued_job_ends_it_at_once(database, queue_jobs):
    (job,) = queue_jobs()
    with database.write() as s:
        assert not jobs.request_cancel(s, job, "not running yet")
        assert jobs.cancel_queued(s, job, T0, "cancelled by eve before it started")
    row = _row(database, job)
    assert (row.status, row.cancel_requested, row.finished_at) == ("cancelled", True, T0)
    assert row.message == "cancelled by eve before it started"
    assert not _claim(database, job, "w")  # a cancelled job is never claimed
    with database.write() as s:
        assert jobs.claim_next(s, "w", T0) is None


def test_cancel_of_a_running_job_only_sets_the_flag(database, queue_jobs):
    (job,) = queue_jobs()
    assert _claim(database, job, "w")
    with database.write() as s:
        assert not jobs.cancel_queued(s, job, T0, "too late for that")
        assert jobs.request_cancel(s, job, "cancel requested by eve")
    row = _row(database, job)
    assert (row.status, row.cancel_requested, row.finished_at) == ("running", True, None)
    with database.write() as s:
        assert jobs.heartbeat(s, job, "w", T0 + MINUTE).cancel_requested
        assert jobs.finish(s, job, "w", JobStatus.CANCELLED, T0 + MINUTE)
        assert not jobs.cancel_queued(s, job, T0, "x")  # finished: neither applies
        assert not jobs.request_cancel(s, job, "x")
    assert _row(database, job).message == "cancel requested by eve"


# ------------------------------------------------------------------------- records and metrics


def test_records_list_newest_first_with_metrics_by_epoch(database, queue_jobs):
    a, b = queue_jobs(2)
    assert _claim(database, b, "w")
    with database.write() as s:
        for epoch in (2, 1):
            job_metrics.add_metric(
                s, b, epoch=epoch, train_loss=0.5 / epoch, val_loss=None, val_accuracy=0.8,
                macro_f1=0.7, learning_rate=1e-3, images_per_second=100.0 * epoch,
                class_recall={"ok": 1.0, "rare": 0.25 * epoch} if epoch == 2 else None,
            )  # fmt: skip
    with database.read() as s:
        assert [j.id for j in jobs.list_jobs(s)] == [b, a]
        assert [j.id for j in jobs.list_jobs(s, statuses=["queued"])] == [a]
        record = jobs.get_job(s, b)
        assert jobs.get_job(s, 12345) is None
        metrics = job_metrics.list_metrics(s, b)
    assert record is not None and record.status == JobStatus.RUNNING and record.dataset_name == "d"
    assert record.model_id is None and record.created_by is None
    assert [(m.epoch, m.images_per_second) for m in metrics] == [(1, 100.0), (2, 200.0)]
    assert [m.class_recall for m in metrics] == [None, {"ok": 1.0, "rare": 0.5}]


# ----------------------------------------------------------------------- external backends (Ray)


def test_a_backend_refusal_fails_only_a_job_that_has_not_started(database, queue_jobs):
    refused, started = queue_jobs(2, backend="ray")
    assert _claim(database, started, "ray:x")
    with database.write() as s:
        for job in (refused, started):
            job_backends.end_run(
                s, job, JobStatus.FAILED, T0, error="Ray refused the job", only_queued=True
            )
    assert (_row(database, refused).status, _row(database, refused).error) == (
        "failed",
        "Ray refused the job",
    )
    assert _row(database, started).status == "running"


def test_sync_ends_unfinished_runs_and_never_a_finished_row(database, queue_jobs):
    waiting, running, done, unsubmitted = queue_jobs(4, backend="ray")
    with database.write() as s:
        for job in (waiting, running, done):
            job_backends.set_backend_ref(s, job, f"sub-{job} http://head:8265", "submitted")
    assert _claim(database, running, "ray:r") and _claim(database, done, "ray:d")
    with database.write() as s:
        assert jobs.finish(s, done, "ray:d", JobStatus.SUCCEEDED, T0)
    with database.read() as s:
        runs = job_backends.unfinished_runs(s, "ray")
        assert job_backends.unfinished_runs(s, "local") == []
    assert [(r.id, r.backend_ref) for r in runs] == [
        (waiting, f"sub-{waiting} http://head:8265"),
        (running, f"sub-{running} http://head:8265"),
    ]
    with database.write() as s:
        assert job_backends.end_run(s, running, JobStatus.FAILED, T0, error="Ray job ended")
        assert job_backends.end_run(s, waiting, JobStatus.CANCELLED, T0, error=None)
        assert not job_backends.end_run(s, done, JobStatus.FAILED, T0, error="late")
    assert [_row(database, j).status for j in (waiting, running, done, unsubmitted)] == [
        "cancelled",
        "failed",
        "succeeded",
        "queued",
    ]
