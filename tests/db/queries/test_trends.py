"""Trend aggregations over the rollup on SQLite and PostgreSQL (marked): the same sums, filters
bound as parameters, hours and classes grouped in SQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from db.engine import Database
from db.queries import rollups, trends
from db.queries.rollups import CellCounts, CellKey
from db.queries.trends import TrendFilter

H0 = datetime(2026, 11, 1, 6, tzinfo=UTC)


def _cell(hour: int, line: str, cls: str, defect: bool, parts: int, **kw: bool) -> tuple:
    key = CellKey(H0 + timedelta(hours=hour), line, "", "pump", 1, cls, kw.get("flagged", defect),
                  defect, kw.get("reviewed", False))  # fmt: skip
    return key, CellCounts(parts=parts, corrections=int(kw.get("reviewed", False)), unsure=1,
                           confidence_sum=0.9 * parts)  # fmt: skip


def test_hourly_sums_and_classes_group_in_sql(database: Database) -> None:
    cells = dict(
        [
            _cell(0, "L1", "ok", False, 90),
            _cell(0, "L1", "pit", True, 6),
            _cell(0, "L2", "pit", True, 4, reviewed=True),
            _cell(1, "L1", "ok", False, 50),
            _cell(1, "L2", "scratch", True, 2),
            _cell(5, "L2", "ok", False, 10),
        ]
    )
    with database.write() as s:
        rollups.apply(s, cells)
    with database.read() as s:
        hours = trends.hourly(s, H0, H0 + timedelta(hours=5), TrendFilter())
        by_line = trends.hourly(s, H0, H0 + timedelta(hours=2), TrendFilter(), by_line=True)
        l2 = trends.hourly(s, H0, H0 + timedelta(days=1), TrendFilter(line="L2"))
        classes = trends.hourly_classes(s, H0, H0 + timedelta(days=1), TrendFilter())
        hostile = trends.hourly(s, H0, H0 + timedelta(days=1), TrendFilter(line="' OR 1=1 --"))
    assert [(h.hour, h.parts, h.defects, h.reviewed, h.corrections) for h in hours] == [
        (H0, 100, 10, 4, 1),
        (H0 + timedelta(hours=1), 52, 2, 0, 0),
    ]  # hour 5 is outside [since, until)
    assert [(h.line, h.parts) for h in by_line] == [("L1", 96), ("L2", 4), ("L1", 50), ("L2", 2)]
    assert [h.parts for h in l2] == [4, 2, 10]
    assert classes == [(H0, "pit", 10), (H0 + timedelta(hours=1), "scratch", 2)]
    assert hostile == []
    assert abs(hours[0].confidence_sum - 90.0) < 1e-9
