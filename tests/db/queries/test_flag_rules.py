"""Flagging-rule queries on real migrated databases (SQLite; PostgreSQL marked)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from db.engine import Database
from db.models import User
from db.queries import flag_rules as rule_queries
from db.queries.flag_rules import FlagRuleRecord


def _user(database: Database, name: str) -> int:
    with database.write() as s:
        row = User(username=name, password_hash="x", role="engineer")
        s.add(row)
        s.flush()
        return row.id


def _add(
    database: Database, product: str, version: int, by: int | None, name: str | None
) -> FlagRuleRecord:
    with database.write() as s:
        return rule_queries.add_rule(
            s,
            product=product,
            version=version,
            good_classes=["ok"],
            min_confidence=0.8 + version / 100,
            created_by=by,
            username=name,
        )


def test_versions_come_newest_first_with_their_author(database: Database) -> None:
    erin = _user(database, "erin")
    star = _add(database, "*", 1, erin, "erin")
    pump1 = _add(database, "pump", 1, None, "system")
    pump2 = _add(database, "pump", 2, erin, "erin")
    assert (star.id, pump1.id, pump2.id) == (1, 2, 3)
    assert pump2.good_classes == ["ok"] and pump2.min_confidence == pytest.approx(0.82)

    with database.read() as s:
        assert rule_queries.newest_rule(s, "pump") == pump2
        assert rule_queries.newest_rule(s, "valve") is None
        history = rule_queries.rule_versions(s, "pump")
        # Read back, the author is the user row's name: none for a rule the CLI set.
        assert [(r.version, r.created_by) for r in history] == [(2, "erin"), (1, None)]
        assert rule_queries.rule_versions(s, "valve") == []
        assert rule_queries.rule_products(s) == ["*", "pump"]


def test_products_keep_the_order_their_first_rule_was_set(database: Database) -> None:
    for product, version in (("valve", 1), ("*", 1), ("valve", 2), ("axle", 1)):
        _add(database, product, version, None, None)
    with database.read() as s:
        assert rule_queries.rule_products(s) == ["valve", "*", "axle"]


def test_a_taken_version_is_refused(database: Database) -> None:
    """set_rule turns this into Conflict when two engineers save the same product at once."""
    _add(database, "pump", 1, None, None)
    with pytest.raises(IntegrityError):
        _add(database, "pump", 1, None, None)
    with database.read() as s:
        assert len(rule_queries.rule_versions(s, "pump")) == 1
