"""Alembic migrations against real databases: a fresh SQLite file, and PostgreSQL (marked)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    inspect,
    text,
)
from sqlalchemy.orm import Session

from db import migrate
from db.engine import make_engine
from db.models import NAMING_CONVENTION, Base, FlagRule, UTCDateTime

TABLES = {
    "users",
    "datasets",
    "models",
    "training_jobs",
    "job_metrics",
    "images",
    "inspections",
    "reviews",
    "flag_rules",
    "audit_log",
    "rollups",
    "spc_baselines",
    "annotations",
    "sessions",
    "sso_identities",
}
# The tables later revisions add, newest last.
SINCE_0004 = {"spc_baselines", "annotations", "sessions", "sso_identities"}

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
    "annotations": {"ix_annotations_at": ["at"]},
}

UNIQUE = {
    "users": [{"username"}, {"email"}],
    "images": [{"sha256"}],
    "datasets": [{"content_hash"}],
    "flag_rules": [{"product", "version"}],
    "job_metrics": [{"job_id", "epoch"}],
    "sso_identities": [{"user_id"}, {"issuer", "subject"}],
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
        for column_set in expected_sets:
            assert column_set in found_sets, f"{table}: no unique constraint on {column_set}"

    fks = {
        (tuple(fk["constrained_columns"]), fk["referred_table"]): fk
        for fk in insp.get_foreign_keys("inspections")
    }
    assert set(fks) >= {
        (("image_id",), "images"),
        (("model_id",), "models"),
        (("flag_rule_id",), "flag_rules"),
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


# 0002 renamed the flagging-rule table; every name it changes, before and after.
RULE_NAMES = {
    "0001": {
        "table": "thresholds",
        "column": "threshold_id",
        "pk": "pk_thresholds",
        "uq": "uq_thresholds_product_version",
        "fk_user": "fk_thresholds_created_by_users",
        "fk_inspection": "fk_inspections_threshold_id_thresholds",
    },
    "0002": {
        "table": "flag_rules",
        "column": "flag_rule_id",
        "pk": "pk_flag_rules",
        "uq": "uq_flag_rules_product_version",
        "fk_user": "fk_flag_rules_created_by_users",
        "fk_inspection": "fk_inspections_flag_rule_id_flag_rules",
    },
}
AT = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
RULES = [  # product, version, good classes, min confidence, by the engineer (else None)
    ("*", 1, ["ok"], 0.9, True),
    ("pump", 1, ["ok", "good"], 0.8, True),
    ("*", 2, ["ok"], 0.95, False),
]


def _rule_table(name: str) -> Any:
    return sa.table(
        name,
        sa.column("id", Integer),
        sa.column("product", String),
        sa.column("version", Integer),
        sa.column("good_classes", JSON),
        sa.column("min_confidence", Float),
        sa.column("created_by", Integer),
        sa.column("created_at", UTCDateTime()),
    )


def _inspection_table(rule_column: str) -> Any:
    return sa.table(
        "inspections",
        sa.column("id", Integer),
        sa.column("predicted_class", String),
        sa.column("confidence", Float),
        sa.column("probabilities", JSON),
        sa.column("is_defect", Boolean),
        sa.column("flagged", Boolean),
        sa.column(rule_column, Integer),
        sa.column("is_demo", Boolean),
        sa.column("review_version", Integer),
        sa.column("captured_at", UTCDateTime()),
        sa.column("created_at", UTCDateTime()),
    )


def _seed_0001(engine: Engine) -> None:
    """Rows as a plant on 0001 has them: rule versions, inspections judged by them, a review."""
    names = RULE_NAMES["0001"]
    users = sa.table(
        "users",
        sa.column("id", Integer),
        sa.column("username", String),
        sa.column("password_hash", String),
        sa.column("role", String),
        sa.column("active", Boolean),
        sa.column("created_at", UTCDateTime()),
    )
    reviews = sa.table(
        "reviews",
        *(sa.column(c, Integer) for c in ("inspection_id", "reviewer_id", "version")),
        sa.column("true_class", String),
        sa.column("disposition", String),
        sa.column("created_at", UTCDateTime()),
    )
    with engine.begin() as conn:
        user = conn.execute(
            sa.insert(users)
            .values(username="eng", password_hash="x", role="engineer", active=True, created_at=AT)
            .returning(users.c.id)
        ).scalar_one()
        rules = _rule_table(names["table"])
        rule_ids = [
            conn.execute(
                sa.insert(rules)
                .values(
                    product=product,
                    version=version,
                    good_classes=good,
                    min_confidence=confidence,
                    created_by=user if by_engineer else None,
                    created_at=AT,
                )
                .returning(rules.c.id)
            ).scalar_one()
            for product, version, good, confidence, by_engineer in RULES
        ]
        assert rule_ids == [1, 2, 3]
        for rule_id in (2, 3, None):
            conn.execute(
                sa.insert(_inspection_table(names["column"])).values(
                    predicted_class="ok",
                    confidence=0.7,
                    probabilities={"ok": 0.7, "scratch": 0.3},
                    is_defect=False,
                    flagged=True,
                    is_demo=False,
                    review_version=1 if rule_id == 2 else 0,
                    captured_at=AT,
                    created_at=AT,
                    **{names["column"]: rule_id},
                )
            )
        conn.execute(
            sa.insert(reviews).values(
                inspection_id=1,
                reviewer_id=user,
                version=1,
                true_class="ok",
                disposition="accept",
                created_at=AT,
            )
        )


def _rule_data(engine: Engine, revision: str) -> tuple[list[tuple[Any, ...]], dict[int, Any], int]:
    """(rule rows, inspection id -> rule id, review count) under the revision's names."""
    names = RULE_NAMES[revision]
    rules = _rule_table(names["table"])
    inspections = _inspection_table(names["column"])
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                rules.c.id,
                rules.c.product,
                rules.c.version,
                rules.c.good_classes,
                rules.c.min_confidence,
                rules.c.created_by,
                rules.c.created_at,
            ).order_by(rules.c.id)
        ).all()
        judged: dict[int, Any] = dict(
            conn.execute(sa.select(inspections.c.id, inspections.c[names["column"]])).all()
        )
        reviews = conn.execute(sa.text("SELECT count(*) FROM reviews")).scalar_one()
    return [tuple(r) for r in rows], judged, reviews


