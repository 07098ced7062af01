"""The steps the CLI, the worker and the pages share: train on a registered dataset and register."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.datasets.service import load_dataset
from core.datasets.snapshot import DatasetSnapshot
from core.registry import catalog
from core.training import metrics as ev
from core.training.config import EpochReport, TrainConfig, TrainResult
from core.vision import acceptance, calibration
from core.vision.images import DecodeLimits
from core.vision.preprocess import normalisation_tensors
from db.engine import Database
from db.queries.catalog import ModelRecord

log = logging.getLogger(__name__)


def test_metrics(
    result: TrainResult, snapshot: DatasetSnapshot, limits: DecodeLimits
) -> dict[str, Any]:
    """Metrics of a trained model on the snapshot's test split (JSON-ready)."""
    # Deferred, like fit below: the loop loads torch, while importing this module stays
    # torch-free (tests/test_imports.py), so the CLI and the job code may import it at the top.
    from core.training.data import load_split_tensors
    from core.training.predict import predict_tensor

    test = load_split_tensors(
        snapshot, result.img_size, result.in_channels, ("test",), limits=limits,
        resize=result.resize,
    )["test"]  # fmt: skip
    mean, std = normalisation_tensors(*result.normalisation)
    logits = predict_tensor(result.model, test.x, mean, std, logits=True).numpy()
    # As the product decides: calibrated probabilities, then the acceptance threshold.
    probs = calibration.softmax(logits, result.temperature)
    good, threshold = acceptance.stored_rule(result.acceptance, result.class_names)
    pred = acceptance.decide(probs, good, threshold)
    return ev.evaluate(test.y.numpy(), pred, result.class_names, probs).to_dict()


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
    # Deferred: training and the artifact writer load torch (see test_metrics).
    from core.training.loop import fit
    from core.vision import artifacts

    require(actor, Action.TRAIN)
    record, snapshot = load_dataset(db, actor, dataset_id)
    # The training log repeats the dataset's health warnings: a job's log is read on its own.
    for warning in snapshot.health.warnings:
        log.warning("dataset %s: %s", record.id, warning)
    limits = DecodeLimits.from_settings(settings)
    result = fit(
        config,
        snapshot,
        on_progress=on_progress,
        should_stop=should_stop,
        checkpoint_dir=checkpoint_dir,
        limits=limits,
    )
    if result.stopped:
        return TrainOutcome(model=None, result=result)
    metrics = result.metrics.to_dict() if result.metrics else {}
    if metrics:
        metrics["evaluated_on"] = "val"
        if snapshot.split_entries("test"):
            # A held-out test split, never used for any choice, measured once for the record.
            metrics["test"] = test_metrics(result, snapshot, limits)
    elif snapshot.split_entries("test"):
        # No validation split (a published train/test split): the last epoch was kept, and the
        # test split, never used for any choice, measures it once.
        metrics = {**test_metrics(result, snapshot, limits), "evaluated_on": "test"}
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
            "resize": result.resize,
            "img_size_reason": result.img_size_reason,
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
