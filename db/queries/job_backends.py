"""Training jobs handed to an external backend (Ray): its handle on a job, and the outcomes it
reports for runs that ended without ending their row. Callers own the transaction.

Like the state machine in ``db.queries.jobs``, every change is an UPDATE guarded by the states
it may start from, so a row the run itself ended is never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import JobStatus, TrainingJob
from db.queries.jobs import ERROR_MAX, FINISHED

UNFINISHED = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


@dataclass(frozen=True)
class BackendRun:
    """An unfinished job an external backend has a handle for, to sync its outcome."""

    id: int
    backend_ref: str
    cancel_requested: bool


def set_backend_ref(session: Session, job_id: int, backend_ref: str, message: str) -> None:
    """Record the backend's handle of a job (e.g. the Ray submission id and address)."""
    session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id)
        .values(backend_ref=backend_ref, message=message)
        .execution_options(synchronize_session=False)
    )


def unfinished_runs(session: Session, backend: str) -> list[BackendRun]:
    """Queued or running jobs of this backend that it has a handle for."""
    rows = session.execute(
        select(TrainingJob.id, TrainingJob.backend_ref, TrainingJob.cancel_requested).where(
            TrainingJob.backend == backend,
            TrainingJob.status.in_(UNFINISHED),
            TrainingJob.backend_ref.is_not(None),
            TrainingJob.backend_ref != "",
        )
    ).all()
    return [BackendRun(r.id, r.backend_ref, bool(r.cancel_requested)) for r in rows]


def end_run(
    session: Session,
    job_id: int,
    status: JobStatus,
    now: datetime,
    *,
    error: str | None,
    only_queued: bool = False,
) -> bool:
    """queued (or, unless only_queued, running) -> a final status; False when already ended.

    only_queued: the backend refused the job before anything ran (a run may have started
    since, and then it ends the row itself).
    """
    if status not in FINISHED:
        raise ValueError(f"{status} is not a final status")
    allowed = (JobStatus.QUEUED.value,) if only_queued else UNFINISHED
    result = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id, TrainingJob.status.in_(allowed))
        .values(
            status=status.value,
            error=None if error is None else error[:ERROR_MAX],
            finished_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]
