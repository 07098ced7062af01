"""Alembic migrations against real databases: a fresh SQLite file, and PostgreSQL (marked)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Engine, MetaData, String, inspect

from db import migrate
from db.engine import make_engine
from db.models import NAMING_CONVENTION, Base

TABLES = {
    "users",
    "datasets",
    "models",
    "training_jobs",
    "job_metrics",
    "images",
    "inspections",
    "reviews",
    "thresholds",
    "audit_log",
}

# table -> {index name: indexed columns}; trend pages and queues depend on these.
INDEXES = {
    "inspections": {
        "ix_inspections_captured_at": ["captured_at"],
        "ix_inspections_line_captured_at": ["line", "captured_at"],
        "ix_inspections_product_captured_at": ["product", "captured_at"],
        "ix_inspections_flagged_captured_at": ["flagged", "captured_at"],
    },
    "audit_log": {"ix_audit_log_at": ["at"], "ix_audit_log_action": ["action"]},
    "training_jobs": {"ix_training_jobs_status": ["status"]},
    "models": {"ix_models_status": ["status"]},
    "reviews": {"ix_reviews_inspection_id": ["inspection_id"]},
}

UNIQUE = {
    "users": [{"username"}, {"email"}],
    "images": [{"sha256"}],
    "datasets": [{"content_hash"}],
    "thresholds": [{"product", "version"}],
    "job_metrics": [{"job_id", "epoch"}],
}


@pytest.fixture
def engine(blank_url: str) -> Iterator[Engine]:
    eng = make_engine(blank_url)
    yield eng
    eng.dispose()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def _schema_diff(engine: Engine, metadata: MetaData) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))


def test_upgrade_to_head_creates_every_table_index_and_constraint(
    blank_url: str, engine: Engine
) -> None:
    assert migrate.current_revision(engine) is None

    migrate.upgrade(blank_url)

    assert _tables(engine) == TABLES | {"alembic_version"}
    head = migrate.head_revision()
    assert head is not None
    assert migrate.current_revision(engine) == head

    insp = inspect(engine)
    for table, expected in INDEXES.items():
        found = {ix["name"]: ix["column_names"] for ix in insp.get_indexes(table)}
        for name, columns in expected.items():
            assert found.get(name) == columns, f"{table}: index {name} missing or wrong"
    for table, expected_sets in UNIQUE.items():
        found_sets = [set(uc["column_names"]) for uc in insp.get_unique_constraints(table)]
        for columns in expected_sets:
            assert columns in found_sets, f"{table}: no unique constraint on {columns}"

    fks = {
        (tuple(fk["constrained_columns"]), fk["referred_table"]): fk
        for fk in insp.get_foreign_keys("inspections")
    }
    assert set(fks) >= {
        (("image_id",), "images"),
        (("model_id",), "models"),
        (("threshold_id",), "thresholds"),
    }
    (metric_fk,) = insp.get_foreign_keys("job_metrics")
    assert metric_fk["referred_table"] == "training_jobs"
    assert (metric_fk.get("options") or {}).get("ondelete", "").upper() == "CASCADE"


def test_downgrade_to_base_then_upgrade_again(blank_url: str, engine: Engine) -> None:
    migrate.upgrade(blank_url)
    assert _tables(engine) >= TABLES

    migrate.downgrade(blank_url, "base")

    assert _tables(engine) == {"alembic_version"}
    assert migrate.current_revision(engine) is None

    migrate.upgrade(blank_url)

    assert _tables(engine) == TABLES | {"alembic_version"}
    assert migrate.current_revision(engine) == migrate.head_revision()
    assert _schema_diff(engine, Base.metadata) == []


def test_models_match_migrated_schema(blank_url: str, engine: Engine) -> None:
    """A model change without a migration shows up here as a non-empty autogenerate diff."""
    migrate.upgrade(blank_url)

    diff = _schema_diff(engine, Base.metadata)

    assert diff == [], f"models and migrations differ; write a migration: {diff}"


def test_schema_comparison_detects_a_model_change_without_migration(
    fresh_sqlite_url: str,
) -> None:
    """Guards the test above: the comparison really sees a column the migrations lack."""
    migrate.upgrade(fresh_sqlite_url)
    changed = MetaData(naming_convention=NAMING_CONVENTION)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["inspections"].append_column(Column("shift", String(8), nullable=True))
    engine = make_engine(fresh_sqlite_url)
    try:
        diff = _schema_diff(engine, changed)
    finally:
        engine.dispose()

    added = [d for d in diff if isinstance(d, tuple) and d[0] == "add_column"]
    assert [(d[2], d[3].name) for d in added] == [("inspections", "shift")]
