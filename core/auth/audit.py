"""The audit trail: what each user did, written in the transaction that did it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.auth.permissions import Action, CurrentUser, require
from db.engine import Database
from db.queries.audit import add_audit, list_audit


def record_audit(
    session: Session,
    actor: CurrentUser,
    *,
    action: str,
    entity: str | None = None,
    entity_id: str | int | None = None,
    details: dict[str, object] | None = None,
) -> None:
    """Append an audit entry for what the actor did, in the caller's transaction."""
    add_audit(
        session,
        user_id=actor.id,
        username=actor.username,
        action=action,
        entity=entity,
        entity_id=entity_id,
        details=details,
    )


def audit_log(
    db: Database,
    actor: CurrentUser,
    *,
    limit: int = 200,
    action: str | None = None,
    username: str | None = None,
) -> list[dict[str, object]]:
    """Newest audit entries first, as plain rows (admin only)."""
    require(actor, Action.READ_AUDIT)
    with db.read() as session:
        rows = list_audit(session, limit=limit, action=action or None, username=username or None)
        return [
            {
                "at": r.at,
                "user": r.username,
                "action": r.action,
                "entity": r.entity,
                "entity_id": r.entity_id,
                "details": r.details,
            }
            for r in rows
        ]
