"""The steps the CLI, the worker and the pages share: import a dataset, train and register."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.datasets import importer
from core.datasets.snapshot import DatasetSnapshot, load_snapshot
from core.errors import DatasetError
from core.registry import catalog
from core.registry.catalog import DatasetRecord, ModelRecord
from core.training.loop import EpochReport, TrainConfig, TrainResult, fit
from core.vision import artifacts
from db.engine import Database

log = logging.getLogger(__name__)


def import_dataset(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    source: Path,
    name: str,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    split_file: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    source_label: str | None = None,
) -> tuple[DatasetRecord, DatasetSnapshot, bool]:
    """Import a folder or zip into a snapshot and record it; (record, snapshot, created)."""
    require(actor, Action.MANAGE_DATASETS)
    snapshot = importer.import_dataset(
        source,
        name,
        settings,
        val_fraction=val_fraction,
        seed=seed,
        split_file=split_file,
        on_progress=on_progress,
    )
    record, created = catalog.register_dataset(
        db,
        actor,
        name=name,
        source=source_label or str(source),
        class_names=list(snapshot.class_names),
        counts=dict(snapshot.counts),
        manifest_path=snapshot.manifest_path,
        content_hash=snapshot.content_hash,
        health=snapshot.health.to_dict(),
    )
    return record, snapshot, created


def load_dataset(db: Database, dataset_id: int) -> tuple[DatasetRecord, DatasetSnapshot]:
    """A registered dataset and its snapshot; DatasetError when its files are gone."""
    record = catalog.get_dataset(db, dataset_id)
    if not record.snapshot_dir.exists():
        raise DatasetError(
            f"dataset {dataset_id} ({record.name}): snapshot folder "
            f"{record.snapshot_dir} is missing"
        )
    return record, load_snapshot(record.snapshot_dir)


def test_metrics(result: TrainResult, snapshot: DatasetSnapshot) -> dict[str, Any]:
    """Metrics of a trained model on the snapshot's test split (JSON-ready)."""
    import torch

    from core.training import metrics
    from core.training.loop import load_split_tensors, predict_tensor

    test = load_split_tensors(snapshot, result.img_size, result.in_channels, ("test",))["test"]
    mean = torch.tensor(result.normalisation[0]).view(1, -1, 1, 1)
    std = torch.tensor(result.normalisation[1]).view(1, -1, 1, 1)
    with torch.no_grad():
        probs = predict_tensor(result.model, test.x, mean, std)
    return metrics.evaluate(
        test.y.numpy(), probs.argmax(1).numpy(), result.class_names, probs.numpy()
    ).to_dict()


@dataclass(frozen=True)
class TrainOutcome:
    """A finished training run: the registered model (None when stopped) and the result."""

    model: ModelRecord | None
    result: TrainResult


def train_and_register(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    dataset_id: int,
    config: TrainConfig,
    *,
    on_progress: Callable[[EpochReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    training_job_id: int | None = None,
    checkpoint_dir: Path | None = None,
) -> TrainOutcome:
    """Train on a registered dataset and register the best model as a candidate.

    A stopped run registers nothing. The artifact is complete on disk before its row exists.
    """
    require(actor, Action.TRAIN)
    record, snapshot = load_dataset(db, dataset_id)
    result = fit(
        config,
        snapshot,
        on_progress=on_progress,
        should_stop=should_stop,
        checkpoint_dir=checkpoint_dir,
    )
    if result.stopped:
        return TrainOutcome(model=None, result=result)
    metrics = result.metrics.to_dict() if result.metrics else {}
    if metrics:
        metrics["evaluated_on"] = "val"
    elif snapshot.split_entries("test"):
        # No validation split (a published train/test split): the last epoch was kept, and the
        # test split, never used for any choice, measures it once.
        metrics = {**test_metrics(result, snapshot), "evaluated_on": "test"}
    meta = artifacts.metadata_from_result(
        result, dataset_id=str(record.id), dataset_hash=record.content_hash
    )
    meta.metrics = metrics
    directory = settings.models_dir / uuid.uuid4().hex
    saved = artifacts.save_model(result, meta, directory)
    acc = metrics.get("accuracy")
    name = f"{result.arch} on {record.name}" + (f" ({acc:.2%})" if acc is not None else "")
    model = catalog.register_model(
        db,
        actor,
        name=name[:200],
        architecture=result.arch,
        class_names=list(result.class_names),
        input_spec={
            "img_size": result.img_size,
            "in_channels": result.in_channels,
            "normalisation": meta.normalisation,
        },
        artifact_path=saved.path_meta,
        artifact_sha256=saved.sha256,
        metrics=metrics,
        dataset_id=record.id,
        training_job_id=training_job_id,
    )
    log.info("registered model %s from dataset %s", model.id, record.id)
    return TrainOutcome(model=model, result=result)


def import_upload(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    data: bytes,
    filename: str,
    name: str,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[DatasetRecord, DatasetSnapshot, bool]:
    """Import a zip uploaded through the browser (the file name is display text only)."""
    import tempfile

    require(actor, Action.MANAGE_DATASETS)
    if len(data) > settings.max_upload_mb * 1024 * 1024:
        raise DatasetError(f"{filename}: larger than the {settings.max_upload_mb} MB upload limit")
    settings.home.mkdir(parents=True, exist_ok=True)
    # The temp name is ours; the uploaded name never becomes part of a path.
    with tempfile.NamedTemporaryFile(suffix=".zip", dir=settings.home, delete=True) as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            return import_dataset(
                db,
                settings,
                actor,
                Path(tmp.name),
                name,
                val_fraction=val_fraction,
                seed=seed,
                source_label=f"upload: {filename}",
            )
        except DatasetError as e:
            raise DatasetError(str(e).replace(tmp.name, filename)) from None


def import_server_folder(
    db: Database, settings: Settings, actor: CurrentUser, folder: str, name: str
) -> tuple[DatasetRecord, DatasetSnapshot, bool]:
    """Import a folder that already lies on the server, named by an engineer in the browser."""
    require(actor, Action.MANAGE_DATASETS)
    text = folder.strip()
    if not text:
        raise DatasetError("give the folder's path on the server")
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise DatasetError(f"{text}: give an absolute path (it is read on the server)")
    if not path.is_dir():
        raise DatasetError(f"{text}: no such folder on the server")
    return import_dataset(db, settings, actor, path, name)
