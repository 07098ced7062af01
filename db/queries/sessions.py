"""Login sessions: add, find by token hash, mark used, end one or all of a user's. Callers own
the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import User, UserSession


@dataclass(frozen=True)
class SessionRecord:
    """A session with what its user is now (role and active read fresh, never from the row)."""

    id: int
    user_id: int
    username: str
    role: str
    active: bool
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


def add_session(
    session: Session, *, token_hash: str, user_id: int, now: datetime, expires_at: datetime
) -> int:
    """Insert one session; its id."""
    row = UserSession(token_hash=token_hash, user_id=user_id, created_at=now, last_seen_at=now,
                      expires_at=expires_at)  # fmt: skip
    session.add(row)
    session.flush()
    return row.id


def find_session(session: Session, token_hash: str) -> SessionRecord | None:
    """The session with this token hash and its user, or None."""
    stmt = (
        select(UserSession, User.username, User.role, User.active)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.token_hash == token_hash)
    )
    row = session.execute(stmt).first()
    if row is None:
        return None
    s, username, role, active = row
    return SessionRecord(
        id=s.id, user_id=s.user_id, username=username, role=role, active=bool(active),
        created_at=s.created_at, last_seen_at=s.last_seen_at, expires_at=s.expires_at,
        revoked_at=s.revoked_at,
    )  # fmt: skip


def touch(session: Session, session_id: int, now: datetime) -> None:
    """Record that the session was used now."""
    session.execute(
        update(UserSession).where(UserSession.id == session_id).values(last_seen_at=now)
    )


def revoke(session: Session, token_hash: str, now: datetime, reason: str) -> bool:
    """End one session; False when it was unknown or already ended."""
    result = session.execute(
        update(UserSession)
        .where(UserSession.token_hash == token_hash, UserSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def revoke_user(session: Session, user_id: int, now: datetime, reason: str) -> int:
    """End every open session of a user; how many."""
    result = session.execute(
        update(UserSession)
        .where(UserSession.user_id == user_id, UserSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
