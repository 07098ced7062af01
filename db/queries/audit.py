"""The audit trail: append an entry in the caller's transaction, read the newest first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AuditEntry


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
