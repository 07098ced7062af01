"""Inspections: counts for the plant overview. Callers own the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Inspection, Model, Review, TrainingJob


def overview_counts(session: Session, since: datetime) -> dict[str, Any]:
    """Counts for the plant overview: inspections and flags since a time, open reviews, jobs."""
    inspected = session.scalar(
        select(func.count(Inspection.id)).where(Inspection.captured_at >= since)
    )
    flagged = session.scalar(
        select(func.count(Inspection.id)).where(
            Inspection.captured_at >= since, Inspection.flagged.is_(True)
        )
    )
    defects = session.scalar(
        select(func.count(Inspection.id)).where(
            Inspection.captured_at >= since, Inspection.is_defect.is_(True)
        )
    )
    reviewed = select(Review.inspection_id)
    open_reviews = session.scalar(
        select(func.count(Inspection.id)).where(
            Inspection.flagged.is_(True), Inspection.id.not_in(reviewed)
        )
    )
    running = session.scalar(
        select(func.count(TrainingJob.id)).where(TrainingJob.status.in_(("queued", "running")))
    )
    active = session.scalar(select(Model).where(Model.status == "active"))
    return {
        "inspected": inspected or 0,
        "flagged": flagged or 0,
        "defects": defects or 0,
        "open_reviews": open_reviews or 0,
        "jobs_waiting_or_running": running or 0,
        "active_model": None if active is None else f"#{active.id} {active.name}",
    }