def _rule_constraints(engine: Engine, revision: str) -> dict[str, Any]:
    names = RULE_NAMES[revision]
    insp = inspect(engine)
    return {
        "pk": insp.get_pk_constraint(names["table"])["name"],
        "uq": [uc["name"] for uc in insp.get_unique_constraints(names["table"])],
        "fk_user": [fk["name"] for fk in insp.get_foreign_keys(names["table"])],
        "fk_inspection": [
            (fk["name"], fk["constrained_columns"], fk["referred_table"])
            for fk in insp.get_foreign_keys("inspections")
            if fk["referred_table"] == names["table"]
        ],
    }


def _expected_constraints(revision: str) -> dict[str, Any]:
    names = RULE_NAMES[revision]
    return {
        "pk": names["pk"],
        "uq": [names["uq"]],
        "fk_user": [names["fk_user"]],
        "fk_inspection": [(names["fk_inspection"], [names["column"]], names["table"])],
    }


def _only_later_revisions_missing(diff: list[object]) -> bool:
    """The schema at 0002 lacks only 0003's job_metrics.class_recall and 0004's rollups."""
    found = set()
    for d in diff:
        if isinstance(d, list):  # alembic groups column changes of one table in a list
            d = d[0]
        if d[0] == "add_column":  # type: ignore[index]
            found.add((d[0], d[2], d[3].name))  # type: ignore[index]
        elif d[0] in ("add_table", "add_index"):  # type: ignore[index]
            found.add((d[0], getattr(d[1], "name", None), None))  # type: ignore[index]
        else:
            found.add((str(d[0]), None, None))  # type: ignore[index]
    return (
        found
        == {
            ("add_column", "job_metrics", "class_recall"),
            ("add_table", "rollups", None),
            ("add_index", "ix_rollups_hour", None),
        }
        | _LATER_0004
    )


