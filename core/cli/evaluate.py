"""`defectlens evaluate`: measure a registered model on labelled images (a folder with one
sub-folder per class, or a split of a registered dataset): metrics and calibration."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from core.auth import permissions
from core.cli.common import JsonOpt, ProgressFn, emit_json, open_database, progress
from core.datasets import service
from core.errors import DatasetError, InvalidImageError, ValidationError
from core.registry import catalog
from core.training import metrics
from core.vision import calibration
from core.vision.images import DecodeLimits
from db.engine import Database

if TYPE_CHECKING:
    from core.vision.classifier import Classifier

# Images read and classified together while evaluating.
EVAL_CHUNK = 256
SPLITS = ("val", "test", "train", "all")


def _folder_images(root: Path, class_names: list[str]) -> list[tuple[Path, int]]:
    """(file, class index) for every file under root/<class>/; unknown classes are an error."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder with one sub-folder per class")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [p.name for p in folders if p.name not in class_names]
    if unknown:
        raise DatasetError(
            f"{root}: classes {', '.join(unknown)} are not known to the model "
            f"({', '.join(class_names)})"
        )
    items = [
        (f, class_names.index(folder.name))
        for folder in folders
        for f in sorted(folder.rglob("*"))
        if f.is_file() and not f.name.startswith(".")
    ]
    if not items:
        raise DatasetError(f"{root}: no files found in the class folders")
    return items


def _dataset_images(
    db: Database, dataset_id: int, split: str, class_names: list[str]
) -> list[tuple[Path, int]]:
    """(file, class index) for one split of an imported dataset."""
    _rec, snap = service.load_dataset(db, permissions.SYSTEM, dataset_id)
    if split not in SPLITS:
        raise ValidationError(f"split must be val, test, train or all, not {split!r}")
    entries = [e for e in snap.entries if split == "all" or e.split == split]
    missing = sorted({e.cls for e in entries} - set(class_names))
    if missing:
        raise DatasetError(f"classes {', '.join(missing)} are not known to the model")
    items = [(snap.path / e.file, class_names.index(e.cls)) for e in entries]
    if not items:
        raise DatasetError(f"dataset {dataset_id} has no images in split {split!r}")
    return items


@dataclass
class _Scored:
    """Predictions of the readable images, and the files that could not be read."""

    y_true: list[int] = field(default_factory=list)
    y_pred: list[int] = field(default_factory=list)
    probs: list[list[float]] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)


def _score(
    clf: Classifier, items: list[tuple[Path, int]], class_names: list[str], on_progress: ProgressFn
) -> _Scored:
    """Classify every item in chunks; unreadable images are listed, not scored."""
    scored = _Scored()
    for i in range(0, len(items), EVAL_CHUNK):
        part = items[i : i + EVAL_CHUNK]
        datas = [p.read_bytes() for p, _ in part]
        results = clf.predict_bytes(datas, [p.name for p, _ in part])
        for (path, label), res in zip(part, results, strict=True):
            if isinstance(res, InvalidImageError):
                scored.rejected.append({"file": str(path), "reason": str(res)})
            else:
                scored.y_true.append(label)
                scored.y_pred.append(res.class_index)
                scored.probs.append([res.probabilities[c] for c in class_names])
        on_progress(min(i + EVAL_CHUNK, len(items)), len(items))
    return scored


def _echo_evaluation(
    model_id: int, result: metrics.EvalResult, payload: dict[str, Any], scored: _Scored
) -> None:
    typer.echo(
        f"model {model_id} on {len(scored.y_true)} images: accuracy {result.accuracy:.2%}, "
        f"macro-F1 {result.macro_f1:.4f}, {payload['images_per_second']:.0f} images/s"
    )
    if payload["acceptance_threshold"] is not None:
        typer.echo(
            f"  good calls need P(good) >= {payload['acceptance_threshold']:.4f} "
            f"(most probable class alone: accuracy {payload['accuracy_argmax']:.2%})"
        )
    for cls, m in result.per_class.items():
        d = m.to_dict()
        typer.echo(
            f"  {cls:<24} precision {d['precision']:.3f}  recall {d['recall']:.3f}  "
            f"f1 {d['f1']:.3f}  n={d['support']}"
        )
    for r in scored.rejected:
        typer.echo(f"  rejected {r['file']}: {r['reason']}")


def _calibration_payload(temperature: float, scored: _Scored) -> dict[str, float]:
    """ECE of the model's (calibrated) probabilities on these images, and before scaling."""
    return {
        "temperature": temperature,
        "ece": calibration.expected_calibration_error(scored.probs, scored.y_true),
        "ece_uncalibrated": calibration.expected_calibration_error(
            calibration.uncalibrated(scored.probs, temperature), scored.y_true
        ),
    }


def evaluate(
    model: Annotated[str, typer.Option(help="Model id or 'active'.")] = "active",
    data: Annotated[Path | None, typer.Option(help="Folder with one sub-folder per class.")] = None,
    dataset: Annotated[int | None, typer.Option(help="Id of an imported dataset.")] = None,
    split: Annotated[str, typer.Option(help="With --dataset: val, test, train or all.")] = "val",
    backend: Annotated[str, typer.Option(help="auto, torch or onnx.")] = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Measure a model on labelled images: accuracy, macro-F1, per class, confusion matrix."""
    # Deferred: the classifier loads torch and ONNX Runtime.
    from core.vision.classifier import Classifier

    if (data is None) == (dataset is None):
        raise ValidationError("give exactly one of --data PATH or --dataset ID")
    s, db = open_database()
    record = catalog.get_model(db, permissions.SYSTEM, model)
    if data is not None:
        items = _folder_images(data, record.class_names)
    else:
        assert dataset is not None
        items = _dataset_images(db, dataset, split, record.class_names)
    clf = Classifier.from_artifact(
        Path(record.artifact_path),
        device=s.device if s.device != "auto" else "cpu",
        num_threads=s.num_threads,
        backend=backend,
        limits=DecodeLimits.from_settings(s),
    )
    started = time.perf_counter()
    with progress("evaluating", as_json) as on_progress:
        scored = _score(clf, items, record.class_names, on_progress)
    seconds = time.perf_counter() - started
    if not scored.y_true:
        raise DatasetError("no readable images to evaluate")
    result = metrics.evaluate(scored.y_true, scored.y_pred, record.class_names, scored.probs)
    payload = {
        "model_id": record.id,
        **result.to_dict(),
        "images_per_second": len(items) / seconds,
        "seconds": seconds,
        "backend": clf.backend,
        "rejected": scored.rejected,
        **_calibration_payload(clf.temperature, scored),
        # The classes above are decided as the product decides: a good call stands only at
        # P(good) >= this threshold (None: argmax); accuracy_argmax is without it.
        "acceptance_threshold": clf.acceptance_threshold,
        "accuracy_argmax": float(
            np.mean(np.argmax(np.asarray(scored.probs), axis=1) == np.asarray(scored.y_true))
        ),
    }
    if as_json:
        emit_json(payload)
    else:
        _echo_evaluation(record.id, result, payload, scored)
