"""Training jobs: the queue's reads and the job state machine. Callers own the transaction.

Per-epoch metrics are in ``db.queries.job_metrics``; the rows an external backend (Ray) runs
are synced through ``db.queries.job_backends``.

Every state change is a guarded UPDATE: its WHERE names the state the change starts from
(``status = 'queued'`` to claim, ``status = 'running' AND worker_id = me`` to beat or finish),
and its rowcount says whether it happened. Two processes can never both move the same job,
on SQLite (writes are BEGIN IMMEDIATE) and on PostgreSQL (row locks; the WHERE is re-checked
after a wait). tests/db/queries/test_jobs.py races them on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, func, select, update
from sqlalchemy.orm import Session

from db.models import Dataset, JobStatus, Model, TrainingJob, User, utcnow

FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
MESSAGE_MAX = 2000
ERROR_MAX = 4000


@dataclass(frozen=True)
class JobRecord:
    """One training job as pages and the CLI show it."""

    id: int
    status: JobStatus
    dataset_id: int | None
    dataset_name: str | None
    config: dict[str, Any]
    backend: str
    worker_id: str | None
    progress: float  # 0..1
    message: str | None
    error: str | None
    cancel_requested: bool
    created_by: str | None  # username
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    heartbeat_at: datetime | None
    model_id: int | None  # the model registered from this job
    eta_seconds: float | None
    backend_ref: str | None = None  # e.g. the Ray submission id
    attempts: int = 0  # how many times a worker has started it

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class Beat:
    """What a heartbeat learned: whether the job is still ours and whether to stop."""

    owned: bool
    cancel_requested: bool


@dataclass(frozen=True)
class StaleJob:
    """A running job whose last sign of life is older than the cutoff."""

    id: int
    worker_id: str | None
    heartbeat_at: datetime | None


# ------------------------------------------------------------------------------ reads and mapper


def _eta(row: TrainingJob, now: datetime) -> float | None:
    """Remaining seconds, extrapolated from the time the job has run and its progress."""
    if row.status != JobStatus.RUNNING or row.started_at is None:
        return None
    if not 0.0 < row.progress < 1.0:
        return None
    elapsed = (now - row.started_at).total_seconds()
    return max(0.0, elapsed * (1.0 - row.progress) / row.progress)


def _to_record(
    result: Row[TrainingJob, str | None, str | None, int | None], now: datetime
) -> JobRecord:
    """The one mapper: a job row, its dataset name, submitter and model -> JobRecord."""
    row, dataset_name, username, model_id = result
    return JobRecord(
        id=row.id,
        status=JobStatus(row.status),
        dataset_id=row.dataset_id,
        dataset_name=dataset_name,
        config=dict(row.config or {}),
        backend=row.backend,
        worker_id=row.worker_id,
        progress=float(row.progress or 0.0),
        message=row.message,
        error=row.error,
        cancel_requested=bool(row.cancel_requested),
        created_by=username,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
        model_id=model_id,
        eta_seconds=_eta(row, now),
        backend_ref=row.backend_ref,
        attempts=int(row.attempts or 0),
    )


def _select_records() -> Select[TrainingJob, str | None, str | None, int | None]:
    model_id = (
        select(func.max(Model.id)).where(Model.training_job_id == TrainingJob.id).scalar_subquery()
    )
    return (
        select(TrainingJob, Dataset.name, User.username, model_id)
        .outerjoin(Dataset, Dataset.id == TrainingJob.dataset_id)
        .outerjoin(User, User.id == TrainingJob.created_by)
    )


def get_job(session: Session, job_id: int) -> JobRecord | None:
    """One job with its dataset name, submitter and registered model; None when missing."""
    row = session.execute(_select_records().where(TrainingJob.id == job_id)).first()
    return None if row is None else _to_record(row, utcnow())


def list_jobs(
    session: Session, *, limit: int = 100, statuses: Sequence[str] | None = None
) -> list[JobRecord]:
    """Jobs, newest first, optionally only some statuses."""
    stmt = _select_records().order_by(TrainingJob.id.desc()).limit(limit)
    if statuses:
        stmt = stmt.where(TrainingJob.status.in_([str(s) for s in statuses]))
    now = utcnow()
    return [_to_record(row, now) for row in session.execute(stmt).all()]


def submitter(session: Session, job_id: int) -> User | None:
    """The user who submitted the job; None for a job queued from the server's shell."""
    return session.scalar(
        select(User)
        .join(TrainingJob, TrainingJob.created_by == User.id)
        .where(TrainingJob.id == job_id)
    )


