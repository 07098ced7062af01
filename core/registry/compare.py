"""Measure models on the same labelled images, so candidate and active compare fairly.

pages/models.py imports this module, so it must not load torch: the classifier and the
artifact code (torch, ONNX Runtime) are imported where a model is actually loaded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.datasets import service
from core.errors import DatasetError, InvalidImageError
from core.training import metrics
from core.vision import acceptance, calibration
from core.vision.images import DecodeLimits
from db.engine import Database
from db.queries.catalog import ModelRecord

if TYPE_CHECKING:
    from core.vision.classifier import Classifier


@dataclass(frozen=True)
class ModelScore:
    """One model's metrics on one dataset split."""

    model_id: int
    dataset_id: int
    split: str
    metrics: dict[str, object]
    images: int
    rejected: int
    seconds: float


def load_classifier(settings: Settings, model: ModelRecord) -> Classifier:
    """A verified Classifier for a registered model (CPU unless a GPU is configured)."""
    from core.vision.classifier import Classifier  # deferred: loads torch (see module docstring)

    device = settings.device if settings.device != "auto" else "cpu"
    return Classifier.from_artifact(
        Path(model.artifact_path),
        device=device,
        num_threads=settings.num_threads,
        limits=DecodeLimits.from_settings(settings),
    )


def score_model(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    model: ModelRecord,
    dataset_id: int,
    split: str = "val",
) -> ModelScore:
    """Classify one split of a dataset with a model and compute its metrics (engineers and up:
    MANAGE_MODELS, the Models page's comparison)."""
    require(actor, Action.MANAGE_MODELS)
    _record, snap = service.load_dataset(db, actor, dataset_id)
    entries = [e for e in snap.entries if split == "all" or e.split == split]
    if not entries:
        raise DatasetError(f"dataset {dataset_id} has no images in split {split!r}")
    unknown = sorted({e.cls for e in entries} - set(model.class_names))
    if unknown:
        raise DatasetError(
            f"model {model.id} does not know the classes {', '.join(unknown)} of dataset "
            f"{dataset_id}; compare models trained on the same classes"
        )
    clf = load_classifier(settings, model)
    started = time.perf_counter()
    results = clf.predict_bytes(
        [(snap.path / e.file).read_bytes() for e in entries], [e.file for e in entries]
    )
    y_true, y_pred, probs = [], [], []
    rejected = 0
    for entry, res in zip(entries, results, strict=True):
        if isinstance(res, InvalidImageError):
            rejected += 1
            continue
        y_true.append(model.class_names.index(entry.cls))
        y_pred.append(res.class_index)
        probs.append([res.probabilities[c] for c in model.class_names])
    if not y_true:
        raise DatasetError(f"no readable images in split {split!r} of dataset {dataset_id}")
    scores = metrics.evaluate(y_true, y_pred, model.class_names, probs).to_dict()
    return ModelScore(
        model.id, dataset_id, split, scores, len(y_true), rejected, time.perf_counter() - started
    )


def stored_calibration(model: ModelRecord) -> calibration.StoredCalibration:
    """The model's temperature and calibration report, read from its metadata without torch.

    Takes no user: it reads only the metadata of a record the caller already got through a
    checked read (catalog.get_model). OSError or ValueError when the metadata cannot be read.
    """
    return calibration.read_stored(Path(model.artifact_path))


def acceptance_summary(stored: calibration.StoredCalibration) -> str:
    """How the model calls a part good, in words (the Models page), from its stored metadata."""
    text = acceptance.acceptance_text(stored.acceptance)
    if stored.acceptance.get("fitted"):
        text += (
            ". Below the threshold the model names its most probable defect class instead, so "
            "the part goes to review rather than passing unseen"
        )
    return text + "."


def onnx_export_bytes(model: ModelRecord) -> bytes:
    """The model as ONNX (checked against PyTorch with ONNX Runtime), for download."""
    from core.vision import (
        artifacts,  # deferred: loads torch (see module docstring)
        onnx_export,
    )

    loaded = artifacts.load_model(Path(model.artifact_path))
    data = onnx_export.onnx_bytes(loaded)
    onnx_export.verify_onnx(loaded, data)
    return data
