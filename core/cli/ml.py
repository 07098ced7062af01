"""Commands for datasets, training, evaluation and models."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from core import setup
from core.auth import permissions
from core.cli.common import emit_json, settings
from core.config import Settings
from core.registry import catalog
from db.engine import Database

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]

dataset_app = typer.Typer(help="Import and list datasets.", no_args_is_help=True)
models_app = typer.Typer(help="List, promote and export models.", no_args_is_help=True)


def _open() -> tuple[Settings, Database]:
    s = settings()
    setup.migrate(s)
    return s, setup.open_database(s)


@contextmanager
def _progress(description: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A progress bar with rate and ETA on a terminal; silent with --json or when piped."""
    if quiet or not sys.stderr.isatty():
        yield lambda done, total: None
        return
    import time

    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    started = time.monotonic()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None, rate="")

        def update(done: int, total: int) -> None:
            elapsed = max(time.monotonic() - started, 1e-6)
            bar.update(task, completed=done, total=total, rate=f"{done / elapsed:.0f}/s")

        yield update


def _dataset_summary(record: catalog.DatasetRecord, created: bool | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": record.id,
        "name": record.name,
        "classes": record.class_names,
        "class_counts": record.counts,
        "num_images": record.num_images,
        "content_hash": record.content_hash,
        "health": record.health,
    }
    if created is not None:
        out["created"] = created
    return out


@dataset_app.command("import")
def dataset_import(
    path: Path,
    name: Annotated[str, typer.Option(help="Name shown in the dashboard.")],
    split_file: Annotated[
        Path | None, typer.Option(help="CSV with file,split columns (a published split).")
    ] = None,
    val_fraction: Annotated[float, typer.Option(help="Validation share per class.")] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the stratified split.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Import a folder or zip (one sub-folder per class) as an immutable dataset snapshot."""
    from core.training import register

    s, db = _open()
    with _progress("importing", as_json) as progress:
        record, snapshot, created = register.import_dataset(
            db,
            s,
            permissions.SYSTEM,
            path,
            name,
            val_fraction=val_fraction,
            seed=seed,
            split_file=split_file,
            on_progress=progress,
        )
    if as_json:
        emit_json(_dataset_summary(record, created))
        return
    health = snapshot.health
    typer.echo(
        f"dataset {record.id} '{record.name}': {record.num_images} images, "
        f"{len(record.class_names)} classes" + ("" if created else " (already imported)")
    )
    for cls, n in record.counts.items():
        typer.echo(f"  {cls:<24} {n:>6}")
    for f, reason in health.unreadable:
        typer.echo(f"  skipped {f}: {reason}")
    for warning in health.warnings:
        typer.echo(f"  warning: {warning}")


@dataset_app.command("list")
def dataset_list(as_json: JsonOpt = False) -> None:
    """List imported datasets."""
    _, db = _open()
    records = catalog.list_datasets(db)
    if as_json:
        emit_json({"datasets": [_dataset_summary(r) for r in records]})
        return
    for r in records:
        typer.echo(
            f"{r.id:>4}  {r.name:<32} {r.num_images:>7} images  {len(r.class_names)} classes"
        )


def _model_summary(m: catalog.ModelRecord) -> dict[str, Any]:
    return {
        "id": m.id,
        "name": m.name,
        "architecture": m.architecture,
        "status": m.status.value,
        "classes": m.class_names,
        "dataset_id": m.dataset_id,
        "accuracy": m.metrics.get("accuracy"),
        "macro_f1": m.metrics.get("macro_f1"),
        "artifact": m.artifact_path,
        "sha256": m.artifact_sha256,
        "created_at": m.created_at.isoformat(),
    }


@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """List models with their status and validation metrics."""
    _, db = _open()
    records = catalog.list_models(db)
    if as_json:
        emit_json({"models": [_model_summary(m) for m in records]})
        return
    for m in records:
        acc = m.metrics.get("accuracy")
        acc_text = "–" if acc is None else f"{acc:.2%}"
        typer.echo(f"{m.id:>4}  {m.status.value:<9} {acc_text:>7}  {m.name}")


@models_app.command("promote")
def models_promote(model_id: int, as_json: JsonOpt = False) -> None:
    """Make a model the active one (the previous active model is archived)."""
    _, db = _open()
    record = catalog.promote_model(db, permissions.SYSTEM, model_id)
    if as_json:
        emit_json(_model_summary(record))
    else:
        typer.echo(f"model {record.id} is now active")


def register(app: typer.Typer) -> None:
    """Attach these commands to the main app."""
    app.add_typer(dataset_app, name="dataset")
    app.add_typer(models_app, name="models")
    from core.cli import ml_train

    ml_train.register(app, models_app)
