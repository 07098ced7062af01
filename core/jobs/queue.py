"""The training-job queue: submit, list, show, cancel; the state changes workers make.

A page never trains. It calls ``submit_job``, which inserts a ``queued`` row; a worker process
(``core.jobs.worker``) claims the row, runs it in a child process (``core.jobs.run``) and ends it
``succeeded``, ``failed`` or ``cancelled``. Every state change is a guarded UPDATE (``WHERE
status = ...``) so two processes can never both move the same job, on SQLite and PostgreSQL.

This module never imports torch at import time: pages import it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.auth.audit import record_audit
from core.auth.permissions import SYSTEM, Action, CurrentUser, require
from core.config import DEVICES, Settings
from core.errors import Conflict, DatasetError, NotFound, ValidationError
from db.engine import Database
from db.models import Dataset, JobMetric, JobStatus, Model, Role, TrainingJob, User, utcnow
from db.queries import audit

if TYPE_CHECKING:
    from core.training.loop import EpochReport, TrainConfig

log = logging.getLogger(__name__)

FINISHED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
LOG_NAME = "job.log"


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

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class MetricRow:
    """Metrics of one finished epoch."""

    epoch: int
    train_loss: float | None
    val_loss: float | None
    val_accuracy: float | None
    macro_f1: float | None
    learning_rate: float | None
    images_per_second: float | None
    created_at: datetime


def job_dir(settings: Settings, job_id: int) -> Path:
    """Where a job's log and checkpoints live."""
    return settings.jobs_dir / str(job_id)


def log_path(settings: Settings, job_id: int) -> Path:
    """The job's log file."""
    return job_dir(settings, job_id) / LOG_NAME


def _eta(row: TrainingJob) -> float | None:
    """Remaining seconds, extrapolated from the time the job has run and its progress."""
    if row.status != JobStatus.RUNNING or row.started_at is None:
        return None
    if not 0.0 < row.progress < 1.0:
        return None
    elapsed = (utcnow() - row.started_at).total_seconds()
    return max(0.0, elapsed * (1.0 - row.progress) / row.progress)


def _record(
    row: TrainingJob, dataset_name: str | None, username: str | None, model_id: int | None
) -> JobRecord:
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
        eta_seconds=_eta(row),
        backend_ref=row.backend_ref,
    )


def _select_records() -> Any:
    model_id = (
        select(func.max(Model.id)).where(Model.training_job_id == TrainingJob.id).scalar_subquery()
    )
    return (
        select(TrainingJob, Dataset.name, User.username, model_id)
        .outerjoin(Dataset, Dataset.id == TrainingJob.dataset_id)
        .outerjoin(User, User.id == TrainingJob.created_by)
    )


def _load(session: Session, job_id: int) -> JobRecord:
    row = session.execute(_select_records().where(TrainingJob.id == job_id)).first()
    if row is None:
        raise NotFound(f"no training job with id {job_id}")
    return _record(*row)


# ------------------------------------------------------------------------------------ public API


@functools.lru_cache(maxsize=1)
def detected_gpu() -> str | None:
    """The first CUDA GPU's name, or None without one (checked once per process)."""
    try:
        import torch

        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except Exception:  # noqa: BLE001 - a broken driver means "no GPU" for the launch form
        log.debug("CUDA probe failed", exc_info=True)
    return None


def validate_config(config: TrainConfig) -> None:
    """Refuse settings that could never train, before a job is queued."""
    from core.vision.architectures import get_spec

    try:
        get_spec(config.arch)
    except ValueError as e:
        raise ValidationError(str(e)) from None
    if config.epochs < 1 or config.epochs > 10_000:
        raise ValidationError(f"epochs must be between 1 and 10000, not {config.epochs}")
    if config.batch_size < 1:
        raise ValidationError(f"batch size must be at least 1, not {config.batch_size}")
    if config.img_size is not None and not 16 <= config.img_size <= 1024:
        raise ValidationError(f"image size must be between 16 and 1024 px, not {config.img_size}")
    if not config.lr > 0:
        raise ValidationError(f"learning rate must be positive, not {config.lr}")
    device = config.device.lower()
    if device not in DEVICES:
        raise ValidationError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")


