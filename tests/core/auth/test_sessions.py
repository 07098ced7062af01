"""Server-side login sessions: a token resolves to the user as the database has them now, and
stops resolving after logout, the idle timeout, the absolute lifetime, a password reset or a
deactivation (every session of that user at once); nothing but a hash is stored."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from core.auth import accounts, permissions, sessions
from core.config import Settings
from db.engine import Database
from db.models import Role, UserSession, utcnow


def test_a_session_follows_the_account_and_ends_on_logout(
    db: Database, settings: Settings, make_user
) -> None:  # type: ignore[no-untyped-def]
    rita, _ = make_user("rita", Role.REVIEWER)
    token = sessions.start_session(db, settings, rita)
    other = sessions.start_session(db, settings, rita)  # a second browser
    assert len(token) >= 40 and token != other
    with db.read() as s:
        stored = [row.token_hash for row in s.query(UserSession)]
    assert token not in stored and sessions.token_hash(token) in stored
    assert sessions.resolve_session(db, settings, token) == rita
    accounts.set_role(db, permissions.SYSTEM, rita.id, Role.ENGINEER)  # type: ignore[arg-type]
    assert sessions.resolve_session(db, settings, token).role == Role.ENGINEER  # type: ignore[union-attr]
    assert sessions.end_session(db, token) and not sessions.end_session(db, token)
    assert sessions.resolve_session(db, settings, token) is None
    assert sessions.resolve_session(db, settings, other) is not None  # only that browser


def test_idle_and_absolute_limits(db: Database, settings: Settings, make_user) -> None:  # type: ignore[no-untyped-def]
    s = dataclasses.replace(settings, session_idle_hours=2.0, session_max_days=1.0)
    vic, _ = make_user("vic", Role.VIEWER)
    token = sessions.start_session(db, s, vic)
    now = utcnow()
    assert sessions.resolve_session(db, s, token, now + timedelta(hours=1, minutes=59)) == vic
    # that use was recorded, so the idle clock restarted from it
    assert sessions.resolve_session(db, s, token, now + timedelta(hours=3, minutes=50)) == vic
    assert sessions.resolve_session(db, s, token, now + timedelta(hours=6)) is None  # idle
    fresh = sessions.start_session(db, s, vic)
    for h in range(1, 24):  # in use every hour, never idle ...
        assert sessions.resolve_session(db, s, fresh, now + timedelta(hours=h)) == vic
    assert sessions.resolve_session(db, s, fresh, now + timedelta(hours=24, minutes=1)) is None


def test_password_reset_and_deactivation_end_every_session_of_the_user(
    db: Database, settings: Settings, make_user
) -> None:  # type: ignore[no-untyped-def]
    erin, _ = make_user("erin", Role.ENGINEER)
    vic, _ = make_user("vic", Role.VIEWER)
    a, b = sessions.start_session(db, settings, erin), sessions.start_session(db, settings, erin)
    v = sessions.start_session(db, settings, vic)
    accounts.reset_password(db, permissions.SYSTEM, erin.id)  # type: ignore[arg-type]
    assert sessions.resolve_session(db, settings, a) is None
    assert sessions.resolve_session(db, settings, b) is None
    assert sessions.resolve_session(db, settings, v) == vic
    c = sessions.start_session(db, settings, erin)
    accounts.set_active(db, permissions.SYSTEM, erin.id, False)  # type: ignore[arg-type]
    assert sessions.resolve_session(db, settings, c) is None
    accounts.set_active(db, permissions.SYSTEM, erin.id, True)  # type: ignore[arg-type]
    assert sessions.resolve_session(db, settings, c) is None  # reactivation revives nothing
    with db.read() as s:
        reasons = sorted(r.revoked_reason for r in s.query(UserSession) if r.revoked_reason)
    assert reasons == ["deactivated", "password reset", "password reset"]


def test_garbage_tokens_log_no_one_in(db: Database, settings: Settings) -> None:
    for token in (None, "", "x", "' OR 1=1 --", "a" * 5000):
        assert sessions.resolve_session(db, settings, token) is None
