"""User queries on real migrated databases (SQLite; PostgreSQL marked)."""

from __future__ import annotations

from db.engine import Database
from db.models import Role
from db.queries import users


def _add(database: Database, name: str, role: Role, email: str | None = None) -> int:
    with database.write() as s:
        return users.add_user(s, username=name, password_hash="x", role=role, email=email).id


def test_add_user_flushes_an_active_account_and_maps_it_without_the_hash(
    database: Database,
) -> None:
    user_id = _add(database, "Alice", Role.ENGINEER, "alice@plant.example")
    with database.read() as s:
        row = users.get_user(s, user_id)
        assert row is not None
        info = users.to_user_info(row)
    assert (info.id, info.username, info.email, info.role, info.active) == (
        user_id,
        "Alice",
        "alice@plant.example",
        Role.ENGINEER,
        True,
    )
    assert info.last_login_at is None and not hasattr(info, "password_hash")


def test_look_ups_ignore_case_and_listing_is_by_username(database: Database) -> None:
    bob = _add(database, "bob", Role.VIEWER, "Bob@Plant.example")
    alice = _add(database, "Alice", Role.ADMIN)
    with database.read() as s:
        assert users.get_user(s, 999) is None
        found = users.get_user_by_name(s, "BOB")
        assert found is not None and found.id == bob
        by_mail = users.get_user_by_email(s, "bob@plant.EXAMPLE")
        assert by_mail is not None and by_mail.id == bob
        assert users.get_user_by_email(s, "nobody@plant.example") is None
        assert [u.id for u in users.list_users(s)] == [alice, bob]
        assert users.count_users(s) == 2


def test_count_other_active_admins_leaves_out_the_user_and_inactive_admins(
    database: Database,
) -> None:
    boss = _add(database, "boss", Role.ADMIN)
    deputy = _add(database, "deputy", Role.ADMIN)
    _add(database, "erin", Role.ENGINEER)
    with database.read() as s:
        assert users.count_other_active_admins(s, boss) == 1
    with database.write() as s:
        row = users.get_user(s, deputy)
        assert row is not None
        row.active = False
    with database.read() as s:
        assert users.count_other_active_admins(s, boss) == 0
        assert users.count_other_active_admins(s, deputy) == 1
