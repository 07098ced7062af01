"""`defectlens ingest`: inspect image files, folders and zips, or watch a camera folder."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from core.cli.common import emit_json, fail
from core.cli.ml import JsonOpt, _open, _progress

if TYPE_CHECKING:
    from core.quality.ingest import Rejection

# Files read and inspected together: bounds memory, while chunks inside stay full-size.
READ_GROUP = 256
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def _walk(root: Path) -> Iterator[Path]:
    """Files under a folder, sorted, hidden ones and links skipped."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield Path(dirpath) / name


def _sources(paths: list[Path]) -> Iterator[Path | Rejection]:
    from core.quality.ingest import Rejection

    for path in paths:
        if path.is_dir():
            yield from _walk(path)
        elif path.is_file():
            yield path
        else:
            yield Rejection(str(path), "not found")


def _is_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) in _ZIP_MAGIC
    except OSError:
        return False


def ingest_cmd(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Image files, folders (recursive), zips.")
    ] = None,
    line: Annotated[str | None, typer.Option(help="Production line.")] = None,
    station: Annotated[str | None, typer.Option(help="Station on the line.")] = None,
    product: Annotated[str | None, typer.Option(help="Product (picks its rule).")] = None,
    lot: Annotated[str | None, typer.Option(help="Lot or batch.")] = None,
    serial: Annotated[str | None, typer.Option(help="Part serial number.")] = None,
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
    from core.auth import permissions
    from core.errors import InvalidImageError, ValidationError
    from core.quality import ingest
    from core.vision.images import DecodeLimits, read_file_limited

    if poll_seconds <= 0:
        raise ValidationError("--poll-seconds must be positive")
    paths = paths or []
    if not paths and not backfill:
        raise ValidationError("give at least one file, folder or zip (or --backfill)")
    s, db = _open()
    trace = ingest.Traceability(line=line, station=station, product=product, lot=lot, serial=serial)
    load_started = time.perf_counter()
    active = ingest.load_active(db, s)
    load_seconds = time.perf_counter() - load_started

    if backfill:
        made = ingest.backfill_heatmaps(db, s, classifier=active, limit=10**9)
        if as_json:
            emit_json({"heatmaps": made})
        else:
            typer.echo(f"computed {made} heatmaps")
        return
    if watch:
        _watch(paths, db, s, trace, active, not no_heatmaps, poll_seconds, as_json)
        return

    limits = DecodeLimits.from_settings(s)
    processed = flagged = heatmaps = 0
    rejected: list[ingest.Rejection] = []
    started = time.perf_counter()
    group: list[tuple[str, bytes]] = []

    def flush() -> None:
        nonlocal processed, flagged, heatmaps
        if not group:
            return
        result = ingest.ingest(
            db,
            s,
            permissions.SYSTEM,
            group,
            trace,
            classifier=active,
            with_heatmaps=not no_heatmaps,
        )
        processed += len(result.processed)
        flagged += result.flagged
        heatmaps += result.heatmaps
        rejected.extend(result.rejected)
        group.clear()

    sources = list(_sources(paths))
    with _progress("inspecting", as_json) as progress:
        for done, item in enumerate(sources, start=1):
            if isinstance(item, ingest.Rejection):
                rejected.append(item)
                continue
            shown = str(item)
            if _is_zip(item):
                try:
                    data = item.read_bytes()
                except OSError as e:
                    rejected.append(ingest.Rejection(shown, f"cannot read ({e.strerror})"))
                    continue
                files, bad = ingest.expand_upload(shown, data, s)
                rejected.extend(bad)
                group.extend(files)
            else:
                try:
                    group.append((shown, read_file_limited(item, limits, name=shown)))
                except InvalidImageError as e:
                    rejected.append(ingest.Rejection(shown, str(e).removeprefix(f"{shown}: ")))
            if len(group) >= READ_GROUP:
                flush()
                progress(done, len(sources))
        flush()
        progress(len(sources), len(sources))
    seconds = time.perf_counter() - started
    if not sources:
        raise fail("no files found in " + ", ".join(str(p) for p in paths))
    payload: dict[str, Any] = {
        "processed": processed,
        "rejected": [{"file": r.file, "reason": r.reason} for r in rejected],
        "flagged": flagged,
        "heatmaps": heatmaps,
        "images_per_second": round(processed / seconds, 2) if seconds > 0 else 0.0,
        "seconds": round(seconds, 3),
        "model_load_seconds": round(load_seconds, 3),
        "model_id": active[0].id,
    }
    if as_json:
        emit_json(payload)
    else:
        typer.echo(
            f"processed {processed}, flagged {flagged}, rejected {len(rejected)} "
            f"({payload['images_per_second']:.0f} images/s)"
        )
        for r in rejected:
            typer.echo(f"  rejected {r.file}: {r.reason}")
    if processed == 0:
        raise typer.Exit(1)


def _watch(
    paths: list[Path],
    db: Any,
    s: Any,
    trace: Any,
    active: Any,
    with_heatmaps: bool,
    poll_seconds: float,
    as_json: bool,
) -> None:
    from core.auth import permissions
    from core.errors import ValidationError
    from core.quality.watch import FolderWatcher

    if len(paths) != 1 or not paths[0].is_dir():
        raise ValidationError("--watch takes exactly one folder")
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def report(result: Any) -> None:
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


def register(app: typer.Typer) -> None:
    """Attach `ingest` to the main app."""
    app.command("ingest")(ingest_cmd)
