"""Reports for plant managers: the CSV of the filtered inspections (the PDF is pdf_report).

Times are ISO 8601 in plant-local time with their offset. A text cell that a spreadsheet would
run as a formula (starting with =, +, -, @, a tab or a carriage return) gets a leading
apostrophe, so a hostile serial number or file name stays text (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.quality.buckets import plant_zone, shift_of
from core.quality.trends import checked_period, checked_shift
from db.engine import Database
from db.queries import reports as report_queries
from db.queries.trends import TrendFilter

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """A text cell made safe for spreadsheets; numbers and other values unchanged."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _cell(value: Any, tz: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(tz).isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return neutralise(value)


def inspections_csv(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    since: datetime,
    until: datetime,
    where: TrendFilter,
) -> Iterator[str]:
    """The CSV (UTF-8 text, header first) of the inspections in [since, until), in chunks."""
    require(actor, Action.DOWNLOAD_REPORTS)
    checked_period(since, until)
    checked_shift(where, settings)
    tz = plant_zone(settings)
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(report_queries.EXPORT_COLUMNS)
    yield buf.getvalue()
    last = 0
    while True:
        with db.read() as session:
            rows = report_queries.export_page(session, since, until, where, after_id=last)
        if not rows:
            return
        buf = io.StringIO()
        writer = csv.writer(buf)
        for row in rows:
            # captured_at is column 1; a shift is a plant-local wall time, so it is kept here.
            if where.shift is None or shift_of(row[1], tz, settings.shift_starts) == where.shift:
                writer.writerow([_cell(v, tz) for v in row])
        yield buf.getvalue()
        last = int(rows[-1][0])