def check_dataset(db: Database, dataset_id: int) -> tuple[str, list[str]]:
    """(name, classes) of a dataset a job can train on; DatasetError saying why not."""
    from core.registry import catalog

    try:
        record = catalog.get_dataset(db, dataset_id)
    except NotFound:
        raise DatasetError(f"dataset {dataset_id} does not exist (deleted?)") from None
    if not record.snapshot_dir.is_dir() or not Path(record.manifest_path).is_file():
        raise DatasetError(
            f"dataset {dataset_id} ({record.name}) was deleted from disk: "
            f"{record.snapshot_dir} is missing; import it again"
        )
    if len(record.class_names) < 2:
        found = ", ".join(record.class_names) or "none"
        raise DatasetError(
            f"dataset {dataset_id} ({record.name}) has {len(record.class_names)} class "
            f"({found}); training needs at least 2"
        )
    return record.name, list(record.class_names)


def submit_job(
    db: Database, settings: Settings, actor: CurrentUser, dataset_id: int, config: TrainConfig
) -> JobRecord:
    """Queue a training job (engineer; audited). A worker or the Ray cluster runs it."""
    require(actor, Action.TRAIN)
    validate_config(config)
    backend = "ray" if settings.ray_address else "local"
    if backend == "ray":
        from core.jobs import ray_backend

        ray_backend.check_settings(settings)
    _name, classes = check_dataset(db, dataset_id)
    # Locally a job runs on this machine's GPU; on Ray the cluster's GPU nodes decide.
    if config.device.lower() == "cuda" and backend == "local" and detected_gpu() is None:
        raise ValidationError(
            "device 'cuda' was requested but this machine has no CUDA GPU; choose auto or cpu"
        )
    with db.write() as session:
        row = TrainingJob(
            status=JobStatus.QUEUED.value,
            dataset_id=dataset_id,
            config=config.to_dict(),
            backend=backend,
            progress=0.0,
            message="waiting for a worker",
            created_by=actor.id,
        )
        session.add(row)
        session.flush()
        row.log_path = str(log_path(settings, row.id))
        record_audit(
            session,
            actor,
            action="job_submitted",
            entity="training_job",
            entity_id=row.id,
            details={
                "dataset_id": dataset_id,
                "classes": classes,
                "backend": backend,
                "config": config.to_dict(),
            },
        )
        job_id = row.id
    if backend == "ray":
        from core.jobs import ray_backend

        ray_backend.submit(db, settings, job_id)
    with db.read() as session:
        return _load(session, job_id)


def list_jobs(
    db: Database, *, limit: int = 100, statuses: Sequence[str] | None = None
) -> list[JobRecord]:
    """Jobs, newest first, optionally only some statuses."""
    stmt = _select_records().order_by(TrainingJob.id.desc()).limit(limit)
    if statuses:
        stmt = stmt.where(TrainingJob.status.in_([str(s) for s in statuses]))
    with db.read() as session:
        return [_record(*row) for row in session.execute(stmt).all()]


def get_job(db: Database, job_id: int) -> JobRecord:
    """One job, or NotFound."""
    with db.read() as session:
        return _load(session, job_id)


def job_metrics(db: Database, job_id: int) -> list[MetricRow]:
    """Per-epoch metrics of a job, by epoch."""
    with db.read() as session:
        rows = session.scalars(
            select(JobMetric).where(JobMetric.job_id == job_id).order_by(JobMetric.epoch)
        ).all()
        return [
            MetricRow(
                epoch=r.epoch,
                train_loss=r.train_loss,
                val_loss=r.val_loss,
                val_accuracy=r.val_accuracy,
                macro_f1=r.macro_f1,
                learning_rate=r.learning_rate,
                images_per_second=r.images_per_second,
                created_at=r.created_at,
            )
            for r in rows
        ]


def cancel_job(db: Database, actor: CurrentUser, job_id: int) -> JobRecord:
    """Cancel a job: a queued one at once, a running one at its next batch (audited)."""
    require(actor, Action.TRAIN)
    now = utcnow()
    with db.write() as session:
        row = session.get(TrainingJob, job_id)
        if row is None:
            raise NotFound(f"no training job with id {job_id}")
        if row.status in FINISHED:
            raise Conflict(f"job {job_id} already {row.status}; nothing to cancel")
        if row.status == JobStatus.QUEUED:
            row.status = JobStatus.CANCELLED.value
            row.cancel_requested = True
            row.finished_at = now
            row.message = f"cancelled by {actor.username} before it started"
            action = "job_cancelled"
        else:
            row.cancel_requested = True
            row.message = f"cancel requested by {actor.username}; stopping at the next batch"
            action = "job_cancel_requested"
        backend, ref = row.backend, row.backend_ref
        record_audit(
            session,
            actor,
            action=action,
            entity="training_job",
            entity_id=job_id,
            details={"status": row.status},
        )
    if backend == "ray" and ref:
        from core.jobs import ray_backend

        ray_backend.stop(ref)
    with db.read() as session:
        return _load(session, job_id)


