"""`defectlens rollup`: the hourly rollup that the trend queries read."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from core.cli.common import JsonOpt, emit_json, open_database
from core.errors import ValidationError
from core.quality import rollup as rollup_service


def rollup(
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Recompute every cell from the inspections.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Rebuild the hourly rollup (ingest and review keep it current; this repairs or refills it)."""
    if not rebuild:
        raise ValidationError("say what to do: defectlens rollup --rebuild")
    _s, db = open_database()
    started = time.perf_counter()
    cells = rollup_service.rebuild(db)
    seconds = time.perf_counter() - started
    if as_json:
        emit_json({"cells": cells, "seconds": seconds})
    else:
        typer.echo(f"rollup rebuilt: {cells} cells in {seconds:.1f}s")