# What 0005 adds, as _only_later_revisions_missing sees it.
_LATER_0004 = {
    ("add_table", "spc_baselines", None),
    ("add_index", "ix_spc_baselines_created_at", None),
    ("add_table", "annotations", None),
    ("add_index", "ix_annotations_at", None),
    ("add_table", "sessions", None),
    ("add_index", "ix_sessions_user_id", None),
    # 0007's markers on tables that exist already (annotations arrives with its marker)
    *(("add_column", t, "is_demo") for t in ("datasets", "models", "users")),
    *(("add_index", f"ix_rollups_{c}", None) for c in ("line", "station", "product", "model_id")),
    ("add_table", "sso_identities", None),
    ("add_column", "training_jobs", "attempts"),
}


def _names_of(diff: list[object]) -> set[tuple[str, str | None]]:
    out = set()
    for d in diff:
        if isinstance(d, list):  # alembic groups column changes of one table in a list
            d = d[0]
        if d[0] == "add_column":  # type: ignore[index]
            out.add((f"add_column {d[3].name}", d[2]))  # type: ignore[index]
        else:
            out.add((str(d[0]), getattr(d[1], "name", None)))  # type: ignore[index]
    return out


_DEMO_COLUMNS = {("add_column is_demo", t) for t in ("datasets", "models", "users", "annotations")}
# 0008's indexes on the rollup, missing at every revision before it.
_FILTER_INDEXES = {
    ("add_index", f"ix_rollups_{c}") for c in ("line", "station", "product", "model_id")
}
# 0009's table, missing at every revision before it.
_SSO = {("add_table", "sso_identities")}
# 0010's column, missing at every revision before it.
_ATTEMPTS = {("add_column attempts", "training_jobs")}


def test_0003_and_0004_add_recall_and_the_rollup_and_downgrade_drops_them(
    blank_url: str, engine: Engine
) -> None:
    migrate.upgrade(blank_url, "0002")
    assert "class_recall" not in {c["name"] for c in inspect(engine).get_columns("job_metrics")}
    migrate.upgrade(blank_url, "0003")
    assert "class_recall" in {c["name"] for c in inspect(engine).get_columns("job_metrics")}
    migrate.upgrade(blank_url, "0004")
    assert (
        _names_of(_schema_diff(engine, Base.metadata))
        == {(a, t) for a, t, _ in _LATER_0004 if a != "add_column"}
        | (_DEMO_COLUMNS - {("add_column is_demo", "annotations")})  # annotations: not yet
        | _FILTER_INDEXES
        | _SSO
        | _ATTEMPTS
    )
    migrate.downgrade(blank_url, "0003")
    assert "rollups" not in _tables(engine)
    migrate.downgrade(blank_url, "0002")
    assert "class_recall" not in {c["name"] for c in inspect(engine).get_columns("job_metrics")}


def test_0002_renames_the_rule_table_keeping_rows_and_downgrade_restores_them(
    blank_url: str, engine: Engine
) -> None:
    migrate.upgrade(blank_url, "0001")
    _seed_0001(engine)
    before = _rule_data(engine, "0001")
    assert before[1] == {1: 2, 2: 3, 3: None} and before[2] == 1

    migrate.upgrade(blank_url, "0002")

    assert migrate.current_revision(engine) == "0002"
    assert _tables(engine) == TABLES - {"rollups"} - SINCE_0004 | {"alembic_version"}
    assert _rule_data(engine, "0002") == before
    assert _rule_constraints(engine, "0002") == _expected_constraints("0002")
    assert _only_later_revisions_missing(_schema_diff(engine, Base.metadata))
    # The id sequence moved with the table: a new version gets the next id.
    with Session(engine) as session, session.begin():
        row = FlagRule(product="pump", version=2, good_classes=["ok"], min_confidence=0.85)
        session.add(row)
        session.flush()
        assert row.id == 4
    after = _rule_data(engine, "0002")

    migrate.downgrade(blank_url, "0001")

    assert migrate.current_revision(engine) == "0001"
    assert "thresholds" in _tables(engine) and "flag_rules" not in _tables(engine)
    assert _rule_data(engine, "0001") == after
    assert _rule_constraints(engine, "0001") == _expected_constraints("0001")
    found = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("inspections")}
    assert all(found.get(name) == cols for name, cols in INDEXES["inspections"].items())


