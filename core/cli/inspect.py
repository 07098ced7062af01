"""`defectlens ingest`: inspect image files, folders and zips, or watch a camera folder."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

import typer

from core.auth import permissions
from core.cli.common import JsonOpt, emit_json, fail, open_database, parse_time, progress
from core.config import Settings
from core.errors import InvalidImageError, ValidationError
from core.quality import ingest, inspections, trends, uploads
from core.quality.watch import FolderWatcher
from core.vision.images import DecodeLimits, read_file_limited
from db.engine import Database
from db.queries.catalog import ModelRecord

if TYPE_CHECKING:
    from core.vision.classifier import Classifier

# A backfill's capture time may run this far ahead of our clock (camera and server clocks drift).
FUTURE_TOLERANCE = timedelta(minutes=5)


def _walk(root: Path) -> Iterator[Path]:
    """Files under a folder, sorted, hidden ones and links skipped."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _sources(paths: list[Path]) -> Iterator[Path | uploads.Rejection]:
    for path in paths:
        if path.is_dir():
            yield from _walk(path)
        elif path.is_file():
            yield path
        else:
            yield uploads.Rejection(str(path), "not found")


def checked_capture_time(text: str, tz: ZoneInfo, now: datetime) -> datetime:
    """--captured-at as aware UTC: ISO-8601, plant-local without an offset, not in the future."""
    t = parse_time(text, "--captured-at", tz)
    # A wall time that a daylight-saving change repeats or skips names no single instant.
    if t.tzinfo is tz and t.utcoffset() != t.replace(fold=1).utcoffset():
        raise ValidationError(
            f"--captured-at {text!r} is ambiguous or does not exist in {tz.key} (a daylight-"
            f"saving change); add its UTC offset: {t:%Y-%m-%dT%H:%M}+HH:MM"
        )
    if t - now > FUTURE_TOLERANCE:
        raise ValidationError(
            f"--captured-at {text!r} is in the future ({t.astimezone(UTC):%Y-%m-%d %H:%M} UTC, "
            f"now {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC)"
        )
    return t.astimezone(UTC)


def _is_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) in uploads.ZIP_MAGIC
    except OSError:
        return False


@dataclass
class _Batch:
    """One ingest run over many files: what to inspect them with, and the totals."""

    db: Database
    settings: Settings
    trace: ingest.Traceability
    active: tuple[ModelRecord, Classifier]
    with_heatmaps: bool
    summary: ingest.IngestSummary | None = None

    @property
    def processed(self) -> int:
        return len(self.summary.processed_ids) if self.summary else 0

    @property
    def flagged(self) -> int:
        return self.summary.flagged if self.summary else 0

    @property
    def heatmaps(self) -> int:
        return self.summary.heatmaps if self.summary else 0

    @property
    def rejected(self) -> list[uploads.Rejection]:
        return self.summary.rejected if self.summary else []


def _read(
    path: Path, limits: DecodeLimits, settings: Settings
) -> Iterator[tuple[str, bytes] | uploads.Rejection]:
    """One file's images: a zip's entries one at a time (read from the open archive, never
    copied into memory), or the file itself; an unreadable file becomes a rejection."""
    shown = str(path)
    if _is_zip(path):
        try:
            with open(path, "rb") as f:
                yield from uploads.iter_upload(shown, f, settings, browser=False)
        except OSError as e:
            yield uploads.Rejection(shown, f"cannot read ({e.strerror})")
        return
    try:
        yield (shown, read_file_limited(path, limits, name=shown))
    except InvalidImageError as e:
        yield uploads.Rejection.from_error(shown, e)


def _ingest_all(batch: _Batch, sources: list[Path | uploads.Rejection], quiet: bool) -> None:
    """Read and inspect every source, ingest.GROUP_SIZE images at a time (ingest_many)."""
    limits = DecodeLimits.from_settings(batch.settings)
    done = [0]

    def items() -> Iterator[tuple[str, bytes] | uploads.Rejection]:
        for item in sources:
            if isinstance(item, uploads.Rejection):
                yield item
            else:
                yield from _read(item, limits, batch.settings)
            done[0] += 1

    with progress("inspecting", quiet) as on_progress:
        batch.summary = ingest.ingest_many(
            batch.db,
            batch.settings,
            permissions.SYSTEM,
            items(),
            batch.trace,
            classifier=batch.active,
            with_heatmaps=batch.with_heatmaps,
            on_group=lambda _summary: on_progress(done[0], len(sources)),
        )
        on_progress(len(sources), len(sources))


def _report(batch: _Batch, seconds: float, load_seconds: float, as_json: bool) -> None:
    payload: dict[str, Any] = {
        "processed": batch.processed,
        "rejected": [{"file": r.file, "reason": r.reason} for r in batch.rejected],
        "flagged": batch.flagged,
        "heatmaps": batch.heatmaps,
        "images_per_second": round(batch.processed / seconds, 2) if seconds > 0 else 0.0,
        "seconds": round(seconds, 3),
        "model_load_seconds": round(load_seconds, 3),
        "model_id": batch.active[0].id,
    }
    if as_json:
        emit_json(payload)
        return
    typer.echo(
        f"processed {batch.processed}, flagged {batch.flagged}, rejected {len(batch.rejected)} "
        f"({payload['images_per_second']:.0f} images/s)"
    )
    for r in batch.rejected:
        typer.echo(f"  rejected {r.file}: {r.reason}")


