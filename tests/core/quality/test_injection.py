"""SQL, CSV, Markdown and HTML injection through the fields a camera or an operator types
(issue 12): hostile line, station, product, lot, serial and file names go in through the real
ingest path, come back byte for byte, filter exactly, never change the schema, and leave the
CSV export as text. (Pages escape the same strings: tests/pages/test_hostile_names.py.)"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, inspect, select

from core.auth import permissions
from core.quality import ingest, inspections, reports
from db.models import Inspection
from db.queries.trends import TrendFilter
from tests.core.inspection_support import png, register_active_model

HOSTILE = [
    "'; DROP TABLE inspections; --",
    '" OR 1=1 --',
    "L1' OR '1'='1",
    "%",  # a LIKE wildcard
    "_",
    '=HYPERLINK("http://x.example","open")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    "\tleading tab",
    "![](https://x.example/t.gif)[Session expired, sign in](https://x.example/login)",
    "<img src=x onerror=alert(1)>",
    "</script><script>alert(1)</script>",
    "line\u202eexe.png",  # right-to-left override
    "Ünïcödé 線 🏭",
]


@pytest.fixture
def stored(db, settings):  # type: ignore[no-untyped-def]
    register_active_model(db, settings)
    at = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    ids = {}
    for n, text in enumerate(HOSTILE):
        trace = ingest.Traceability(line=text, station=text, product=text, lot=text, serial=text,
                                    captured_at=at + timedelta(minutes=n))  # fmt: skip
        got = ingest.ingest_many(db, settings, permissions.SYSTEM, [(text, png(500 + n))], trace,
                                 with_heatmaps=False)  # fmt: skip
        assert not got.rejected, got.rejected
        ids[text] = got.processed_ids[0]
    return ids, at


def test_hostile_fields_round_trip_and_leave_the_schema_alone(db, settings, stored) -> None:
    ids, _at = stored
    before = set(inspect(db.engine).get_table_names())
    for text, inspection_id in ids.items():
        rec = inspections.get_inspection(db, permissions.SYSTEM, inspection_id)
        assert (rec.line, rec.station, rec.product, rec.lot, rec.serial) == (text.strip(),) * 5
    with db.read() as s:
        assert s.scalar(select(func.count(Inspection.id))) == len(HOSTILE)
    assert set(inspect(db.engine).get_table_names()) == before


def test_a_filter_on_a_hostile_value_matches_that_part_only(db, settings, stored) -> None:
    ids, at = stored
    for text, inspection_id in ids.items():
        value = text.strip()  # ingest trims the fields (a camera's trailing newline)
        rows = list(csv.DictReader(io.StringIO("".join(reports.inspections_csv(
            db, settings, permissions.SYSTEM, at, at + timedelta(hours=1), TrendFilter(line=value)
        )))))  # fmt: skip
        assert [int(r["id"]) for r in rows] == [inspection_id], text
        # Formula starts are neutralised with a leading apostrophe; the rest is as typed.
        expected = "'" + value if value.startswith(("=", "+", "-", "@")) else value
        assert rows[0]["line"] == rows[0]["serial"] == expected
