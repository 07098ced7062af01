"""Logins that survive a refresh: server-side sessions behind an opaque cookie token.

The browser holds only a random 256-bit token (in an HttpOnly, SameSite=Lax cookie set by
core/auth/web.py); the database holds its SHA-256, the user, and the times. Every request
resolves the token afresh, so the role and the account's state are always the database's, a
session ends after DEFECTLENS_SESSION_IDLE_HOURS without use and DEFECTLENS_SESSION_MAX_DAYS
after it began, logout ends it, and a password reset or a deactivation ends every session of
that user at once (core/auth/accounts.py calls end_user_sessions in the same transaction).
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from core.auth.permissions import CurrentUser
from core.config import Settings
from db.engine import Database
from db.models import Role, utcnow
from db.queries import sessions as session_queries

COOKIE_NAME = "defectlens_session"
# last_seen is written at most this often, so a page's reruns do not each write a row.
TOUCH_EVERY = timedelta(minutes=1)


def token_hash(token: str) -> str:
    """What is stored for a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(db: Database, settings: Settings, user: CurrentUser) -> str:
    """A new session for a user who just proved who they are; the token for the cookie."""
    assert user.id is not None, "the command-line operator has no browser session"
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with db.write() as session:
        session_queries.add_session(
            session, token_hash=token_hash(token), user_id=user.id, now=now,
            expires_at=now + timedelta(days=settings.session_max_days),
        )  # fmt: skip
    return token


def resolve_session(
    db: Database, settings: Settings, token: str | None, now: datetime | None = None
) -> CurrentUser | None:
    """The user a cookie token logs in, as the database has them now; None when the token is
    unknown, ended, idle too long, past its lifetime, or its user is inactive."""
    if not isinstance(token, str) or not token or len(token) > 200:
        return None
    now = now or utcnow()
    digest = token_hash(token)
    with db.read() as session:
        record = session_queries.find_session(session, digest)
    if record is None or record.revoked_at is not None or not record.active:
        return None
    if now >= record.expires_at:
        return None
    if now - record.last_seen_at >= timedelta(hours=settings.session_idle_hours):
        return None
    if now - record.last_seen_at >= TOUCH_EVERY:
        with db.write() as session:
            session_queries.touch(session, record.id, now)
    return CurrentUser(id=record.user_id, username=record.username, role=Role(record.role))


def end_session(db: Database, token: str | None, reason: str = "logout") -> bool:
    """End the session of this token (logout); False when there was none open."""
    if not isinstance(token, str) or not token:
        return False
    with db.write() as session:
        return session_queries.revoke(session, token_hash(token), utcnow(), reason)


def end_user_sessions(session: Session, user_id: int, reason: str) -> int:
    """End every open session of a user, in the caller's transaction; how many."""
    return session_queries.revoke_user(session, user_id, utcnow(), reason)
