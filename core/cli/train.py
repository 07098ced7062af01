"""`defectlens train`: fit a model on a dataset (a folder or a registered one) and register it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from core.auth import permissions
from core.cli.common import JsonOpt, emit_json, open_database, percent, progress
from core.config import Settings
from core.datasets import service
from core.errors import ValidationError
from core.training import register
from core.training.balance import BALANCE_MODES, check_mode
from core.training.config import EpochReport, TrainConfig
from core.training.register import TrainOutcome
from core.vision.acceptance import DEFAULT_FALSE_REJECT, acceptance_text, check_false_reject


def _train_config(
    s: Settings,
    *,
    arch: str,
    seed: int,
    device: str | None,
    rot90: bool,
    overrides: dict[str, int | float | None],
) -> TrainConfig:
    """The TrainConfig of the command's options (epochs left open are chosen by fit)."""
    config = TrainConfig(
        arch=arch, seed=seed, device=device or s.device, num_threads=s.num_threads, rot90=rot90
    )
    for field_name, value in overrides.items():
        if value is not None:
            setattr(config, field_name, value)
    return config


def _check_resize(resize: str) -> str:
    # Deferred: preprocess loads OpenCV, which only training and inference need.
    from core.vision.preprocess import RESIZE_MODES

    if resize not in RESIZE_MODES:
        raise ValidationError(f"--resize must be one of {', '.join(RESIZE_MODES)}, not {resize!r}")
    return resize


def _epoch_printer(quiet: bool) -> Callable[[EpochReport], None]:
    """A per-epoch progress line on stderr (none with --json)."""

    def report(epoch: EpochReport) -> None:
        if not quiet:
            sys.stderr.write(
                f"epoch {epoch.epoch}/{epoch.epochs}  loss {epoch.train_loss:.4f}  "
                f"val acc {percent(epoch.val_accuracy)}  "
                f"{epoch.images_per_second:.0f} img/s  {epoch.seconds:.1f}s\n"
            )

    return report


def _train_payload(outcome: TrainOutcome, dataset_id: int, started: float) -> dict[str, Any]:
    """What `train --json` prints: the DESIGN.md keys and the run's timings."""
    result = outcome.result
    model_metrics = outcome.model.metrics if outcome.model else {}
    return {
        "model_id": outcome.model.id if outcome.model else None,
        "dataset_id": dataset_id,
        "architecture": result.arch,
        "img_size": result.img_size,
        "resize": result.resize,
        # What the run chose where the command left it open, and why.
        "choices": {
            "architecture": {"value": result.arch, "reason": result.arch_reason},
            "img_size": {"value": result.img_size, "reason": result.img_size_reason},
            "epochs": result.epochs_choice,
            "balance": result.balance,
        },
        "budget_stopped": result.budget_stopped,
        "val_accuracy": model_metrics.get("accuracy"),
        "evaluated_on": model_metrics.get("evaluated_on"),
        "macro_f1": model_metrics.get("macro_f1"),
        "per_class": model_metrics.get("per_class"),
        "confusion_matrix": model_metrics.get("confusion_matrix"),
        "class_names": result.class_names,
        "best_epoch": result.best_epoch,
        "epochs": len(result.history),
        "train_seconds": result.train_seconds,
        "load_seconds": result.load_seconds,
        "wall_seconds": time.perf_counter() - started,
        "images_per_second": result.images_per_second,
        "device": result.device,
        # Temperature scaling on the validation split (ece None when there was none to fit on).
        "temperature": result.temperature,
        "ece": result.calibration.get("ece_after"),
        "ece_uncalibrated": result.calibration.get("ece_before"),
        "balance": result.balance,
        # When a good call stands: P(good) >= threshold (core.vision.acceptance), or why not.
        "acceptance": result.acceptance,
    }


def train(
    data: Annotated[Path | None, typer.Option(help="Folder or zip to import and train on.")] = None,
    dataset: Annotated[int | None, typer.Option(help="Id of an imported dataset.")] = None,
    arch: Annotated[str, typer.Option(help="Architecture: defectnet or resnet18.")] = "defectnet",
    epochs: Annotated[
        int | None,
        typer.Option(help="Epochs (default: chosen from the dataset's size and the budget)."),
    ] = None,
    budget_minutes: Annotated[
        float | None,
        typer.Option(
            help="Time budget of the training loop (default: 15 on the CPU, 10 on a GPU)."
        ),
    ] = None,
    resize: Annotated[
        str, typer.Option(help="letterbox (keep the aspect ratio) or stretch.")
    ] = "letterbox",
    img_size: Annotated[
        int | None,
        typer.Option(help="Input side in pixels (default: chosen from the images' sizes)."),
    ] = None,
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
    balance: Annotated[
        str,
        typer.Option(
            help=f"Class balancing: {', '.join(BALANCE_MODES)} (auto: on above 3:1 imbalance)."
        ),
    ] = "auto",
    false_reject: Annotated[
        float,
        typer.Option(
            help="Share of good parts the good-class acceptance threshold may send to review "
            "(0 turns it off: the most probable class decides)."
        ),
    ] = DEFAULT_FALSE_REJECT,
    as_json: JsonOpt = False,
) -> None:
    """Train a model and register it as a candidate."""
    started = time.perf_counter()
    balance_mode = check_mode(balance)
    share = check_false_reject(false_reject)
    if (data is None) == (dataset is None):
        raise ValidationError("give exactly one of --data PATH or --dataset ID")
    s, db = open_database()
    if data is not None:
        with progress("importing", as_json) as on_progress:
            record, _snap, _created = service.import_dataset(
                db,
                s,
                permissions.SYSTEM,
                data,
                name or data.name,
                seed=seed,
                split_file=split_file,
                on_progress=on_progress,
            )
        dataset_id = record.id
    else:
        assert dataset is not None
        dataset_id = dataset
    overrides = {
        "epochs": epochs, "img_size": img_size, "batch_size": batch_size, "lr": lr,
        "budget_minutes": budget_minutes,
    }  # fmt: skip
    config = _train_config(s, arch=arch, seed=seed, device=device, rot90=rot90, overrides=overrides)
    config.balance = balance_mode
    config.resize = _check_resize(resize)
    config.false_reject = share
    outcome = register.train_and_register(
        db,
        s,
        permissions.SYSTEM,
        dataset_id,
        config,
        on_progress=_epoch_printer(as_json),
    )
    payload = _train_payload(outcome, dataset_id, started)
    if as_json:
        emit_json(payload)
        return
    f1_v = payload["macro_f1"]
    f1_text = "–" if f1_v is None else f"{f1_v:.4f}"
    typer.echo(
        f"model {payload['model_id']} (candidate): validation accuracy "
        f"{percent(payload['val_accuracy'])}, macro-F1 {f1_text}, trained in "
        f"{outcome.result.train_seconds:.1f}s on {outcome.result.device}"
    )
    typer.echo(f"architecture {outcome.result.arch_reason}")
    typer.echo(f"input {outcome.result.img_size_reason} ({outcome.result.resize})")
    typer.echo(f"epochs {outcome.result.epochs_choice.get('reason', '')}")
    if outcome.result.budget_stopped:
        typer.echo("stopped at the time budget; the best epoch so far was kept")
    if outcome.result.balance:
        typer.echo(f"class balance: {outcome.result.balance['reason']}")
    typer.echo(f"good parts: {acceptance_text(outcome.result.acceptance)}")
