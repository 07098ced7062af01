"""Accounts: passwords, login and user administration, against a real migrated
SQLite database."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from core.auth import accounts, audit, permissions
from core.auth.permissions import CurrentUser
from core.errors import AuthenticationError, Conflict, PermissionDenied, ValidationError
from db.engine import Database
from db.models import AuditEntry, Role, User
from db.queries import audit as audit_queries

PASSWORD = "correct-horse-1"


def _audit(db: Database, action: str) -> list[AuditEntry]:
    with db.read() as session:
        return list(audit_queries.list_audit(session, action=action))


def _row(db: Database, user_id: int) -> User:
    with db.read() as session:
        user = session.get(User, user_id)
        assert user is not None
        return user


def _user_count(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count(User.id))) or 0


# --- passwords and login -------------------------------------------------------------------


def test_passwords_are_stored_as_argon2id_hashes(db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    alice, _ = make_user("alice")
    stored = _row(db, alice.id).password_hash
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    assert accounts.hash_password(PASSWORD).startswith("$argon2id$")
    assert accounts.hash_password(PASSWORD) != accounts.hash_password(PASSWORD)  # salted


def test_successful_login_returns_user_audits_and_sets_last_login(db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    alice, _ = make_user("alice", Role.REVIEWER)
    assert _row(db, alice.id).last_login_at is None

    user = accounts.authenticate(db, "alice", PASSWORD, delay_s=0)

    assert user == CurrentUser(id=alice.id, username="alice", role=Role.REVIEWER)
    assert _row(db, alice.id).last_login_at is not None
    (entry,) = _audit(db, "login")
    assert (entry.user_id, entry.username, entry.entity_id) == (alice.id, "alice", str(alice.id))
    assert _audit(db, "login_failed") == []


def test_login_username_is_trimmed_and_case_insensitive(db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    alice, _ = make_user("alice")
    assert accounts.authenticate(db, "  ALICE ", PASSWORD, delay_s=0).id == alice.id


def _deactivated(db: Database, make_user) -> str:  # type: ignore[no-untyped-def]
    bob, _ = make_user("bob")
    accounts.set_active(db, permissions.SYSTEM, bob.id, False)
    return "bob"


@pytest.mark.parametrize(
    ("case", "username", "password"),
    [
        ("wrong password", "alice", "not-the-password"),
        ("unknown user", "nobody", PASSWORD),
        ("inactive user", "bob", PASSWORD),
    ],
)
def test_every_login_failure_gets_the_same_message_and_is_audited(
    db: Database,
    make_user,  # type: ignore[no-untyped-def]
    case: str,
    username: str,
    password: str,
) -> None:
    make_user("alice")
    _deactivated(db, make_user)

    with pytest.raises(AuthenticationError) as err:
        accounts.authenticate(db, username, password, delay_s=0)

    assert str(err.value) == accounts.LOGIN_REFUSED
    (entry,) = _audit(db, "login_failed")
    assert entry.username == username
    assert _audit(db, "login") == []


def test_login_failure_messages_do_not_reveal_which_check_failed(db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    make_user("alice")
    _deactivated(db, make_user)
    messages = set()
    attempts = (("alice", "wrong-password!"), ("ghost", PASSWORD), ("bob", PASSWORD))
    for username, password in attempts:
        with pytest.raises(AuthenticationError) as err:
            accounts.authenticate(db, username, password, delay_s=0)
        messages.add(str(err.value))
    assert len(messages) == 1
    assert len(_audit(db, "login_failed")) == 3


def test_failed_login_waits_delay_s_and_success_does_not(db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    make_user("alice")
    started = time.monotonic()
    with pytest.raises(AuthenticationError):
        accounts.authenticate(db, "alice", "wrong-password!", delay_s=0.2)
    assert time.monotonic() - started >= 0.2

    started = time.monotonic()
    accounts.authenticate(db, "alice", PASSWORD, delay_s=5)
    assert time.monotonic() - started < 4


# --- user administration -------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.VIEWER, Role.REVIEWER, Role.ENGINEER], ids=str)
def test_user_management_refuses_non_admins(db: Database, make_user, role: Role) -> None:  # type: ignore[no-untyped-def]
    actor, _ = make_user("actor", role)
    target, _ = make_user("target", Role.VIEWER)
    before_users = _user_count(db)
    with db.read() as session:
        before_audit = len(audit_queries.list_audit(session, limit=10_000))

    calls = {
        "create_user": lambda: accounts.create_user(db, actor, "mallory", Role.ADMIN),
        "set_role": lambda: accounts.set_role(db, actor, actor.id, Role.ADMIN),
        "set_active": lambda: accounts.set_active(db, actor, target.id, False),
        "reset_password": lambda: accounts.reset_password(db, actor, target.id, "new-password-1"),
        "set_email": lambda: accounts.set_email(db, actor, target.id, "t@plant.example"),
        "list_users": lambda: accounts.list_users(db, actor),
        "audit_log": lambda: audit.audit_log(db, actor),
    }
    for name, call in calls.items():
        with pytest.raises(PermissionDenied):
            call()
            pytest.fail(f"{name} allowed a {role}")

    assert _user_count(db) == before_users
    assert _row(db, actor.id).role == role.value
    assert _row(db, target.id).active is True
    assert accounts.authenticate(db, "target", PASSWORD, delay_s=0).id == target.id
    with db.read() as session:
        assert len(audit_queries.list_audit(session, limit=10_000)) == before_audit + 1  # the login


# --- account rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "username",
    ["", " ", "a", "-bob", ".bob", "bob smith", "bob/x", "bob;drop", "böb", "x" * 65, "bob\nsmith"],
)
def test_invalid_usernames_are_refused(db: Database, username: str) -> None:
    with pytest.raises(ValidationError):
        accounts.create_user(db, permissions.SYSTEM, username, Role.VIEWER, password=PASSWORD)
    assert _user_count(db) == 0


@pytest.mark.parametrize("username", ["ab", "bob.smith", "b_o-b@plant", "B0B", "x" * 64])
def test_valid_usernames_are_accepted(db: Database, username: str) -> None:
    info, _ = accounts.create_user(
        db, permissions.SYSTEM, f"  {username} ", Role.VIEWER, password=PASSWORD
    )
    assert info.username == username


def test_short_password_and_unknown_role_are_refused(db: Database) -> None:
    with pytest.raises(ValidationError, match="at least"):
        accounts.create_user(db, permissions.SYSTEM, "alice", Role.VIEWER, password="short")
    with pytest.raises(ValidationError, match="viewer, reviewer, engineer, admin"):
        accounts.create_user(db, permissions.SYSTEM, "alice", "wizard", password=PASSWORD)
    assert _user_count(db) == 0


def test_duplicate_username_is_a_conflict(db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    make_user("alice")
    for name in ("alice", "ALICE"):
        with pytest.raises(Conflict):
            accounts.create_user(db, permissions.SYSTEM, name, Role.VIEWER, password=PASSWORD)
    assert _user_count(db) == 1


def test_duplicate_email_is_a_conflict(db: Database) -> None:
    accounts.create_user(db, permissions.SYSTEM, "alice", Role.VIEWER, email="a@plant.example")
    with pytest.raises(Conflict):
        accounts.create_user(db, permissions.SYSTEM, "bob", Role.VIEWER, email="A@Plant.example")
    assert _user_count(db) == 1


def test_last_active_admin_cannot_be_demoted_or_deactivated(db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    boss, _ = make_user("boss", Role.ADMIN)
    deputy, _ = make_user("deputy", Role.ADMIN)
    accounts.set_active(db, boss, deputy.id, False)  # allowed: boss remains

    # deputy is an admin but inactive, so boss is the last active one
    with pytest.raises(Conflict, match="last active admin"):
        accounts.set_role(db, boss, boss.id, Role.ENGINEER)
    with pytest.raises(Conflict, match="last active admin"):
        accounts.set_active(db, boss, boss.id, False)
    row = _row(db, boss.id)
    assert (row.role, row.active) == ("admin", True)

    accounts.set_active(db, boss, deputy.id, True)
    assert accounts.set_role(db, boss, boss.id, Role.ENGINEER).role is Role.ENGINEER
    assert _row(db, boss.id).role == "engineer"


def test_refresh_follows_deactivation_and_role_changes(db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    alice, _ = make_user("alice", Role.VIEWER)
    assert accounts.refresh(db, alice) == alice

    accounts.set_role(db, permissions.SYSTEM, alice.id, Role.ENGINEER)
    refreshed = accounts.refresh(db, alice)
    assert refreshed is not None and refreshed.role is Role.ENGINEER

    accounts.set_active(db, permissions.SYSTEM, alice.id, False)
    assert accounts.refresh(db, alice) is None
    assert accounts.refresh(db, permissions.SYSTEM) == permissions.SYSTEM


def test_reset_password_replaces_the_old_one(db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    alice, old = make_user("alice")

    new = accounts.reset_password(db, permissions.SYSTEM, alice.id)

    assert new != old and len(new) >= accounts.MIN_PASSWORD_LENGTH
    with pytest.raises(AuthenticationError):
        accounts.authenticate(db, "alice", old, delay_s=0)
    assert accounts.authenticate(db, "alice", new, delay_s=0).id == alice.id

    chosen = accounts.reset_password(db, permissions.SYSTEM, alice.id, "chosen-password-9")
    assert chosen == "chosen-password-9"
    assert accounts.authenticate(db, "alice", chosen, delay_s=0).id == alice.id
    with pytest.raises(ValidationError):
        accounts.reset_password(db, permissions.SYSTEM, alice.id, "short")
    assert accounts.authenticate(db, "alice", chosen, delay_s=0).id == alice.id
    assert len(_audit(db, "password_reset")) == 2
