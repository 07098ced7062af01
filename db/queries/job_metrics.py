"""Per-epoch metrics of a training job (the job_metrics table). Callers own the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import JobMetric


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
    class_recall: dict[str, float] | None = None  # per-class validation recall of the epoch


def add_metric(
    session: Session,
    job_id: int,
    *,
    epoch: int,
    train_loss: float | None,
    val_loss: float | None,
    val_accuracy: float | None,
    macro_f1: float | None,
    learning_rate: float | None,
    images_per_second: float | None,
    class_recall: dict[str, float] | None = None,
) -> None:
    """Store one epoch's metrics (one row per job and epoch: a resumed run's replay is a no-op)."""
    seen = select(JobMetric.id).where(JobMetric.job_id == job_id, JobMetric.epoch == epoch)
    if session.scalar(seen) is not None:
        return
    session.add(
        JobMetric(
            job_id=job_id,
            epoch=epoch,
            train_loss=train_loss,
            val_loss=val_loss,
            val_accuracy=val_accuracy,
            macro_f1=macro_f1,
            learning_rate=learning_rate,
            images_per_second=images_per_second,
            class_recall=class_recall,
        )
    )


def list_metrics(session: Session, job_id: int) -> list[MetricRow]:
    """Per-epoch metrics of a job, by epoch."""
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
            class_recall=r.class_recall,
        )
        for r in rows
    ]
