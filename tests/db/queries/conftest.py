"""Fixtures for query tests: a migrated database on SQLite, and on PostgreSQL when marked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from db import migrate
from db.engine import Database


@pytest.fixture
def database(blank_url: str) -> Iterator[Database]:
    """A migrated database on SQLite, and on PostgreSQL when the postgres mark runs."""
    migrate.upgrade(blank_url)
    database = Database(blank_url)
    yield database
    database.dispose()
