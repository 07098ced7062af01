"""Fixtures for db tests: blank databases (nothing migrated) on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError


@pytest.fixture
def fresh_pg_url(pg_url: str) -> Iterator[str]:
    """URL of a brand-new, empty PostgreSQL database, dropped after the test.

    Created through an AUTOCOMMIT admin connection to the database in DEFECTLENS_TEST_PG_URL
    (the role needs CREATEDB), so tests never see each other's tables or rows.
    """
    base = make_url(pg_url)
    if base.drivername == "postgresql":
        base = base.set(drivername="postgresql+psycopg")
    name = f"dl_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_database(admin, name)
        admin.dispose()


def _drop_database(admin: Engine, name: str, attempts: int = 10) -> None:
    """Drop a test database, ending connections a failed test may have left open.

    Not ``WITH (FORCE)``: that must also terminate an autovacuum worker busy on the database,
    which a non-superuser may not do (InsufficientPrivilege, seen in CI). Our own role's
    connections are ended here; plain DROP DATABASE makes autovacuum workers exit by itself,
    and a still-closing backend gets a short retry.
    """
    for attempt in range(attempts):
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND usename = current_user AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            try:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
                return
            except OperationalError:  # "being accessed by other users": a backend still closing
                if attempt == attempts - 1:
                    raise
        time.sleep(0.5)


@pytest.fixture
def fresh_sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file under tmp_path that does not exist yet."""
    return f"sqlite:///{tmp_path / 'blank.db'}"


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def blank_url(request: pytest.FixtureRequest) -> str:
    """An empty database, once on SQLite and once on PostgreSQL (marked postgres)."""
    if request.param == "sqlite":
        return request.getfixturevalue("fresh_sqlite_url")
    return request.getfixturevalue("fresh_pg_url")
