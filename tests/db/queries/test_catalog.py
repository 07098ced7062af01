"""Catalog queries on real migrated databases (SQLite; PostgreSQL marked): datasets, models and
the status changes behind promote and roll back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from db.engine import Database
from db.models import ModelStatus
from db.queries import catalog as catalog_queries
from db.queries.catalog import DatasetRecord, ModelRecord

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def _dataset(database: Database, content_hash: str) -> DatasetRecord:
    with database.write() as s:
        return catalog_queries.add_dataset(
            s,
            name=f"set {content_hash[:2]}",
            source="upload.zip",
            class_names=["ok", "scratch"],
            counts={"ok": 3, "scratch": 2},
            manifest_path=f"/data/{content_hash}/manifest.json",
            content_hash=content_hash,
            health={"warnings": []},
            created_by=None,
        )


def _model(database: Database, name: str, dataset_id: int | None = None) -> ModelRecord:
    with database.write() as s:
        return catalog_queries.add_model(
            s,
            name=name,
            architecture="defectnet",
            class_names=["ok", "scratch"],
            input_spec={"img_size": 64},
            artifact_path=f"/models/{name}",
            artifact_sha256="0" * 64,
            metrics={"val_accuracy": 0.9},
            dataset_id=dataset_id,
            training_job_id=None,
        )


def test_datasets_are_recorded_once_per_content(database: Database) -> None:
    first = _dataset(database, "a" * 64)
    second = _dataset(database, "b" * 64)
    assert first.num_images == 5 and first.snapshot_dir.as_posix() == f"/data/{'a' * 64}"
    with database.read() as s:
        assert catalog_queries.dataset_by_content(s, "a" * 64) == first
        assert catalog_queries.dataset_by_content(s, "c" * 64) is None
        assert catalog_queries.get_dataset(s, second.id) == second
        assert catalog_queries.get_dataset(s, 999) is None
        assert catalog_queries.list_datasets(s) == [second, first]
    with pytest.raises(IntegrityError):
        _dataset(database, "a" * 64)


def test_models_start_as_candidates(database: Database) -> None:
    data = _dataset(database, "a" * 64)
    first = _model(database, "m1", data.id)
    second = _model(database, "m2")
    assert first.status == ModelStatus.CANDIDATE and first.promoted_at is None
    assert first.dataset_id == data.id and first.metrics == {"val_accuracy": 0.9}
    with database.read() as s:
        assert catalog_queries.get_model(s, first.id) == first
        assert catalog_queries.get_model(s, 999) is None
        assert catalog_queries.list_models(s) == [second, first]
        assert catalog_queries.active_model(s) is None
        assert catalog_queries.last_archived_active(s) is None


def test_status_changes_behind_promote_and_rollback(database: Database) -> None:
    a, b, c = (_model(database, n).id for n in ("a", "b", "c"))
    with database.write() as s:
        assert catalog_queries.archive_active(s) == []
        active = catalog_queries.activate_model(s, a, promoted_by=None, at=T0)
    assert active.status == ModelStatus.ACTIVE and active.promoted_at == T0
    with database.write() as s:
        assert catalog_queries.archive_active(s) == [a]
        catalog_queries.activate_model(s, b, promoted_by=None, at=T0 + timedelta(hours=1))
    with database.write() as s:
        assert catalog_queries.archive_active(s) == [b]
        catalog_queries.activate_model(s, c, promoted_by=None, at=T0 + timedelta(hours=2))

    with database.read() as s:
        current = catalog_queries.active_model(s)
        assert current is not None and current.id == c
        restore = catalog_queries.last_archived_active(s)
        # The archived model promoted last is b (a was promoted earlier).
        assert restore is not None and restore.id == b
    with database.write() as s:
        catalog_queries.set_model_status(s, c, ModelStatus.CANDIDATE)
    with database.read() as s:
        assert catalog_queries.active_model(s) is None
        again = catalog_queries.get_model(s, c)
        # A status change keeps when the model was promoted.
        assert again is not None and again.status == ModelStatus.CANDIDATE
        assert again.promoted_at == T0 + timedelta(hours=2)
