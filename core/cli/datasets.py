"""`defectlens dataset import|list`: immutable dataset snapshots from folders and zips."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from core.auth import permissions
from core.cli.common import JsonOpt, emit_json, open_database, progress
from core.datasets import service
from core.registry import catalog
from db.queries.catalog import DatasetRecord

app = typer.Typer(help="Import and list datasets.", no_args_is_help=True)


def dataset_summary(record: DatasetRecord, created: bool | None = None) -> dict[str, Any]:
    """A dataset as the --json output shows it."""
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


@app.command("import")
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
    s, db = open_database()
    with progress("importing", as_json) as on_progress:
        record, snapshot, created = service.import_dataset(
            db,
            s,
            permissions.SYSTEM,
            path,
            name,
            val_fraction=val_fraction,
            seed=seed,
            split_file=split_file,
            on_progress=on_progress,
        )
    if as_json:
        emit_json(dataset_summary(record, created))
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


@app.command("list")
def dataset_list(as_json: JsonOpt = False) -> None:
    """List imported datasets."""
    _, db = open_database()
    records = catalog.list_datasets(db, permissions.SYSTEM)
    if as_json:
        emit_json({"datasets": [dataset_summary(r) for r in records]})
        return
    for r in records:
        typer.echo(
            f"{r.id:>4}  {r.name:<32} {r.num_images:>7} images  {len(r.class_names)} classes"
        )
