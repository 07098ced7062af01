"""Typed query functions shared by core modules. Callers own the session and transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import AuditEntry, User


def get_user_by_name(session: Session, username: str) -> User | None:
    """The user with this username (case-insensitive), or None."""
    return session.scalar(select(User).where(func.lower(User.username) == username.lower()))


def get_user_by_email(session: Session, email: str) -> User | None:
    """The user with this e-mail address (case-insensitive), or None."""
    return session.scalar(select(User).where(func.lower(User.email) == email.lower()))


def list_users(session: Session) -> Sequence[User]:
    """Every user, by username."""
    return session.scalars(select(User).order_by(User.username)).all()


def count_users(session: Session) -> int:
    """How many user accounts exist."""
    return session.scalar(select(func.count(User.id))) or 0


def add_audit(
    session: Session,
    *,
    user_id: int | None,
    username: str | None,
    action: str,
    entity: str | None = None,
    entity_id: str | int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one audit entry in the caller's transaction."""
    entry = AuditEntry(
        user_id=user_id,
        username=username,
        action=action,
        entity=entity,
        entity_id=None if entity_id is None else str(entity_id),
        details=details or {},
    )
    session.add(entry)
    return entry


def list_audit(
    session: Session,
    *,
    limit: int = 200,
    action: str | None = None,
    username: str | None = None,
    since: datetime | None = None,
) -> Sequence[AuditEntry]:
    """Newest audit entries first, optionally filtered."""
    stmt = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if username:
        stmt = stmt.where(AuditEntry.username == username)
    if since is not None:
        stmt = stmt.where(AuditEntry.at >= since)
    return session.scalars(stmt).all()


def overview_counts(session: Session, since: datetime) -> dict[str, Any]:
    """Counts for the plant overview: inspections and flags since a time, open reviews, jobs."""
    from db.models import Inspection, Model, Review, TrainingJob

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
