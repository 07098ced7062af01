"""core.quality.trends on a real database: plant-local buckets across daylight-saving changes,
shifts, KPIs against the previous period, the chart and its signals, hostile filters."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.auth import permissions
from core.auth.permissions import CurrentUser
from core.config import Settings
from core.errors import ValidationError
from core.quality import buckets as bucketing
from core.quality import rollup, trends
from db.engine import Database
from db.models import Inspection, Role
from db.queries import rollups
from db.queries.trends import HourCounts, TrendFilter

BERLIN = ZoneInfo("Europe/Berlin")
SHIFTS = ("06:00", "14:00", "22:00")


def _hour(t: datetime, parts: int = 1, defects: int = 0) -> HourCounts:
    return HourCounts(t, None, parts, defects, 0, 0, 0, 0, 0.0)


def _parts(db: Database, rows: list[tuple[datetime, str, bool, str]]) -> None:
    """(captured_at, line, defective?, class) parts, counted in the rollup as ingest does."""
    with db.write() as s:
        objs = [
            Inspection(captured_at=t, line=line, product="pump", predicted_class=cls,
                       confidence=0.95, probabilities={}, is_defect=bad, flagged=bad)
            for t, line, bad, cls in rows
        ]  # fmt: skip
        s.add_all(objs)
        s.flush()
        rollups.apply(s, rollups.cells_of_parts(s, [o.id for o in objs], rollup.FALLBACK))


def test_a_plant_day_has_23_hours_in_spring_and_25_in_autumn() -> None:
    spring = datetime(2026, 3, 28, 23, tzinfo=UTC)  # 00:00 Berlin on 29 March (UTC+1)
    autumn = datetime(2026, 10, 24, 22, tzinfo=UTC)  # 00:00 Berlin on 25 October (UTC+2)
    for start, hours in ((spring, 23), (autumn, 25)):
        rows = [_hour(start + timedelta(hours=h)) for h in range(hours + 1)]  # + next day's 1st
        buckets = bucketing.into_buckets(rows, "day", BERLIN, SHIFTS)
        assert [b.parts for b in buckets] == [hours, 1]
        assert buckets[0].start.hour == 0 and buckets[1].start.hour == 0
        # (aware datetimes in one zone subtract as wall times in Python: compare in UTC)
        assert buckets[1].start.astimezone(UTC) - buckets[0].start.astimezone(UTC) == timedelta(
            hours=hours
        )


def test_shifts_and_weeks_start_at_their_local_wall_times() -> None:
    early = datetime(2026, 11, 3, 4, tzinfo=UTC)  # 05:00 Berlin, Tuesday: still the night shift
    start = bucketing.bucket_start(early, "shift", BERLIN, SHIFTS)
    assert start == datetime(2026, 11, 2, 22, tzinfo=BERLIN)
    assert bucketing.bucket_start(early + timedelta(hours=1), "shift", BERLIN, SHIFTS) == datetime(
        2026, 11, 3, 6, tzinfo=BERLIN
    )
    week = bucketing.bucket_start(early, "week", BERLIN, SHIFTS)
    assert week == datetime(2026, 11, 2, 0, tzinfo=BERLIN) and week.weekday() == 0
    with pytest.raises(ValidationError, match="bucket must be one of"):
        bucketing.bucket_start(early, "fortnight", BERLIN, SHIFTS)


def test_default_bucket_follows_the_range() -> None:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    got = [bucketing.default_bucket(t, t + timedelta(days=d)) for d in (1, 7, 30, 365)]
    assert got == ["hour", "shift", "day", "week"]


def test_report_counts_kpis_against_the_previous_period_and_flags_a_spike(
    db: Database, settings: Settings
) -> None:
    s = dataclasses.replace(settings, timezone="Europe/Berlin")
    day0 = datetime(2026, 11, 1, tzinfo=BERLIN)
    rows = []
    for d in range(-20, 20):  # 20 days before the period (the previous period), 20 in it
        for i in range(100):
            t = (day0 + timedelta(days=d, hours=8, minutes=i % 60)).astimezone(UTC)
            bad = i < (40 if d == 15 else 5)  # 5 % every day, 40 % on day 15
            rows.append((t, "L1" if i % 2 else "L2", bad, "pit" if bad and i % 3 else
                         ("scratch" if bad else "ok")))  # fmt: skip
    _parts(db, rows)
    report = trends.trend_report(db, s, permissions.SYSTEM, day0, day0 + timedelta(days=20),
                                 TrendFilter(), "day")  # fmt: skip
    out = report.to_dict()
    assert [p["n"] for p in out["series"]] == [100] * 20
    assert out["kpis"]["parts"] == 2000 and out["previous_kpis"]["parts"] == 2000
    assert out["kpis"]["defect_rate"] == pytest.approx((19 * 5 + 40) / 2000)
    assert out["previous_kpis"]["defect_rate"] == pytest.approx(0.05)
    assert out["series"][15]["signals"] == [1] and out["series"][15]["rate"] == 0.4
    assert all(1 not in p["signals"] for i, p in enumerate(out["series"]) if i != 15)
    # The spike is in the baseline (the displayed period), so it lifts p-bar above the routine
    # days: eight of them in a row below the centre line is rule 4, as Minitab would show it.
    assert out["series"][14]["signals"] == [4]
    # ... and it makes the buckets overdispersed, so the page uses Laney p' and says why.
    assert out["chart"] == "laney_p" and "σ_z" in out["chart_reason"]
    assert out["sigma_z"] == pytest.approx(1.3018, abs=1e-3)
    assert [r["class"] for r in out["pareto"]] == ["pit", "scratch"]
    assert out["pareto"][-1]["cumulative_share"] == pytest.approx(1.0)
    assert out["series"][0]["start"] == "2026-11-01T00:00:00+01:00"  # plant-local midnight
    one_line = trends.trend_report(db, s, permissions.SYSTEM, day0, day0 + timedelta(days=20),
                                   TrendFilter(line="L1"), "day")  # fmt: skip
    assert one_line.kpis["parts"] == 1000


@pytest.mark.parametrize("hostile", ["L1' OR '1'='1", "L1; DROP TABLE rollups; --", '"', "ñ"])
def test_hostile_filter_values_are_bound_and_match_nothing(
    db: Database, settings: Settings, hostile: str
) -> None:
    t = datetime(2026, 11, 1, 8, tzinfo=UTC)
    _parts(db, [(t, "L1", True, "pit")])
    where = trends.checked_filter(hostile, None, None)
    report = trends.trend_report(db, settings, permissions.SYSTEM, t, t + timedelta(days=1), where)
    assert report.kpis["parts"] == 0 and report.chart is None and report.to_dict()["series"] == []
    full = trends.trend_report(db, settings, permissions.SYSTEM, t, t + timedelta(days=1),
                               TrendFilter())  # fmt: skip
    assert full.kpis["parts"] == 1  # the table is still there


def test_bad_requests_are_refused_in_words(db: Database, settings: Settings) -> None:
    t = datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(ValidationError, match="at most 100 characters"):
        trends.checked_filter("x" * 101, None, None)
    with pytest.raises(ValidationError, match="must be after since"):
        trends.trend_report(db, settings, permissions.SYSTEM, t, t, TrendFilter())
    with pytest.raises(ValidationError, match="time zone offset"):
        trends.trend_report(db, settings, permissions.SYSTEM, t.replace(tzinfo=None), t,
                            TrendFilter())  # fmt: skip
    bad_zone = dataclasses.replace(settings, timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="DEFECTLENS_TIMEZONE"):
        trends.trend_report(db, bad_zone, permissions.SYSTEM, t, t + timedelta(days=1),
                            TrendFilter())  # fmt: skip
    nobody = CurrentUser(id=None, username="x", role=Role.VIEWER)
    assert trends.trend_report(db, settings, nobody, t, t + timedelta(days=1), TrendFilter())
    # viewers, the lowest role, may read trends
