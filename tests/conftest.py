"""Fixtures shared by every test: a real, migrated database in a temporary data directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from core import auth, setup
from core.auth import CurrentUser
from core.config import Settings, load_settings
from db.engine import Database
from db.models import Role

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a fresh data directory under tmp_path (SQLite)."""
    return load_settings({"DEFECTLENS_HOME": str(tmp_path / "home"), "DEFECTLENS_LOGIN_DELAY_S": "0"})


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    """A real SQLite database, migrated to head with Alembic."""
    setup.migrate(settings)
    database = setup.open_database(settings)
    yield database
    database.dispose()


@pytest.fixture
def make_user(db: Database):  # type: ignore[no-untyped-def]
    """Create a user with a role; returns (CurrentUser, password)."""

    def _make(username: str, role: Role | str = Role.VIEWER, password: str = "correct-horse-1"):
        info, pw = auth.create_user(db, auth.SYSTEM, username, role, password=password)
        return CurrentUser(id=info.id, username=info.username, role=info.role), pw

    return _make


@pytest.fixture
def pg_url() -> str:
    """URL of a real PostgreSQL server for tests marked postgres (CI starts one)."""
    url = os.environ.get("DEFECTLENS_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("DEFECTLENS_TEST_PG_URL is not set in CI; .ci/run must start PostgreSQL")
        pytest.skip("DEFECTLENS_TEST_PG_URL not set (CI starts PostgreSQL and sets it)")
    return url
