"""Helpers every CLI command shares: settings, the database, --json output, progress, errors."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from core import setup
from core.config import Settings, load_settings
from core.errors import ValidationError
from db.engine import Database

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]

# Called with (done, total) as work advances.
ProgressFn = Callable[[int, int], None]


def settings() -> Settings:
    """Settings from the environment, read once per command."""
    return load_settings()


def open_database() -> tuple[Settings, Database]:
    """The settings and a migrated Database: every command that touches data starts here."""
    s = settings()
    setup.migrate(s)
    return s, setup.open_database(s)


def emit_json(payload: dict[str, Any]) -> None:
    """Print exactly one JSON object on stdout."""
    sys.stdout.write(json.dumps(payload, default=str) + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print one line on stderr and return the Exit to raise."""
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(code)


def percent(value: float | None, digits: int = 2) -> str:
    """A share as a percentage, or a dash when there is none."""
    return "–" if value is None else f"{value:.{digits}%}"


@contextmanager
def progress(description: str, quiet: bool) -> Iterator[ProgressFn]:
    """A progress bar with rate and ETA on a terminal; silent with --json or when piped."""
    if quiet or not sys.stderr.isatty():
        yield lambda done, total: None
        return
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


def parse_time(text: str, option: str, tz: ZoneInfo) -> datetime:
    """An ISO-8601 time; one without an offset is plant-local time."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"{option} {text!r} is not an ISO-8601 time (e.g. 2026-11-01 or 2026-11-01T06:00+01:00)"
        ) from None
    return t.replace(tzinfo=tz) if t.tzinfo is None else t