def ingest_cmd(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Image files, folders (recursive), zips.")
    ] = None,
    line: Annotated[str | None, typer.Option(help="Production line.")] = None,
    station: Annotated[str | None, typer.Option(help="Station on the line.")] = None,
    product: Annotated[str | None, typer.Option(help="Product (picks its rule).")] = None,
    lot: Annotated[str | None, typer.Option(help="Lot or batch.")] = None,
    serial: Annotated[str | None, typer.Option(help="Part serial number.")] = None,
    captured: Annotated[
        str | None,
        typer.Option(
            "--captured-at",
            help="Capture time of every image, ISO-8601, for backfills (no offset: plant-local "
            "time in DEFECTLENS_TIMEZONE); stored in UTC. Default: now. Not with --watch.",
        ),
    ] = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Watch one folder for new files until Ctrl-C.")
    ] = False,
    poll_seconds: Annotated[float, typer.Option(help="With --watch: seconds between polls.")] = 1.0,
    no_heatmaps: Annotated[
        bool,
        typer.Option("--no-heatmaps", help="Skip Grad-CAM now; fill in later with --backfill."),
    ] = False,
    backfill: Annotated[
        bool,
        typer.Option("--backfill", help="Only compute missing heatmaps of flagged parts."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Inspect images with the active model and record them; prints processed, rejected,
    flagged and images_per_second. Exit code 0 when at least one image was processed."""
    if poll_seconds <= 0:
        raise ValidationError("--poll-seconds must be positive")
    paths = paths or []
    if not paths and not backfill:
        raise ValidationError("give at least one file, folder or zip (or --backfill)")
    if captured is not None and (watch or backfill):
        # A watched folder's files are captured as they arrive; --backfill records no parts.
        raise ValidationError("--captured-at goes with files to ingest, not --watch or --backfill")
    s, db = open_database()
    now, tz = datetime.now(UTC), trends.plant_zone(s)
    when = None if captured is None else checked_capture_time(captured, tz, now)
    trace = ingest.Traceability(
        line=line, station=station, product=product, lot=lot, serial=serial, captured_at=when
    )
    load_started = time.perf_counter()
    active = ingest.load_active(db, s)
    load_seconds = time.perf_counter() - load_started

    if backfill:
        made = inspections.backfill_heatmaps(db, s, classifier=active, limit=10**9)
        if as_json:
            emit_json({"heatmaps": made})
        else:
            typer.echo(f"computed {made} heatmaps")
        return
    if watch:
        _watch(paths, db, s, trace, active, not no_heatmaps, poll_seconds, as_json)
        return

    batch = _Batch(db, s, trace, active, with_heatmaps=not no_heatmaps)
    started = time.perf_counter()
    sources = list(_sources(paths))
    _ingest_all(batch, sources, as_json)
    seconds = time.perf_counter() - started
    if not sources:
        raise fail("no files found in " + ", ".join(str(p) for p in paths))
    _report(batch, seconds, load_seconds, as_json)
    if batch.processed == 0:
        raise typer.Exit(1)


def _watch(
    paths: list[Path],
    db: Database,
    s: Settings,
    trace: ingest.Traceability,
    active: tuple[ModelRecord, Classifier],
    with_heatmaps: bool,
    poll_seconds: float,
    as_json: bool,
) -> None:
    if len(paths) != 1 or not paths[0].is_dir():
        raise ValidationError("--watch takes exactly one folder")
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def report(result: ingest.IngestResult) -> None:
        if as_json:
            return
        for rec in result.processed:
            flag = f"  FLAGGED ({rec.flag_reason})" if rec.flagged else ""
            typer.echo(f"{rec.source_name}: {rec.predicted_class} {rec.confidence:.0%}{flag}")
        for rej in result.rejected:
            typer.echo(f"{rej.file}: rejected: {rej.reason}")

    watcher = FolderWatcher(
        db,
        s,
        permissions.SYSTEM,
        paths[0],
        trace,
        with_heatmaps=with_heatmaps,
        classifier=active,
        on_result=report,
    )
    if not as_json:
        sys.stderr.write(f"watching {watcher.folder} every {poll_seconds:g}s (Ctrl-C to stop)\n")
    summary = watcher.run(lambda: stopping, poll_seconds)
    if as_json:
        emit_json(
            {
                "processed": summary.processed,
                "rejected": [{"file": r.file, "reason": r.reason} for r in summary.rejections],
                "flagged": summary.flagged,
                "recovered": summary.recovered,
            }
        )
    else:
        typer.echo(
            f"stopped: processed {summary.processed}, flagged {summary.flagged}, "
            f"rejected {summary.rejected}"
        )
