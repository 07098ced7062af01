"""Audit queries on real migrated databases (SQLite; PostgreSQL marked)."""

from __future__ import annotations

from db.engine import Database
from db.models import Role
from db.queries import audit as audit_queries
from db.queries import users


def test_audit_entries_come_newest_first_and_filter(database: Database) -> None:
    with database.write() as s:
        erin = users.add_user(
            s, username="erin", password_hash="x", role=Role.ENGINEER, email=None
        ).id
    with database.write() as s:
        audit_queries.add_audit(
            s, user_id=erin, username="erin", action="login", entity="user", entity_id=erin
        )
        audit_queries.add_audit(s, user_id=None, username="system", action="model_promoted")
        audit_queries.add_audit(
            s, user_id=erin, username="erin", action="logout", details={"why": "done"}
        )
    with database.read() as s:
        newest = audit_queries.list_audit(s)
        assert [(e.username, e.action) for e in newest] == [
            ("erin", "logout"),
            ("system", "model_promoted"),
            ("erin", "login"),
        ]
        assert newest[0].details == {"why": "done"} and newest[1].details == {}
        (login,) = audit_queries.list_audit(s, action="login")
        assert (login.user_id, login.entity, login.entity_id) == (erin, "user", str(erin))
        assert [e.action for e in audit_queries.list_audit(s, username="erin", limit=1)] == [
            "logout"
        ]
