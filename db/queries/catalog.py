"""The catalog: dataset snapshots and trained models, their records and status changes.
Callers own the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Dataset, Model, ModelStatus


@dataclass(frozen=True)
class DatasetRecord:
    """A registered dataset snapshot."""

    id: int
    name: str
    source: str
    class_names: list[str]
    counts: dict[str, int]
    num_images: int
    manifest_path: str
    content_hash: str
    health: dict[str, Any]
    created_at: datetime
    is_demo: bool = False  # made by `defectlens demo`

    @property
    def snapshot_dir(self) -> Path:
        return Path(self.manifest_path).parent


@dataclass(frozen=True)
class ModelRecord:
    """A registered model and where its artifact lives."""

    id: int
    name: str
    architecture: str
    class_names: list[str]
    input_spec: dict[str, Any]
    artifact_path: str
    artifact_sha256: str
    metrics: dict[str, Any]
    dataset_id: int | None
    training_job_id: int | None
    status: ModelStatus
    created_at: datetime
    promoted_at: datetime | None
    is_demo: bool = False  # made by `defectlens demo`


def to_dataset_record(row: Dataset) -> DatasetRecord:
    """The record of a dataset row."""
    return DatasetRecord(
        id=row.id,
        name=row.name,
        source=row.source,
        class_names=list(row.class_names),
        counts=dict(row.counts),
        num_images=row.num_images,
        manifest_path=row.manifest_path,
        content_hash=row.content_hash,
        health=dict(row.health),
        created_at=row.created_at,
        is_demo=bool(row.is_demo),
    )


def to_model_record(row: Model) -> ModelRecord:
    """The record of a model row."""
    return ModelRecord(
        id=row.id,
        name=row.name,
        architecture=row.architecture,
        class_names=list(row.class_names),
        input_spec=dict(row.input_spec),
        artifact_path=row.artifact_path,
        artifact_sha256=row.artifact_sha256,
        metrics=dict(row.metrics),
        dataset_id=row.dataset_id,
        training_job_id=row.training_job_id,
        status=ModelStatus(row.status),
        created_at=row.created_at,
        promoted_at=row.promoted_at,
        is_demo=bool(row.is_demo),
    )


# --------------------------------------------------------------------------- datasets


def dataset_by_content(session: Session, content_hash: str) -> DatasetRecord | None:
    """The dataset recorded with this content hash, or None."""
    row = session.scalar(select(Dataset).where(Dataset.content_hash == content_hash))
    return None if row is None else to_dataset_record(row)


def add_dataset(
    session: Session,
    *,
    name: str,
    source: str,
    class_names: list[str],
    counts: dict[str, int],
    manifest_path: str,
    content_hash: str,
    health: dict[str, Any],
    created_by: int | None,
) -> DatasetRecord:
    """Insert a dataset row (its id assigned) and return its record."""
    row = Dataset(
        name=name,
        source=source,
        class_names=list(class_names),
        counts=dict(counts),
        num_images=sum(counts.values()),
        manifest_path=manifest_path,
        content_hash=content_hash,
        health=health,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return to_dataset_record(row)


def list_datasets(session: Session) -> list[DatasetRecord]:
    """Every dataset, newest first."""
    rows = session.scalars(select(Dataset).order_by(Dataset.id.desc()))
    return [to_dataset_record(r) for r in rows]


def get_dataset(session: Session, dataset_id: int) -> DatasetRecord | None:
    """One dataset by id, or None."""
    row = session.get(Dataset, dataset_id)
    return None if row is None else to_dataset_record(row)


# --------------------------------------------------------------------------- models


def add_model(
    session: Session,
    *,
    name: str,
    architecture: str,
    class_names: list[str],
    input_spec: dict[str, Any],
    artifact_path: str,
    artifact_sha256: str,
    metrics: dict[str, Any],
    dataset_id: int | None,
    training_job_id: int | None,
) -> ModelRecord:
    """Insert a model row as a candidate (its id assigned) and return its record."""
    row = Model(
        name=name,
        architecture=architecture,
        class_names=list(class_names),
        input_spec=input_spec,
        artifact_path=artifact_path,
        artifact_sha256=artifact_sha256,
        metrics=metrics,
        dataset_id=dataset_id,
        training_job_id=training_job_id,
        status=ModelStatus.CANDIDATE.value,
    )
    session.add(row)
    session.flush()
    return to_model_record(row)


def list_models(session: Session) -> list[ModelRecord]:
    """Every model, newest first."""
    return [to_model_record(r) for r in session.scalars(select(Model).order_by(Model.id.desc()))]


def get_model(session: Session, model_id: int) -> ModelRecord | None:
    """One model by id, or None."""
    row = session.get(Model, model_id)
    return None if row is None else to_model_record(row)


def active_model(session: Session) -> ModelRecord | None:
    """The active model, or None before one is promoted."""
    row = session.scalar(select(Model).where(Model.status == ModelStatus.ACTIVE.value))
    return None if row is None else to_model_record(row)


def last_archived_active(session: Session) -> ModelRecord | None:
    """The most recently promoted model that is archived now (the one a rollback restores)."""
    row = session.scalar(
        select(Model)
        .where(Model.status == ModelStatus.ARCHIVED.value, Model.promoted_at.is_not(None))
        .order_by(Model.promoted_at.desc(), Model.id.desc())
        .limit(1)
    )
    return None if row is None else to_model_record(row)


def archive_active(session: Session) -> list[int]:
    """Archive every active model; returns their ids."""
    rows = session.scalars(select(Model).where(Model.status == ModelStatus.ACTIVE.value)).all()
    for row in rows:
        row.status = ModelStatus.ARCHIVED.value
    return [row.id for row in rows]


def set_model_status(session: Session, model_id: int, status: ModelStatus) -> None:
    """Give an existing model a new status (without touching who promoted it)."""
    row = session.get_one(Model, model_id)
    row.status = status.value


def activate_model(
    session: Session, model_id: int, *, promoted_by: int | None, at: datetime
) -> ModelRecord:
    """Make an existing model active, promoted by whom and when; returns its new record."""
    row = session.get_one(Model, model_id)
    row.status = ModelStatus.ACTIVE.value
    row.promoted_by = promoted_by
    row.promoted_at = at
    return to_model_record(row)
