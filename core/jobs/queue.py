"""The training-job queue as pages and the CLI see it: submit, list, show, metrics, cancel, log.

A page never trains. It calls ``submit_job``, which inserts a ``queued`` row and hands it to the
backend chosen from the settings (``core.jobs.backend``); a worker process (``core.jobs.worker``)
or the Ray cluster claims the row, runs it in a child process (``core.jobs.run``) and ends it
``succeeded``, ``failed`` or ``cancelled`` (``core.jobs.lifecycle``). Every state change is a
guarded UPDATE in ``db.queries.jobs``, so two processes can never both move the same job.

This module never imports torch at import time: pages import it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from core.auth.audit import record_audit
from core.auth.permissions import Action, CurrentUser, require
from core.config import DEVICES, Settings
from core.errors import Conflict, DatasetError, NotFound, ValidationError
from core.jobs.backend import backend_for, backend_named
from core.registry import catalog
from core.training.balance import check_mode
from core.training.config import ARCHITECTURE_NAMES, TrainConfig
from core.vision.acceptance import check_false_reject
from db.engine import Database
from db.models import utcnow
from db.queries import jobs
from db.queries.job_metrics import MetricRow, list_metrics
from db.queries.jobs import JobRecord

log = logging.getLogger(__name__)

LOG_NAME = "job.log"


def job_dir(settings: Settings, job_id: int) -> Path:
    """Where a job's log and checkpoints live."""
    return settings.jobs_dir / str(job_id)


def log_path(settings: Settings, job_id: int) -> Path:
    """The job's log file."""
    return job_dir(settings, job_id) / LOG_NAME


def validate_config(config: TrainConfig) -> None:
    """Refuse settings that could never train, before a job is queued."""
    if config.arch not in ARCHITECTURE_NAMES:  # the torch-free list: a page never loads torch
        known = ", ".join(sorted(ARCHITECTURE_NAMES))
        raise ValidationError(f"unknown architecture {config.arch!r}; known: {known}")
    if config.epochs is not None and not 1 <= config.epochs <= 10_000:
        raise ValidationError(f"epochs must be between 1 and 10000, not {config.epochs}")
    if config.budget_minutes is not None and not 0 < config.budget_minutes <= 7 * 24 * 60:
        raise ValidationError(
            f"time budget must be more than 0 and at most a week (10080 minutes), "
            f"not {config.budget_minutes}"
        )
    if config.batch_size < 1:
        raise ValidationError(f"batch size must be at least 1, not {config.batch_size}")
    if config.img_size is not None and not 16 <= config.img_size <= 1024:
        raise ValidationError(f"image size must be between 16 and 1024 px, not {config.img_size}")
    if not config.lr > 0:
        raise ValidationError(f"learning rate must be positive, not {config.lr}")
    device = config.device.lower()
    if device not in DEVICES:
        raise ValidationError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    check_mode(config.balance)
    check_false_reject(config.false_reject)


def check_dataset(db: Database, actor: CurrentUser, dataset_id: int) -> tuple[str, list[str]]:
    """(name, classes) of a dataset a job can train on; DatasetError saying why not."""
    try:
        record = catalog.get_dataset(db, actor, dataset_id)
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
    backend = backend_for(settings)
    backend.check(settings, config)
    _name, classes = check_dataset(db, actor, dataset_id)
    with db.write() as session:
        job_id = jobs.add_job(
            session,
            dataset_id=dataset_id,
            config=config.to_dict(),
            backend=backend.name,
            created_by=actor.id,
            message="waiting for a worker",
        )
        jobs.set_log_path(session, job_id, str(log_path(settings, job_id)))
        record_audit(
            session,
            actor,
            action="job_submitted",
            entity="training_job",
            entity_id=job_id,
            details={
                "dataset_id": dataset_id,
                "classes": classes,
                "backend": backend.name,
                "config": config.to_dict(),
            },
        )
    backend.start(db, settings, job_id)
    return get_job(db, actor, job_id)


def list_jobs(
    db: Database,
    actor: CurrentUser,
    *,
    limit: int = 100,
    statuses: Sequence[str] | None = None,
) -> list[JobRecord]:
    """Jobs, newest first, optionally only some statuses (engineers and up)."""
    require(actor, Action.TRAIN)
    with db.read() as session:
        return jobs.list_jobs(session, limit=limit, statuses=statuses)


def get_job(db: Database, actor: CurrentUser, job_id: int) -> JobRecord:
    """One job, or NotFound (engineers and up, as list_jobs: the Training page's live view)."""
    require(actor, Action.TRAIN)
    with db.read() as session:
        job = jobs.get_job(session, job_id)
    if job is None:
        raise NotFound(f"no training job with id {job_id}")
    return job


def job_metrics(db: Database, actor: CurrentUser, job_id: int) -> list[MetricRow]:
    """Per-epoch metrics of a job, by epoch (engineers and up, as get_job)."""
    require(actor, Action.TRAIN)
    with db.read() as session:
        return list_metrics(session, job_id)


def cancel_job(db: Database, actor: CurrentUser, job_id: int) -> JobRecord:
    """Cancel a job: a queued one at once, a running one at its next batch (audited)."""
    require(actor, Action.TRAIN)
    with db.write() as session:
        if jobs.cancel_queued(
            session, job_id, utcnow(), f"cancelled by {actor.username} before it started"
        ):
            action = "job_cancelled"
        elif jobs.request_cancel(
            session, job_id, f"cancel requested by {actor.username}; stopping at the next batch"
        ):
            action = "job_cancel_requested"
        else:
            ended = jobs.get_job(session, job_id)
            if ended is None:
                raise NotFound(f"no training job with id {job_id}")
            raise Conflict(f"job {job_id} already {ended.status}; nothing to cancel")
        job = jobs.get_job(session, job_id)
        assert job is not None  # the UPDATE above just matched it
        record_audit(
            session,
            actor,
            action=action,
            entity="training_job",
            entity_id=job_id,
            details={"status": job.status.value},
        )
    backend_named(job.backend).stop(job)
    return get_job(db, actor, job_id)


def log_tail(settings: Settings, actor: CurrentUser, job: JobRecord, lines: int = 50) -> str:
    """The last lines of the job's log ("" before the worker has started it); engineers only,
    a log quotes file names, paths and errors from the training data."""
    require(actor, Action.TRAIN)
    path = log_path(settings, job.id)
    try:
        with path.open("rb") as f:
            f.seek(0, 2)
            size = f.tell()
            # Read only the end: a long job's log can be large.
            f.seek(max(0, size - 256 * max(lines, 1)))
            data = f.read()
    except OSError:
        return backend_named(job.backend).log_tail(job, lines)
    text = data.decode("utf-8", errors="replace").splitlines()
    return "\n".join(text[-lines:]) if lines > 0 else ""
