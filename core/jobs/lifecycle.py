"""The state changes a worker and its training run make to a job, each one short transaction.

claim -> heartbeat / message / epoch progress -> finish, plus the sweep that fails a job whose
heartbeat stopped. The guarded UPDATEs themselves live in ``db.queries.jobs``; this module picks
the transaction, the clock and the audit entry. Pages never call it (they use ``queue``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from core.auth.permissions import SYSTEM, CurrentUser
from core.config import Settings
from core.errors import ValidationError
from core.jobs.backend import WORKER_BACKENDS
from core.training.config import EpochReport
from db.engine import Database
from db.models import JobStatus, Role, utcnow
from db.queries import audit, job_metrics, jobs
from db.queries.jobs import Beat, JobRecord

log = logging.getLogger(__name__)

# A database that is briefly unreachable, locked or out of connections: a run keeps training
# through these (the next beat or check retries); any other error is a bug and ends the job.
DB_HICCUPS = (OperationalError, InterfaceError, PoolTimeoutError)


def heartbeat_interval(settings: Settings) -> float:
    """Seconds between heartbeats: a third of the timeout, at most 5 s."""
    return max(0.2, min(5.0, settings.job_heartbeat_timeout_s / 3))


def claim_next(db: Database, worker_id: str) -> JobRecord | None:
    """Atomically take the oldest queued job a worker runs; None when there is none."""
    with db.write() as session:
        return jobs.claim_next(session, worker_id, utcnow(), WORKER_BACKENDS)


def claim_job(db: Database, job_id: int, worker_id: str) -> bool:
    """Take one named queued job (a Ray job claims its own row); False when not queued."""
    with db.write() as session:
        return jobs.claim_job(session, job_id, worker_id, utcnow())


def heartbeat(db: Database, job_id: int, worker_id: str, progress: float | None = None) -> Beat:
    """Record that the job's worker is alive; reports whether the job is still ours to run."""
    with db.write() as session:
        return jobs.heartbeat(session, job_id, worker_id, utcnow(), progress=progress)


def should_stop(db: Database, job_id: int, worker_id: str) -> bool:
    """True when the job was cancelled or is no longer running under this worker."""
    with db.read() as session:
        return jobs.should_stop(session, job_id, worker_id)


def set_message(db: Database, job_id: int, worker_id: str, message: str) -> None:
    """Update the one-line status text of a running job."""
    with db.write() as session:
        jobs.heartbeat(session, job_id, worker_id, utcnow(), message=message)


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
    worst = report.lowest_recall()
    if worst is not None:
        message += f" · lowest recall {worst[0]} {worst[1]:.0%}"
    with db.write() as session:
        job_metrics.add_metric(
            session,
            job_id,
            epoch=report.epoch,
            train_loss=report.train_loss,
            val_loss=report.val_loss,
            val_accuracy=report.val_accuracy,
            macro_f1=report.macro_f1,
            learning_rate=report.lr,
            images_per_second=report.images_per_second,
            class_recall=report.recall,
        )
        progress = min(report.epoch / max(epochs, 1), 1.0)
        jobs.heartbeat(session, job_id, worker_id, utcnow(), progress=progress, message=message)


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
    with db.write() as session:
        return jobs.finish(
            session, job_id, worker_id, status, utcnow(), message=message, error=error
        )


def end_interrupted(
    db: Database,
    job_id: int,
    worker_id: str | None,
    reason: str,
    max_attempts: int,
    *,
    cutoff: datetime | None = None,
) -> JobStatus | None:
    """A running job whose training died: queued again to resume, or failed after its last try.

    A job a worker runs (not a remote backend's) that has started fewer than ``max_attempts``
    times goes back to the queue; the next start resumes from its last finished epoch
    (core.training.resume). Otherwise it fails with the reason. Audited either way; None when
    the job was no longer running (ours, or still stale with a cutoff) by the time we wrote.
    """
    with db.write() as session:  # one short transaction: the lock is held briefly
        job = jobs.get_job(session, job_id)
        if job is None:
            return None
        retry = job.backend in WORKER_BACKENDS and job.attempts < max_attempts
        if retry:
            text = (f"{reason}; queued again to resume from its last finished epoch "
                    f"(start {job.attempts + 1} of {max_attempts})")  # fmt: skip
            if not jobs.requeue(session, job_id, worker_id, text, cutoff=cutoff):
                return None
            status, action = JobStatus.QUEUED, "job_requeued"
        else:
            if job.attempts > 1:
                reason = f"{reason} (start {job.attempts} of {max_attempts}; no more retries)"
            text = reason
            if cutoff is not None:
                ended = jobs.fail_stale(session, job_id, cutoff, reason, utcnow())
            else:
                ended = jobs.finish(session, job_id, worker_id, JobStatus.FAILED, utcnow(),
                                    message="failed", error=reason)  # fmt: skip
            if not ended:
                return None
            status = JobStatus.FAILED
            action = "job_failed_stale" if cutoff is not None else "job_failed"
        audit.add_audit(session, user_id=None, username="worker", action=action,
                        entity="training_job", entity_id=job_id,
                        details={"reason": reason, "attempts": job.attempts})  # fmt: skip
    log.warning("job %s: %s", job_id, text)
    return status


def sweep_stale(db: Database, timeout_s: float, max_attempts: int = 1) -> list[int]:
    """End every running job whose heartbeat is older than timeout_s (end_interrupted); ids."""
    cutoff = utcnow() - timedelta(seconds=timeout_s)
    with db.read() as session:
        stale = jobs.find_stale(session, cutoff)
    swept = []
    for job in stale:
        when = job.heartbeat_at.isoformat(timespec="seconds") if job.heartbeat_at else "never"
        reason = f"worker stopped responding (no heartbeat since {when} from {job.worker_id})"
        if end_interrupted(db, job.id, None, reason, max_attempts, cutoff=cutoff) is not None:
            swept.append(job.id)  # else it beat (or ended) since we looked
    return swept


def job_actor(db: Database, job_id: int) -> CurrentUser:
    """Who the job runs as: its submitter while they may still train, else refused."""
    with db.read() as session:
        user = jobs.submitter(session, job_id)
        if user is None:
            return SYSTEM  # submitted from the server's shell
        if not user.active:
            raise ValidationError(f"{user.username} was deactivated after submitting this job")
        return CurrentUser(id=user.id, username=user.username, role=Role(user.role))
