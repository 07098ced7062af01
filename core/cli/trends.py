"""`defectlens trends` (defect rates, control chart, Pareto, KPIs), `report` and `rollup`."""

from __future__ import annotations

import os
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer

from core.auth import permissions
from core.cli.common import JsonOpt, emit_json, open_database
from core.errors import ValidationError
from core.quality import reports
from core.quality import rollup as rollup_service
from core.quality import trends as trend_service


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


def _when(text: str, option: str, tz: ZoneInfo) -> datetime:
    """An ISO-8601 time; one without an offset is plant-local time."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"{option} {text!r} is not an ISO-8601 time (e.g. 2026-11-01 or 2026-11-01T06:00+01:00)"
        ) from None
    return t.replace(tzinfo=tz) if t.tzinfo is None else t


def trends(
    since: Annotated[str, typer.Option(help="Start, ISO-8601 (no offset: plant-local time).")],
    until: Annotated[str, typer.Option(help="End (exclusive), ISO-8601.")],
    by: Annotated[
        str | None, typer.Option(help="hour, shift, day or week (default: chosen from the range).")
    ] = None,
    line: Annotated[str | None, typer.Option(help="Only this line.")] = None,
    station: Annotated[str | None, typer.Option(help="Only this station.")] = None,
    product: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Defect rate over time with its control chart, signals, Pareto and KPIs."""
    s, db = open_database()
    tz = trend_service.plant_zone(s)
    where = trend_service.checked_filter(line, station, product)
    report = trend_service.trend_report(
        db, s, permissions.SYSTEM, _when(since, "--since", tz), _when(until, "--until", tz),
        where, by,
    )  # fmt: skip
    payload = report.to_dict()
    if as_json:
        emit_json(payload)
        return
    k = payload["kpis"]
    rate = "–" if k["defect_rate"] is None else f"{k['defect_rate']:.2%}"
    typer.echo(f"{k['parts']} parts, defect rate {rate}; chart {payload['chart']}")
    for point in payload["series"]:
        flag = f"  signals {point['signals']}" if point["signals"] else ""
        typer.echo(f"  {point['start']}  n={point['n']}  defects={point['defects']}{flag}")


def report(
    since: Annotated[str, typer.Option(help="Start, ISO-8601 (no offset: plant-local time).")],
    until: Annotated[str, typer.Option(help="End (exclusive), ISO-8601.")],
    out: Annotated[Path, typer.Option(help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="csv (pdf is not built yet).")] = "csv",
    line: Annotated[str | None, typer.Option(help="Only this line.")] = None,
    station: Annotated[str | None, typer.Option(help="Only this station.")] = None,
    product: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the filtered inspections as CSV (to a temporary file, then moved into place)."""
    if fmt != "csv":
        raise ValidationError(f"--format {fmt!r}: only csv is built so far (PDF is still to come)")
    s, db = open_database()
    tz = trend_service.plant_zone(s)
    where = trend_service.checked_filter(line, station, product)
    start, end = _when(since, "--since", tz), _when(until, "--until", tz)
    trend_service.checked_period(start, end)  # before the file is opened
    tmp = out.with_name(f".{out.name}.part")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        for chunk in reports.inspections_csv(db, s, permissions.SYSTEM, start, end, where):
            f.write(chunk)
    os.replace(tmp, out)
    if as_json:
        emit_json({"out": str(out), "format": fmt, "bytes": out.stat().st_size})
    else:
        typer.echo(f"wrote {out} ({out.stat().st_size} bytes)")