def test_0005_adds_baselines_and_annotations_and_downgrade_drops_them(
    blank_url: str, engine: Engine
) -> None:
    migrate.upgrade(blank_url, "0005")
    assert (
        _names_of(_schema_diff(engine, Base.metadata))
        == {
            ("add_table", "sessions"),
            ("add_index", "ix_sessions_user_id"),
        }
        | _DEMO_COLUMNS
        | _FILTER_INDEXES
        | _SSO
        | _ATTEMPTS
    )
    migrate.downgrade(blank_url, "0004")
    assert not SINCE_0004 & _tables(engine)
    assert "rollups" in _tables(engine)


def test_0006_adds_sessions_and_downgrade_drops_them(blank_url: str, engine: Engine) -> None:
    migrate.upgrade(blank_url, "0006")
    assert (
        _names_of(_schema_diff(engine, Base.metadata))
        == _DEMO_COLUMNS | _FILTER_INDEXES | _SSO | _ATTEMPTS
    )
    uniques = [set(u["column_names"]) for u in inspect(engine).get_unique_constraints("sessions")]
    assert {"token_hash"} in uniques
    migrate.downgrade(blank_url, "0005")
    assert "sessions" not in _tables(engine) and "annotations" in _tables(engine)


def test_0007_marks_demo_rows_and_downgrade_drops_the_markers(
    blank_url: str, engine: Engine
) -> None:
    migrate.upgrade(blank_url, "0006")
    with engine.begin() as conn:  # a row from before: it is not demo data
        conn.execute(text("INSERT INTO users (username, password_hash, role, active, created_at)"
                          " VALUES ('old', 'x', 'viewer', true, CURRENT_TIMESTAMP)"))  # fmt: skip
    migrate.upgrade(blank_url, "0007")
    assert _names_of(_schema_diff(engine, Base.metadata)) == _FILTER_INDEXES | _SSO | _ATTEMPTS
    with engine.connect() as conn:
        assert conn.execute(text("SELECT is_demo FROM users")).scalar_one() in (False, 0)
    migrate.downgrade(blank_url, "0006")
    assert "is_demo" not in {c["name"] for c in inspect(engine).get_columns("users")}


def test_0008_indexes_the_rollup_filters_and_downgrade_drops_them(
    blank_url: str, engine: Engine
) -> None:
    migrate.upgrade(blank_url, "0008")
    assert _names_of(_schema_diff(engine, Base.metadata)) == _SSO | _ATTEMPTS
    names = {ix["name"] for ix in inspect(engine).get_indexes("rollups")}
    assert {n for _, n in _FILTER_INDEXES} <= names
    migrate.downgrade(blank_url, "0007")
    assert not {n for _, n in _FILTER_INDEXES} & {
        ix["name"] for ix in inspect(engine).get_indexes("rollups")
    }


def test_0009_adds_sso_identities_and_downgrade_drops_them(blank_url: str, engine: Engine) -> None:
    migrate.upgrade(blank_url, "0009")
    assert _names_of(_schema_diff(engine, Base.metadata)) == _ATTEMPTS
    uniques = [
        set(u["column_names"]) for u in inspect(engine).get_unique_constraints("sso_identities")
    ]
    assert {"user_id"} in uniques and {"issuer", "subject"} in uniques
    fks = inspect(engine).get_foreign_keys("sso_identities")
    assert [(f["referred_table"], f["options"].get("ondelete")) for f in fks] == [
        ("users", "CASCADE")
    ]
    migrate.downgrade(blank_url, "0008")
    assert "sso_identities" not in _tables(engine)


def test_0010_counts_job_attempts_from_zero_and_downgrade_drops_the_column(
    blank_url: str, engine: Engine
) -> None:
    migrate.upgrade(blank_url, "0009")
    with engine.begin() as conn:  # a job from before: it has been started no times yet
        conn.execute(text("INSERT INTO training_jobs (status, config, backend, progress,"
                          " cancel_requested, created_at) VALUES ('queued', '{}', 'local', 0,"
                          " false, CURRENT_TIMESTAMP)"))  # fmt: skip
    migrate.upgrade(blank_url, "0010")
    assert _schema_diff(engine, Base.metadata) == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT attempts FROM training_jobs")).scalar_one() == 0
    migrate.downgrade(blank_url, "0009")
    assert "attempts" not in {c["name"] for c in inspect(engine).get_columns("training_jobs")}
