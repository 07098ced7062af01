"""Commands that run models: train, evaluate, models export."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from core.auth import permissions
from core.cli.common import emit_json
from core.cli.ml import JsonOpt, _open, _progress
from core.errors import DatasetError, ValidationError
from core.registry import catalog


def train(
    data: Annotated[Path | None, typer.Option(help="Folder or zip to import and train on.")] = None,
    dataset: Annotated[int | None, typer.Option(help="Id of an imported dataset.")] = None,
    arch: Annotated[str, typer.Option(help="Architecture (see core/vision/architectures.py).")] = (
        "defectnet"
    ),
    epochs: Annotated[
        int | None, typer.Option(help="Epochs (default: 30 on the CPU, 40 on a GPU).")
    ] = None,
    img_size: Annotated[int | None, typer.Option(help="Input side in pixels.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for split, init and augmentation.")] = 0,
    rot90: Annotated[
        bool, typer.Option("--rot90", help="Add 90-degree turns (rotation-symmetric parts).")
    ] = False,
    split_file: Annotated[
        Path | None, typer.Option(help="With --data: CSV with file,split columns.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="With --data: dataset name.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train a model and register it as a candidate."""
    started = time.perf_counter()
    if (data is None) == (dataset is None):
        raise ValidationError("give exactly one of --data PATH or --dataset ID")
    from core.training import register
    from core.training.loop import GPU_DEFAULT_EPOCHS, EpochReport, TrainConfig, resolve_device

    s, db = _open()
    if data is not None:
        with _progress("importing", as_json) as progress:
            record, _snap, _created = register.import_dataset(
                db,
                s,
                permissions.SYSTEM,
                data,
                name or data.name,
                seed=seed,
                split_file=split_file,
                on_progress=progress,
            )
        dataset_id = record.id
    else:
        assert dataset is not None
        dataset_id = dataset
    config = TrainConfig(
        arch=arch, seed=seed, device=device or s.device, num_threads=s.num_threads, rot90=rot90
    )
    for field_name, value in (
        ("epochs", epochs),
        ("img_size", img_size),
        ("batch_size", batch_size),
        ("lr", lr),
    ):
        if value is not None:
            setattr(config, field_name, value)
    if epochs is None and resolve_device(config.device).type == "cuda":
        # bf16 on the GPU needs a few more epochs to settle (docs/benchmarks.md, target 6);
        # they cost seconds there.
        config.epochs = GPU_DEFAULT_EPOCHS

    def report(epoch: EpochReport) -> None:
        if not as_json:
            acc = "–" if epoch.val_accuracy is None else f"{epoch.val_accuracy:.2%}"
            sys.stderr.write(
                f"epoch {epoch.epoch}/{config.epochs}  loss {epoch.train_loss:.4f}  "
                f"val acc {acc}  {epoch.images_per_second:.0f} img/s  {epoch.seconds:.1f}s\n"
            )

    outcome = register.train_and_register(
        db, s, permissions.SYSTEM, dataset_id, config, on_progress=report
    )
    result = outcome.result
    metrics = outcome.model.metrics if outcome.model else {}
    payload: dict[str, Any] = {
        "model_id": outcome.model.id if outcome.model else None,
        "dataset_id": dataset_id,
        "architecture": result.arch,
        "val_accuracy": metrics.get("accuracy"),
        "evaluated_on": metrics.get("evaluated_on"),
        "macro_f1": metrics.get("macro_f1"),
        "per_class": metrics.get("per_class"),
        "confusion_matrix": metrics.get("confusion_matrix"),
        "class_names": result.class_names,
        "best_epoch": result.best_epoch,
        "epochs": len(result.history),
        "train_seconds": result.train_seconds,
        "load_seconds": result.load_seconds,
        "wall_seconds": time.perf_counter() - started,
        "images_per_second": result.images_per_second,
        "device": result.device,
    }
    if as_json:
        emit_json(payload)
        return
    acc_v, f1_v = payload["val_accuracy"], payload["macro_f1"]
    acc_text = "–" if acc_v is None else f"{acc_v:.2%}"
    f1_text = "–" if f1_v is None else f"{f1_v:.4f}"
    typer.echo(
        f"model {payload['model_id']} (candidate): validation accuracy {acc_text}, "
        f"macro-F1 {f1_text}, trained in {result.train_seconds:.1f}s on {result.device}"
    )


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