def should_stop(session: Session, job_id: int, worker_id: str) -> bool:
    """True when the job was cancelled or is no longer running under this worker."""
    row = session.execute(
        select(TrainingJob.status, TrainingJob.worker_id, TrainingJob.cancel_requested).where(
            TrainingJob.id == job_id
        )
    ).first()
    if row is None:
        return True
    status, owner, cancel = row
    return bool(cancel) or status != JobStatus.RUNNING or owner != worker_id


# ------------------------------------------------------------------------ queueing and cancelling


def add_job(
    session: Session,
    *,
    dataset_id: int,
    config: dict[str, Any],
    backend: str,
    created_by: int | None,
    message: str,
) -> int:
    """Insert a queued job; its id (flushed, not committed)."""
    row = TrainingJob(
        status=JobStatus.QUEUED.value,
        dataset_id=dataset_id,
        config=config,
        backend=backend,
        progress=0.0,
        message=message,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return row.id


def _guarded(session: Session, *where: Any, **values: Any) -> bool:
    """UPDATE training_jobs SET values WHERE all of where; True when exactly one row moved."""
    result = session.execute(
        update(TrainingJob)
        .where(*where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def set_log_path(session: Session, job_id: int, path: str) -> None:
    """Record where the job's log file is."""
    _guarded(session, TrainingJob.id == job_id, log_path=path)


def cancel_queued(session: Session, job_id: int, now: datetime, message: str) -> bool:
    """queued -> cancelled at once; False when the job is not queued (any more)."""
    return _guarded(
        session,
        TrainingJob.id == job_id,
        TrainingJob.status == JobStatus.QUEUED.value,
        status=JobStatus.CANCELLED.value,
        cancel_requested=True,
        finished_at=now,
        message=message[:MESSAGE_MAX],
    )


def request_cancel(session: Session, job_id: int, message: str) -> bool:
    """Flag a running job to stop at its next batch; False when it is not running."""
    return _guarded(
        session,
        TrainingJob.id == job_id,
        TrainingJob.status == JobStatus.RUNNING.value,
        cancel_requested=True,
        message=message[:MESSAGE_MAX],
    )


# -------------------------------------------------------------- the state changes a worker makes


def claim_job(session: Session, job_id: int, worker_id: str, now: datetime) -> bool:
    """queued -> running for this worker; False when the job was not queued (someone was first)."""
    return _guarded(
        session,
        TrainingJob.id == job_id,
        TrainingJob.status == JobStatus.QUEUED.value,
        status=JobStatus.RUNNING.value,
        worker_id=worker_id,
        started_at=now,
        heartbeat_at=now,
        message="starting",
        attempts=TrainingJob.attempts + 1,
    )


def claim_next(
    session: Session, worker_id: str, now: datetime, backends: Sequence[str] = ("local",)
) -> JobRecord | None:
    """Atomically move the oldest queued job of these backends to running for this worker.

    None when the queue is empty. On PostgreSQL, FOR UPDATE SKIP LOCKED lets concurrent
    workers pick different rows without waiting; on SQLite the write transaction is BEGIN
    IMMEDIATE, so claims are serialised. On both, claim_job's guard makes a double claim
    impossible.
    """
    oldest = (
        select(TrainingJob.id)
        .where(TrainingJob.status == JobStatus.QUEUED.value, TrainingJob.backend.in_(backends))
        .order_by(TrainingJob.id)
        .limit(1)
        .with_for_update(skip_locked=True)
    )
    job_id = session.scalar(oldest)
    if job_id is None or not claim_job(session, job_id, worker_id, now):
        return None
    return get_job(session, job_id)


def heartbeat(
    session: Session,
    job_id: int,
    worker_id: str,
    now: datetime,
    *,
    progress: float | None = None,
    message: str | None = None,
) -> Beat:
    """Record that the job's worker is alive (and its progress or status text, if given).

    Only the worker that runs the job may beat: the Beat says whether the row was still its to
    run, and whether a cancel was asked for.
    """
    values: dict[str, Any] = {"heartbeat_at": now}
    if progress is not None:
        values["progress"] = min(max(progress, 0.0), 1.0)
    if message is not None:
        values["message"] = message[:MESSAGE_MAX]
    owned = _guarded(
        session,
        TrainingJob.id == job_id,
        TrainingJob.status == JobStatus.RUNNING.value,
        TrainingJob.worker_id == worker_id,
        **values,
    )
    cancel = session.scalar(select(TrainingJob.cancel_requested).where(TrainingJob.id == job_id))
    return Beat(owned=owned, cancel_requested=bool(cancel))


def finish(
    session: Session,
    job_id: int,
    worker_id: str | None,
    status: JobStatus,
    now: datetime,
    *,
    message: str | None = None,
    error: str | None = None,
) -> bool:
    """End a running job (of this worker, unless None); False when a sweep or cancel was first."""
    if status not in FINISHED:
        raise ValueError(f"{status} is not a final status")
    values: dict[str, Any] = {"status": status.value, "finished_at": now}
    if status == JobStatus.SUCCEEDED:
        values["progress"] = 1.0
    if message is not None:
        values["message"] = message[:MESSAGE_MAX]
    if error is not None:
        values["error"] = error[:ERROR_MAX]
    where = [TrainingJob.id == job_id, TrainingJob.status == JobStatus.RUNNING.value]
    if worker_id is not None:
        where.append(TrainingJob.worker_id == worker_id)
    return _guarded(session, *where, **values)


def requeue(
    session: Session, job_id: int, worker_id: str | None, message: str, *, cutoff: datetime | None
) -> bool:
    """running -> queued again, for another start that resumes it (core.jobs.lifecycle decides).

    Guarded like ``finish`` (this worker's, unless None) and, with a cutoff, like ``fail_stale``
    (only while the job is still stale: a late beat wins). The progress stays: it resumes there.
    """
    where = [TrainingJob.id == job_id, TrainingJob.status == JobStatus.RUNNING.value,
             TrainingJob.cancel_requested.is_(False)]  # fmt: skip
    if worker_id is not None:
        where.append(TrainingJob.worker_id == worker_id)
    if cutoff is not None:
        where.append(_last_seen() < cutoff)
    return _guarded(session, *where, status=JobStatus.QUEUED.value, worker_id=None,
                    heartbeat_at=None, message=message[:MESSAGE_MAX])  # fmt: skip


def _last_seen() -> Any:
    return func.coalesce(TrainingJob.heartbeat_at, TrainingJob.started_at)


def find_stale(session: Session, cutoff: datetime) -> list[StaleJob]:
    """Running jobs whose heartbeat (or start, before the first beat) is older than cutoff."""
    rows = session.execute(
        select(TrainingJob.id, TrainingJob.worker_id, TrainingJob.heartbeat_at)
        .where(TrainingJob.status == JobStatus.RUNNING.value, _last_seen() < cutoff)
        .order_by(TrainingJob.id)
    ).all()
    return [StaleJob(id=r.id, worker_id=r.worker_id, heartbeat_at=r.heartbeat_at) for r in rows]


def fail_stale(session: Session, job_id: int, cutoff: datetime, reason: str, now: datetime) -> bool:
    """running -> failed with reason, only while the job is still stale (a late beat wins)."""
    return _guarded(
        session,
        TrainingJob.id == job_id,
        TrainingJob.status == JobStatus.RUNNING.value,
        _last_seen() < cutoff,
        status=JobStatus.FAILED.value,
        error=reason[:ERROR_MAX],
        message=("failed: " + reason)[:MESSAGE_MAX],
        finished_at=now,
    )
