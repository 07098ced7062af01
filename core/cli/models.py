"""`defectlens models list|promote|export`: the model registry from the shell."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from core.auth import permissions
from core.cli.common import JsonOpt, emit_json, open_database, percent
from core.errors import ValidationError
from core.registry import catalog
from db.queries.catalog import ModelRecord

app = typer.Typer(help="List, promote and export models.", no_args_is_help=True)


def model_summary(m: ModelRecord) -> dict[str, Any]:
    """A model as the --json output shows it."""
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


@app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """List models with their status and validation metrics."""
    _, db = open_database()
    records = catalog.list_models(db, permissions.SYSTEM)
    if as_json:
        emit_json({"models": [model_summary(m) for m in records]})
        return
    for m in records:
        acc_text = percent(m.metrics.get("accuracy"))
        typer.echo(f"{m.id:>4}  {m.status.value:<9} {acc_text:>7}  {m.name}")


@app.command("promote")
def models_promote(model_id: int, as_json: JsonOpt = False) -> None:
    """Make a model the active one (the previous active model is archived)."""
    _, db = open_database()
    record = catalog.promote_model(db, permissions.SYSTEM, model_id)
    if as_json:
        emit_json(model_summary(record))
    else:
        typer.echo(f"model {record.id} is now active")


@app.command("export")
def models_export(
    model_id: int,
    format: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
    out: Annotated[Path | None, typer.Option(help="Output file.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Export a model to ONNX (checked against PyTorch with ONNX Runtime)."""
    if format.lower() != "onnx":
        raise ValidationError(f"format {format!r} is not supported; use onnx")
    # Deferred: artifacts loads torch and onnx, which only this command needs.
    from core.vision import artifacts, onnx_export

    _, db = open_database()
    record = catalog.get_model(db, permissions.SYSTEM, model_id)
    loaded = artifacts.load_model(Path(record.artifact_path))
    target = out or Path(f"defectlens-model-{record.id}.onnx")
    path = onnx_export.export_onnx(loaded, target)
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