def evaluate_cmd(
    model: Annotated[str, typer.Option(help="Model id or 'active'.")] = "active",
    data: Annotated[Path | None, typer.Option(help="Folder with one sub-folder per class.")] = None,
    dataset: Annotated[int | None, typer.Option(help="Id of an imported dataset.")] = None,
    split: Annotated[str, typer.Option(help="With --dataset: val, test, train or all.")] = "val",
    backend: Annotated[str, typer.Option(help="auto, torch or onnx.")] = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Measure a model on labelled images: accuracy, macro-F1, per class, confusion matrix."""
    from core.training import metrics, register
    from core.vision.classifier import Classifier, Prediction
    from core.vision.images import DecodeLimits

    if (data is None) == (dataset is None):
        raise ValidationError("give exactly one of --data PATH or --dataset ID")
    s, db = _open()
    record = catalog.get_model(db, model)
    if data is not None:
        items = _folder_images(data, record.class_names)
    else:
        assert dataset is not None
        _rec, snap = register.load_dataset(db, dataset)
        if split not in ("val", "test", "train", "all"):
            raise ValidationError(f"split must be val, test, train or all, not {split!r}")
        entries = [e for e in snap.entries if split == "all" or e.split == split]
        missing = sorted({e.cls for e in entries} - set(record.class_names))
        if missing:
            raise DatasetError(f"classes {', '.join(missing)} are not known to the model")
        items = [(snap.path / e.file, record.class_names.index(e.cls)) for e in entries]
        if not items:
            raise DatasetError(f"dataset {dataset} has no images in split {split!r}")
    clf = Classifier.from_artifact(
        Path(record.artifact_path),
        device=s.device if s.device != "auto" else "cpu",
        num_threads=s.num_threads,
        backend=backend,
        limits=DecodeLimits.from_settings(s),
    )
    y_true: list[int] = []
    y_pred: list[int] = []
    probs: list[list[float]] = []
    rejected: list[dict[str, str]] = []
    chunk = 256
    started = time.perf_counter()
    with _progress("evaluating", as_json) as progress:
        for i in range(0, len(items), chunk):
            part = items[i : i + chunk]
            datas = [p.read_bytes() for p, _ in part]
            results = clf.predict_bytes(datas, [p.name for p, _ in part])
            for (path, label), res in zip(part, results, strict=True):
                if isinstance(res, Prediction):
                    y_true.append(label)
                    y_pred.append(res.class_index)
                    probs.append([res.probabilities[c] for c in record.class_names])
                else:
                    rejected.append({"file": str(path), "reason": str(res)})
            progress(min(i + chunk, len(items)), len(items))
    seconds = time.perf_counter() - started
    if not y_true:
        raise DatasetError("no readable images to evaluate")
    result = metrics.evaluate(y_true, y_pred, record.class_names, probs)
    payload = {
        "model_id": record.id,
        **result.to_dict(),
        "images_per_second": len(items) / seconds,
        "seconds": seconds,
        "backend": clf.backend,
        "rejected": rejected,
    }
    if as_json:
        emit_json(payload)
        return
    typer.echo(
        f"model {record.id} on {len(y_true)} images: accuracy {result.accuracy:.2%}, "
        f"macro-F1 {result.macro_f1:.4f}, {payload['images_per_second']:.0f} images/s"
    )
    for cls, m in result.per_class.items():
        d = m.to_dict()
        typer.echo(
            f"  {cls:<24} precision {d['precision']:.3f}  recall {d['recall']:.3f}  "
            f"f1 {d['f1']:.3f}  n={d['support']}"
        )
    for r in rejected:
        typer.echo(f"  rejected {r['file']}: {r['reason']}")


def models_export(
    model_id: int,
    format: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
    out: Annotated[Path | None, typer.Option(help="Output file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a model to ONNX (checked against PyTorch with ONNX Runtime)."""
    if format.lower() != "onnx":
        raise ValidationError(f"format {format!r} is not supported; use onnx")
    from core.vision import artifacts

    s, db = _open()
    record = catalog.get_model(db, model_id)
    loaded = artifacts.load_model(Path(record.artifact_path))
    target = out or Path(f"defectlens-model-{record.id}.onnx")
    path = artifacts.export_onnx(loaded, target)
    payload = {
        "model_id": record.id,
        "format": "onnx",
        "path": str(path.resolve()),
        "sha256": artifacts.sha256_file(path),
        "bytes": path.stat().st_size,
    }
    if as_json:
        emit_json(payload)
    else:
        typer.echo(f"wrote {payload['path']} ({payload['bytes']} bytes)")


def register(app: typer.Typer, models_app: typer.Typer) -> None:
    """Attach train, evaluate and models export."""
    app.command("train")(train)
    app.command("evaluate")(evaluate_cmd)
    models_app.command("export")(models_export)
