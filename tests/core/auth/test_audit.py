"""The audit trail: entries name who acted on what; only admins read them."""

from __future__ import annotations

import pytest

from core.auth import accounts, audit, permissions
from core.errors import PermissionDenied
from db.engine import Database
from db.models import Role

PASSWORD = "correct-horse-1"


def test_admin_may_manage_users_and_read_the_audit_log(db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    boss, _ = make_user("boss", Role.ADMIN)
    info, password = accounts.create_user(db, boss, "carol", "Engineer")
    assert info.role is Role.ENGINEER and len(password) >= accounts.MIN_PASSWORD_LENGTH
    assert [u.username for u in accounts.list_users(db, boss)] == ["boss", "carol"]
    entries = audit.audit_log(db, boss, action="user_created")
    assert [e["details"]["username"] for e in entries] == ["carol", "boss"]
    assert entries[0]["user"] == "boss"


def test_record_audit_names_the_actor_in_the_callers_transaction(db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    erin, _ = make_user("erin", Role.ENGINEER)
    with db.write() as session:
        audit.record_audit(
            session, erin, action="thing_done", entity="thing", entity_id=7, details={"n": 1}
        )
    (entry,) = audit.audit_log(db, permissions.SYSTEM, action="thing_done")
    assert (entry["user"], entry["action"], entry["entity"], entry["entity_id"]) == (
        "erin",
        "thing_done",
        "thing",
        "7",
    )
    assert entry["details"] == {"n": 1}


def test_audit_log_filters_by_user_and_action_newest_first(db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    make_user("alice")
    make_user("bob")
    for username in ("alice", "bob", "alice"):
        accounts.authenticate(db, username, PASSWORD, delay_s=0)

    alice_logins = audit.audit_log(db, permissions.SYSTEM, action="login", username="alice")
    assert [e["user"] for e in alice_logins] == ["alice", "alice"]
    assert audit.audit_log(db, permissions.SYSTEM, action="login", limit=1)[0]["user"] == "alice"
    assert [e["action"] for e in audit.audit_log(db, permissions.SYSTEM, username="bob")] == [
        "login"
    ]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.REVIEWER, Role.ENGINEER], ids=str)
def test_only_admins_read_the_audit_log(db: Database, make_user, role: Role) -> None:  # type: ignore[no-untyped-def]
    actor, _ = make_user("actor", role)
    with pytest.raises(PermissionDenied, match="read audit"):
        audit.audit_log(db, actor)
