"""The catalog of dataset snapshots and trained models; promote and roll back (audited)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.auth import permissions
from core.auth.audit import record_audit
from core.auth.permissions import Action, CurrentUser
from core.errors import Conflict, NotFound, ValidationError
from db.engine import Database
from db.models import ModelStatus, utcnow
from db.queries import catalog as catalog_queries
from db.queries.catalog import DatasetRecord, ModelRecord


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
        existing = catalog_queries.dataset_by_content(session, content_hash)
        if existing is not None:
            return existing, False
        record = catalog_queries.add_dataset(
            session,
            name=name,
            source=source,
            class_names=class_names,
            counts=counts,
            manifest_path=str(manifest_path),
            content_hash=content_hash,
            health=health,
            created_by=actor.id,
        )
        record_audit(
            session,
            actor,
            action="dataset_imported",
            entity="dataset",
            entity_id=record.id,
            details={"name": name, "images": record.num_images, "classes": list(class_names)},
        )
        return record, True


def list_datasets(db: Database, actor: CurrentUser) -> list[DatasetRecord]:
    """Every dataset, newest first (engineers and up: the Training and Models pages list them)."""
    permissions.require(actor, Action.MANAGE_DATASETS)
    with db.read() as session:
        return catalog_queries.list_datasets(session)


def get_dataset(db: Database, actor: CurrentUser, dataset_id: int) -> DatasetRecord:
    """One dataset by id, or NotFound (engineers and up, as list_datasets)."""
    permissions.require(actor, Action.MANAGE_DATASETS)
    with db.read() as session:
        record = catalog_queries.get_dataset(session, dataset_id)
    if record is None:
        raise NotFound(f"no dataset with id {dataset_id}")
    return record


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
        record = catalog_queries.add_model(
            session,
            name=name,
            architecture=architecture,
            class_names=class_names,
            input_spec=input_spec,
            artifact_path=str(artifact_path),
            artifact_sha256=artifact_sha256,
            metrics=metrics,
            dataset_id=dataset_id,
            training_job_id=training_job_id,
        )
        record_audit(
            session,
            actor,
            action="model_registered",
            entity="model",
            entity_id=record.id,
            details={"architecture": architecture, "dataset_id": dataset_id},
        )
        return record


def list_models(db: Database, actor: CurrentUser) -> list[ModelRecord]:
    """Every model, newest first (engineers and up: the Models page and `defectlens models`)."""
    permissions.require(actor, Action.MANAGE_MODELS)
    with db.read() as session:
        return catalog_queries.list_models(session)


def get_model(db: Database, actor: CurrentUser, ref: int | str) -> ModelRecord:
    """A model by id, or the active one for 'active'; NotFound otherwise (reviewers and up:
    the Inspect page names the active model to whoever may inspect)."""
    permissions.require(actor, Action.INSPECT)
    if isinstance(ref, str) and ref.strip().lower() == "active":
        with db.read() as session:
            active = catalog_queries.active_model(session)
        if active is None:
            raise NotFound("no active model yet; promote one with `defectlens models promote ID`")
        return active
    try:
        model_id = int(ref)
    except ValueError:
        raise ValidationError(f"model {ref!r} is neither an id nor 'active'") from None
    with db.read() as session:
        record = catalog_queries.get_model(session, model_id)
    if record is None:
        raise NotFound(f"no model with id {model_id}")
    return record


def promote_model(db: Database, actor: CurrentUser, model_id: int) -> ModelRecord:
    """Make a model active; the previously active one is archived (audited)."""
    permissions.require(actor, Action.MANAGE_MODELS)
    with db.write() as session:
        model = catalog_queries.get_model(session, model_id)
        if model is None:
            raise NotFound(f"no model with id {model_id}")
        if model.status == ModelStatus.ACTIVE:
            raise Conflict(f"model {model_id} is already active")
        previous = catalog_queries.archive_active(session)
        record = catalog_queries.activate_model(
            session, model_id, promoted_by=actor.id, at=utcnow()
        )
        record_audit(
            session,
            actor,
            action="model_promoted",
            entity="model",
            entity_id=record.id,
            details={"previous_active": previous},
        )
        return record


def rollback_model(db: Database, actor: CurrentUser) -> ModelRecord:
    """Re-activate the model that was active before the current one (audited)."""
    permissions.require(actor, Action.MANAGE_MODELS)
    with db.write() as session:
        current = catalog_queries.active_model(session)
        previous = catalog_queries.last_archived_active(session)
        if previous is None:
            raise Conflict("there is no earlier active model to roll back to")
        if current is not None:
            catalog_queries.set_model_status(session, current.id, ModelStatus.CANDIDATE)
        record = catalog_queries.activate_model(
            session, previous.id, promoted_by=actor.id, at=utcnow()
        )
        record_audit(
            session,
            actor,
            action="model_rolled_back",
            entity="model",
            entity_id=record.id,
            details={"from": None if current is None else current.id, "to": record.id},
        )
        return record
