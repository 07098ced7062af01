"""Fixtures shared by every test: a real, migrated database in a temporary data directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import setup
from core.auth import accounts, permissions
from core.auth.permissions import CurrentUser
from core.config import Settings, load_settings
from core.datasets import service
from core.training import register
from core.training.config import TrainConfig
from db.engine import Database
from db.models import Role
from tests.oidc_provider import Provider, start_provider

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for a fresh data directory under tmp_path (SQLite)."""
    return load_settings(
        {"DEFECTLENS_HOME": str(tmp_path / "home"), "DEFECTLENS_LOGIN_DELAY_S": "0"}
    )


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
        info, pw = accounts.create_user(db, permissions.SYSTEM, username, role, password=password)
        return CurrentUser(id=info.id, username=info.username, role=info.role), pw

    return _make


@pytest.fixture
def oidc_provider() -> Iterator[Provider]:
    """A real OpenID Connect provider on a free localhost port (tests/oidc_provider.py)."""
    provider, http = start_provider()
    yield provider
    http.shutdown()


@pytest.fixture
def pg_url() -> str:
    """URL of a real PostgreSQL server for tests marked postgres (CI starts one)."""
    url = os.environ.get("DEFECTLENS_TEST_PG_URL")
    if not url:
        if os.environ.get("CI"):
            pytest.fail("DEFECTLENS_TEST_PG_URL is not set in CI; .ci/run must start PostgreSQL")
        pytest.skip("DEFECTLENS_TEST_PG_URL not set (CI starts PostgreSQL and sets it)")
    return url


def write_tiny_dataset(root: Path, n: int = 16, size: int = 40, seed: int = 0) -> Path:
    """Two clearly separable classes of small grayscale PNGs (ok / scratch), distinct per seed."""
    rng = np.random.default_rng(seed)
    for cls in ("ok", "scratch"):
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            a = (rng.random((size, size)) * 60 + 100).astype(np.uint8)
            if cls == "scratch":
                a[:, size // 2 - 2 : size // 2 + 2] = 250
            Image.fromarray(a).save(folder / f"{cls}_{i}.png")
    return root


@pytest.fixture
def tiny_dataset(tmp_path: Path, db: Database, settings: Settings):  # type: ignore[no-untyped-def]
    """A tiny two-class dataset imported and registered; returns its DatasetRecord."""
    record, _snap, _ = service.import_dataset(
        db, settings, permissions.SYSTEM, write_tiny_dataset(tmp_path / "tiny"), "tiny"
    )
    return record


@pytest.fixture
def train_tiny(db: Database, settings: Settings, tiny_dataset):  # type: ignore[no-untyped-def]
    """Train and register a small model on the tiny dataset (a few seconds on the CPU)."""

    def _train(epochs: int = 1):  # type: ignore[no-untyped-def]
        config = TrainConfig(epochs=epochs, img_size=32, device="cpu")
        return register.train_and_register(
            db, settings, permissions.SYSTEM, tiny_dataset.id, config
        ).model

    return _train