def log_tail(settings: Settings, job: JobRecord, lines: int = 50) -> str:
    """The last lines of the job's log ("" before the worker has started it)."""
    path = log_path(settings, job.id)
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            # Read only the end: a long job's log can be large.
            f.seek(max(0, size - 256 * max(lines, 1)))
            data = f.read()
    except OSError:
        if job.backend == "ray" and job.backend_ref:
            return _ray_log_tail(job.backend_ref, lines)
        return ""
    text = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:]) if lines > 0 else ""


def _ray_log_tail(backend_ref: str, lines: int) -> str:
    """The Ray driver log, for a run whose job folder is not on this machine's storage."""
    from core.jobs import ray_backend

    try:
        text = ray_backend.ray_logs(backend_ref).splitlines()
    except Exception:  # noqa: BLE001 - no log is better than a broken page
        log.debug("no Ray log for %s", backend_ref, exc_info=True)
        return ""
    return "\n".join(text[-lines:]) if lines > 0 else ""


# ---------------------------------------------------------------- state changes made by workers


def _mark_running(session: Session, job_id: int, worker_id: str) -> bool:
    """queued -> running for this worker, guarded by the status; False when someone was first."""
    now = utcnow()
    result = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status == JobStatus.QUEUED.value)
        .values(
            status=JobStatus.RUNNING.value,
            worker_id=worker_id,
            started_at=now,
            heartbeat_at=now,
            progress=0.0,
            message="starting",
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def claim_next(db: Database, worker_id: str, backend: str = "local") -> JobRecord | None:
    """Atomically take the oldest queued job for this backend; None when there is none.

    SQLite: the write transaction is BEGIN IMMEDIATE, so claims are serialised. PostgreSQL:
    FOR UPDATE SKIP LOCKED lets concurrent workers pick different rows without waiting. On
    both, the ``status = 'queued'`` guard and the rowcount check make a double claim impossible.
    """
    with db.write() as session:
        oldest = (
            select(TrainingJob.id)
            .where(TrainingJob.status == JobStatus.QUEUED.value, TrainingJob.backend == backend)
            .order_by(TrainingJob.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        job_id = session.scalar(oldest)
        if job_id is None:
            return None
        if not _mark_running(session, job_id, worker_id):
            return None
    return get_job(db, job_id)


def claim_job(db: Database, job_id: int, worker_id: str) -> bool:
    """Take one named queued job (a Ray job claims its own row); False when not queued."""
    with db.write() as session:
        return _mark_running(session, job_id, worker_id)


def heartbeat_interval(settings: Settings) -> float:
    """Seconds between heartbeats: a third of the timeout, at most 5 s."""
    return max(0.2, min(5.0, settings.job_heartbeat_timeout_s / 3))


@dataclass(frozen=True)
class Beat:
    """What a heartbeat learned: whether the job is still ours and whether to stop."""

    owned: bool
    cancel_requested: bool


def heartbeat(db: Database, job_id: int, worker_id: str, progress: float | None = None) -> Beat:
    """Record that the job's worker is alive; reports whether the job is still ours to run."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = min(max(progress, 0.0), 1.0)
    with db.write() as session:
        result = session.execute(
            update(TrainingJob)
            .where(
                TrainingJob.id == job_id,
                TrainingJob.status == JobStatus.RUNNING.value,
                TrainingJob.worker_id == worker_id,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        owned = result.rowcount == 1  # type: ignore[attr-defined]
        cancel = session.scalar(
            select(TrainingJob.cancel_requested).where(TrainingJob.id == job_id)
        )
    return Beat(owned=owned, cancel_requested=bool(cancel))


def should_stop(db: Database, job_id: int, worker_id: str) -> bool:
    """True when the job was cancelled or is no longer running under this worker."""
    with db.read() as session:
        row = session.execute(
            select(TrainingJob.status, TrainingJob.worker_id, TrainingJob.cancel_requested).where(
                TrainingJob.id == job_id
            )
        ).first()
    if row is None:
        return True
    status, owner, cancel = row
    return bool(cancel) or status != JobStatus.RUNNING or owner != worker_id


def set_message(db: Database, job_id: int, worker_id: str, message: str) -> None:
    """Update the one-line status text of a running job."""
    with db.write() as session:
        session.execute(
            update(TrainingJob)
            .where(
                TrainingJob.id == job_id,
                TrainingJob.status == JobStatus.RUNNING.value,
                TrainingJob.worker_id == worker_id,
            )
            .values(message=message[:2000], heartbeat_at=utcnow())
            .execution_options(synchronize_session=False)
        )


def record_epoch(
    db: Database, job_id: int, worker_id: str, report: EpochReport, epochs: int
) -> None:
    """Store one epoch's metrics and move the progress bar (one transaction)."""
    acc = "–" if report.val_accuracy is None else f"{report.val_accuracy:.1%}"
    f1 = "–" if report.macro_f1 is None else f"{report.macro_f1:.3f}"
    message = (
        f"epoch {report.epoch}/{epochs} · loss {report.train_loss:.4f} · val acc {acc} · "
        f"macro-F1 {f1} · {report.images_per_second:.0f} img/s"
    )
    with db.write() as session:
        session.add(
            JobMetric(
                job_id=job_id,
                epoch=report.epoch,
                train_loss=report.train_loss,
                val_loss=report.val_loss,
                val_accuracy=report.val_accuracy,
                macro_f1=report.macro_f1,
                learning_rate=report.lr,
                images_per_second=report.images_per_second,
            )
        )
        session.execute(
            update(TrainingJob)
            .where(
                TrainingJob.id == job_id,
                TrainingJob.status == JobStatus.RUNNING.value,
                TrainingJob.worker_id == worker_id,
            )
            .values(
                progress=min(report.epoch / max(epochs, 1), 1.0),
                message=message,
                heartbeat_at=utcnow(),
            )
            .execution_options(synchronize_session=False)
        )


def finish(
    db: Database,
    job_id: int,
    worker_id: str | None,
    status: JobStatus,
    *,
    message: str | None = None,
    error: str | None = None,
) -> bool:
    """End a running job; False when it was no longer ours (a sweep or cancel got there first)."""
    if status not in FINISHED:
        raise ValueError(f"{status} is not a final status")
    values: dict[str, Any] = {"status": status.value, "finished_at": utcnow()}
    if status == JobStatus.SUCCEEDED:
        values["progress"] = 1.0
    if message is not None:
        values["message"] = message[:2000]
    if error is not None:
        values["error"] = error[:4000]
    stmt = update(TrainingJob).where(
        TrainingJob.id == job_id, TrainingJob.status == JobStatus.RUNNING.value
    )
    if worker_id is not None:
        stmt = stmt.where(TrainingJob.worker_id == worker_id)
    with db.write() as session:
        result = session.execute(stmt.values(**values).execution_options(synchronize_session=False))
        return result.rowcount == 1  # type: ignore[attr-defined]


def sweep_stale(db: Database, timeout_s: float) -> list[int]:
    """Mark failed every running job whose heartbeat is older than timeout_s; their ids."""
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    last_seen = func.coalesce(TrainingJob.heartbeat_at, TrainingJob.started_at)
    with db.read() as session:
        stale = session.execute(
            select(TrainingJob.id, TrainingJob.heartbeat_at, TrainingJob.worker_id).where(
                TrainingJob.status == JobStatus.RUNNING.value, last_seen < cutoff
            )
        ).all()
    swept = []
    for job_id, beat, worker in stale:
        when = beat.isoformat(timespec="seconds") if beat else "never"
        reason = f"worker stopped responding (no heartbeat since {when} from {worker})"
        with db.write() as session:
            result = session.execute(
                update(TrainingJob)
                .where(
                    TrainingJob.id == job_id,
                    TrainingJob.status == JobStatus.RUNNING.value,
                    last_seen < cutoff,
                )
                .values(
                    status=JobStatus.FAILED.value,
                    error=reason,
                    message="failed: " + reason,
                    finished_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                swept.append(job_id)
                audit.add_audit(
                    session,
                    user_id=None,
                    username="worker",
                    action="job_failed_stale",
                    entity="training_job",
                    entity_id=job_id,
                    details={"reason": reason},
                )
                log.warning("job %s: %s", job_id, reason)
    return swept


def job_actor(db: Database, job_id: int) -> CurrentUser:
    """Who the job runs as: its submitter while they may still train, else refused."""
    with db.read() as session:
        row = session.execute(
            select(User.id, User.username, User.role, User.active)
            .join(TrainingJob, TrainingJob.created_by == User.id)
            .where(TrainingJob.id == job_id)
        ).first()
    if row is None:
        return SYSTEM  # submitted from the server's shell
    if not row.active:
        raise ValidationError(f"{row.username} was deactivated after submitting this job")
    return CurrentUser(id=row.id, username=row.username, role=Role(row.role))
