"""`defectlens trends` (defect rates, control chart, Pareto, KPIs), `report` and `rollup`."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from core.auth import permissions
from core.cli.common import JsonOpt, emit_json, open_database, parse_time
from core.errors import ValidationError
from core.quality import pdf_report, reports
from core.quality import rollup as rollup_service
from core.quality import trends as trend_service

ModelOpt = Annotated[
    int | None, typer.Option(help="Only parts judged by this model id (0: without a model).")
]
ShiftOpt = Annotated[str | None, typer.Option(help="Only this shift, by its start (06:00).")]


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


def trends(
    since: Annotated[str, typer.Option(help="Start, ISO-8601 (no offset: plant-local time).")],
    until: Annotated[str, typer.Option(help="End (exclusive), ISO-8601.")],
    by: Annotated[
        str | None, typer.Option(help="hour, shift, day or week (default: chosen from the range).")
    ] = None,
    line: Annotated[str | None, typer.Option(help="Only this line.")] = None,
    station: Annotated[str | None, typer.Option(help="Only this station.")] = None,
    product: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    model: ModelOpt = None,
    shift: ShiftOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Defect rate over time with its control chart, signals, Pareto, drift, forecast, KPIs."""
    s, db = open_database()
    tz = trend_service.plant_zone(s)
    where = trend_service.checked_filter(line, station, product, model, shift)
    start, end = parse_time(since, "--since", tz), parse_time(until, "--until", tz)
    report = trend_service.trend_report(db, s, permissions.SYSTEM, start, end, where, by)
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
    fmt: Annotated[
        str, typer.Option("--format", help="csv (the inspections) or pdf (the trend report).")
    ] = "csv",
    by: Annotated[
        str | None, typer.Option(help="PDF buckets: hour, shift, day or week (default: chosen).")
    ] = None,
    line: Annotated[str | None, typer.Option(help="Only this line.")] = None,
    station: Annotated[str | None, typer.Option(help="Only this station.")] = None,
    product: Annotated[str | None, typer.Option(help="Only this product.")] = None,
    model: ModelOpt = None,
    shift: ShiftOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the filtered inspections as CSV, or the trend report as PDF (written to a
    temporary file, then moved into place: a failed report leaves no half file)."""
    if fmt not in ("csv", "pdf"):
        raise ValidationError(f"--format must be csv or pdf, not {fmt!r}")
    s, db = open_database()
    tz = trend_service.plant_zone(s)
    where = trend_service.checked_filter(line, station, product, model, shift)
    start, end = parse_time(since, "--since", tz), parse_time(until, "--until", tz)
    trend_service.checked_period(start, end)  # before the file is opened
    trend_service.checked_shift(where, s)
    tmp = out.with_name(f".{out.name}.part")
    try:
        if fmt == "pdf":
            trend = trend_service.trend_report(db, s, permissions.SYSTEM, start, end, where, by)
            tmp.write_bytes(pdf_report.trend_pdf(db, s, permissions.SYSTEM, trend))
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                for chunk in reports.inspections_csv(db, s, permissions.SYSTEM, start, end, where):
                    f.write(chunk)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    if as_json:
        emit_json({"out": str(out), "format": fmt, "bytes": out.stat().st_size})
    else:
        typer.echo(f"wrote {out} ({out.stat().st_size} bytes)")
