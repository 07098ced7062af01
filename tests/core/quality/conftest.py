"""Fixtures for the quality tests: an untrained but real model, registered and active."""

from __future__ import annotations

import pytest

from core.config import Settings
from core.quality import ingest
from db.engine import Database
from tests.core.inspection_support import Active, register_active_model


@pytest.fixture
def active(db: Database, settings: Settings) -> Active:
    """The active model and its loaded classifier (loaded once per test)."""
    register_active_model(db, settings)
    return ingest.load_active(db, settings)
