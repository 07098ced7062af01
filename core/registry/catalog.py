"""The database's record of dataset snapshots and trained models; promote and roll back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.auth import permissions
from core.auth.audit import record_audit
from core.auth.permissions import Action, CurrentUser
from core.errors import Conflict, NotFound, ValidationError
from db.engine import Database
from db.models import Dataset, Model, ModelStatus, utcnow


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


def _dataset(row: Dataset) -> DatasetRecord:
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
    )


def _model(row: Model) -> ModelRecord:
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
    )


def register_dataset(
    db: Database,
    actor: CurrentUser,
    *,
    name: str,
    source: str,
    class_names: list[str],
    counts: dict[str, int],
    manifest_path: Path,
    content_hash: str,
    health: dict[str, Any],
) -> tuple[DatasetRecord, bool]:
    """Record a snapshot; returns (record, created). The same content is recorded once."""
    permissions.require(actor, Action.MANAGE_DATASETS)
    with db.write() as session:
        existing = session.scalar(select(Dataset).where(Dataset.content_hash == content_hash))
        if existing is not None:
            return _dataset(existing), False
        row = Dataset(
            name=name,
            source=source,
            class_names=list(class_names),
            counts=dict(counts),
            num_images=sum(counts.values()),
            manifest_path=str(manifest_path),
            content_hash=content_hash,
            health=health,
            created_by=actor.id,
        )
        session.add(row)
        session.flush()
        record_audit(
            session,
            actor,
            action="dataset_imported",
            entity="dataset",
            entity_id=row.id,
            details={"name": name, "images": row.num_images, "classes": list(class_names)},
        )
        return _dataset(row), True


def list_datasets(db: Database) -> list[DatasetRecord]:
    """Every dataset, newest first."""
    with db.read() as session:
        rows = session.scalars(select(Dataset).order_by(Dataset.id.desc())).all()
        return [_dataset(r) for r in rows]


def get_dataset(db: Database, dataset_id: int) -> DatasetRecord:
    """One dataset by id, or NotFound."""
    with db.read() as session:
        row = session.get(Dataset, dataset_id)
        if row is None:
            raise NotFound(f"no dataset with id {dataset_id}")
        return _dataset(row)


def register_model(
    db: Database,
    actor: CurrentUser,
    *,
    name: str,
    architecture: str,
    class_names: list[str],
    input_spec: dict[str, Any],
    artifact_path: Path,
    artifact_sha256: str,
    metrics: dict[str, Any],
    dataset_id: int | None,
    training_job_id: int | None = None,
) -> ModelRecord:
    """Record a trained model as a candidate."""
    permissions.require(actor, Action.TRAIN)
    if not artifact_path.exists():
        raise ValidationError(f"{artifact_path}: artifact does not exist; nothing registered")
    with db.write() as session:
        row = Model(
            name=name,
            architecture=architecture,
            class_names=list(class_names),
            input_spec=input_spec,
            artifact_path=str(artifact_path),
            artifact_sha256=artifact_sha256,
            metrics=metrics,
            dataset_id=dataset_id,
            training_job_id=training_job_id,
            status=ModelStatus.CANDIDATE.value,
        )
        session.add(row)
        session.flush()
        record_audit(
            session,
            actor,
            action="model_registered",
            entity="model",
            entity_id=row.id,
            details={"architecture": architecture, "dataset_id": dataset_id},
        )
        return _model(row)


def list_models(db: Database) -> list[ModelRecord]:
    """Every model, newest first."""
    with db.read() as session:
        rows = session.scalars(select(Model).order_by(Model.id.desc())).all()
        return [_model(r) for r in rows]


def get_model(db: Database, ref: int | str) -> ModelRecord:
    """A model by id, or the active one for 'active'; NotFound otherwise."""
    with db.read() as session:
        if isinstance(ref, str) and ref.strip().lower() == "active":
            row = session.scalar(select(Model).where(Model.status == ModelStatus.ACTIVE.value))
            if row is None:
                raise NotFound(
                    "no active model yet; promote one with `defectlens models promote ID`"
                )
            return _model(row)
        try:
            model_id = int(ref)
        except ValueError:
            raise ValidationError(f"model {ref!r} is neither an id nor 'active'") from None
        row = session.get(Model, model_id)
        if row is None:
            raise NotFound(f"no model with id {model_id}")
        return _model(row)


def promote_model(db: Database, actor: CurrentUser, model_id: int) -> ModelRecord:
    """Make a model active; the previously active one is archived (audited)."""
    permissions.require(actor, Action.MANAGE_MODELS)
    with db.write() as session:
        row = session.get(Model, model_id)
        if row is None:
            raise NotFound(f"no model with id {model_id}")
        if row.status == ModelStatus.ACTIVE.value:
            raise Conflict(f"model {model_id} is already active")
        previous = session.scalars(
            select(Model).where(Model.status == ModelStatus.ACTIVE.value)
        ).all()
        for old in previous:
            old.status = ModelStatus.ARCHIVED.value
        row.status = ModelStatus.ACTIVE.value
        row.promoted_by = actor.id
        row.promoted_at = utcnow()
        record_audit(
            session,
            actor,
            action="model_promoted",
            entity="model",
            entity_id=row.id,
            details={"previous_active": [m.id for m in previous]},
        )
        return _model(row)


def rollback_model(db: Database, actor: CurrentUser) -> ModelRecord:
    """Re-activate the model that was active before the current one (audited)."""
    permissions.require(actor, Action.MANAGE_MODELS)
    with db.write() as session:
        current = session.scalar(select(Model).where(Model.status == ModelStatus.ACTIVE.value))
        previous = session.scalar(
            select(Model)
            .where(Model.status == ModelStatus.ARCHIVED.value, Model.promoted_at.is_not(None))
            .order_by(Model.promoted_at.desc(), Model.id.desc())
            .limit(1)
        )
        if previous is None:
            raise Conflict("there is no earlier active model to roll back to")
        if current is not None:
            current.status = ModelStatus.CANDIDATE.value
        previous.status = ModelStatus.ACTIVE.value
        previous.promoted_by = actor.id
        previous.promoted_at = utcnow()
        record_audit(
            session,
            actor,
            action="model_rolled_back",
            entity="model",
            entity_id=previous.id,
            details={"from": None if current is None else current.id, "to": previous.id},
        )
        return _model(previous)
