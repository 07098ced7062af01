"""Frozen SPC baselines and annotations through core: limits computed from the chosen window
minus the excluded points, used for the view until replaced or withdrawn (never moving when new
data arrive), audited, refused in words when they cannot mean anything; annotations and model
promotions appear among the report's events."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.auth import permissions
from core.config import Settings
from core.errors import NotFound, PermissionDenied, ValidationError
from core.quality import baselines, timeline, trends
from db.engine import Database
from db.models import AuditEntry, Role
from db.queries.trends import TrendFilter
from tests.core.quality.test_trends import _parts

BERLIN = ZoneInfo("Europe/Berlin")
DAY0 = datetime(2026, 10, 1, tzinfo=BERLIN)


def _days(db: Database, first: int, last: int, bad: dict[int, int] | None = None) -> None:
    """100 parts a day on L1 from day `first` to `last` (exclusive), 5 defective (or bad[d])."""
    rows = []
    for d in range(first, last):
        for i in range(100):
            t = (DAY0 + timedelta(days=d, hours=8, minutes=i % 60)).astimezone(UTC)
            defective = i < (bad or {}).get(d, 5)
            rows.append((t, "L1", defective, "pit" if defective else "ok"))
    _parts(db, rows)


@pytest.fixture
def berlin(settings: Settings) -> Settings:
    return dataclasses.replace(settings, timezone="Europe/Berlin")


def test_frozen_limits_leave_out_a_point_and_hold_when_new_data_arrive(
    db: Database, berlin: Settings, make_user
) -> None:  # type: ignore[no-untyped-def]
    engineer, _ = make_user("erin", Role.ENGINEER)
    _days(db, 0, 20, bad={7: 45})  # a known special cause on day 7
    window = (DAY0, DAY0 + timedelta(days=20))
    day7 = DAY0 + timedelta(days=7)
    frozen = baselines.freeze_baseline(db, berlin, engineer, TrendFilter(), "day", window,
                                       {day7: "die change, scrapped lot"}, "phase I")  # fmt: skip
    assert frozen.chart == "p" and frozen.centre == pytest.approx(0.05)  # day 7 left out
    assert frozen.buckets == 19 and frozen.parts == 1900 and frozen.defects == 95
    assert frozen.excluded == [{"start": day7.astimezone(UTC).isoformat(),
                                "reason": "die change, scrapped lot"}]  # fmt: skip

    _days(db, 20, 30, bad={d: 12 for d in range(20, 30)})  # the process gets worse
    report = trends.trend_report(db, berlin, engineer, DAY0, DAY0 + timedelta(days=30),
                                 TrendFilter(), "day")  # fmt: skip
    assert report.baseline is not None and report.baseline.id == frozen.id
    assert report.chart is not None and report.chart.centre == pytest.approx(0.05)
    assert "frozen by erin" in report.choice.reason  # type: ignore[union-attr]
    assert [p.in_baseline for p in report.chart.points].count(True) == 19
    assert not report.chart.points[7].in_baseline and not report.chart.points[25].in_baseline
    assert all(1 in report.signals[d] for d in range(20, 30))  # 12 % against frozen 5 %
    # Without the frozen limits the worse days would have lifted the centre line.
    other_view = trends.trend_report(db, berlin, engineer, DAY0, DAY0 + timedelta(days=30),
                                     TrendFilter(line="L1"), "day")  # fmt: skip
    assert other_view.baseline is None and other_view.chart.centre > 0.07  # type: ignore[union-attr]

    again = baselines.freeze_baseline(db, berlin, engineer, TrendFilter(), "day",
                                      (DAY0, DAY0 + timedelta(days=30)))  # fmt: skip
    history = baselines.baseline_history(db, engineer, TrendFilter(), "day")
    assert [b.id for b in history] == [again.id, frozen.id]
    assert history[1].retired_at is not None and history[1].retired_by == "erin"
    baselines.withdraw_baseline(db, engineer, again.id, "process redesigned")
    with pytest.raises(NotFound):
        baselines.withdraw_baseline(db, engineer, again.id, "twice")
    after = trends.trend_report(db, berlin, engineer, DAY0, DAY0 + timedelta(days=30),
                                TrendFilter(), "day")  # fmt: skip
    assert after.baseline is None
    with db.read() as s:
        actions = [a.action for a in s.query(AuditEntry).order_by(AuditEntry.id)]
    assert actions.count("spc_baseline_frozen") == 2 and "spc_baseline_withdrawn" in actions


def test_baselines_are_refused_in_words(db: Database, berlin: Settings, make_user) -> None:  # type: ignore[no-untyped-def]
    engineer, _ = make_user("erin", Role.ENGINEER)
    viewer, _ = make_user("vic", Role.VIEWER)
    _days(db, 0, 8)
    window = (DAY0, DAY0 + timedelta(days=8))
    with pytest.raises(ValidationError, match="at least 10 day buckets"):
        baselines.freeze_baseline(db, berlin, engineer, TrendFilter(), "day", window)
    _days(db, 8, 12)
    window = (DAY0, DAY0 + timedelta(days=12))
    with pytest.raises(ValidationError, match="say why"):
        baselines.freeze_baseline(db, berlin, engineer, TrendFilter(), "day", window,
                                  {DAY0: "  "})  # fmt: skip
    with pytest.raises(ValidationError, match="no day with parts starts then"):
        baselines.freeze_baseline(db, berlin, engineer, TrendFilter(), "day", window,
                                  {DAY0 + timedelta(hours=3): "odd"})  # fmt: skip
    with pytest.raises(ValidationError, match="shift must be the start of a shift"):
        baselines.freeze_baseline(db, berlin, engineer, TrendFilter(shift="07:00"), "day", window)
    with pytest.raises(PermissionDenied):
        baselines.freeze_baseline(db, berlin, viewer, TrendFilter(), "day", window)
    with pytest.raises(ValidationError, match="say why"):
        baselines.withdraw_baseline(db, engineer, 1, "")


def test_a_shift_filter_keeps_only_that_shifts_hours(db: Database, berlin: Settings) -> None:
    rows = []
    for d in range(3):
        for hour, bad in ((8, True), (15, False), (23, False)):  # early, late and night shift
            t = (DAY0 + timedelta(days=d, hours=hour)).astimezone(UTC)
            rows.append((t, "L1", bad, "pit" if bad else "ok"))
    _parts(db, rows)
    period = (DAY0, DAY0 + timedelta(days=3))
    early = trends.trend_report(db, berlin, permissions.SYSTEM, *period,
                                TrendFilter(shift="06:00"), "day")  # fmt: skip
    late = trends.trend_report(db, berlin, permissions.SYSTEM, *period,
                               TrendFilter(shift="14:00"), "day")  # fmt: skip
    assert early.kpis["parts"] == 3 and early.kpis["defect_rate"] == 1.0
    assert early.mix == {"pit": [1, 1, 1]} and [r.name for r in early.pareto.rows] == ["pit"]
    assert late.kpis["parts"] == 3 and late.kpis["defect_rate"] == 0.0 and late.mix == {}


def test_annotations_are_audited_and_appear_among_the_events(
    db: Database, berlin: Settings, make_user
) -> None:  # type: ignore[no-untyped-def]
    engineer, _ = make_user("erin", Role.ENGINEER)
    viewer, _ = make_user("vic", Role.VIEWER)
    _days(db, 0, 3)
    at = DAY0 + timedelta(days=1, hours=10)
    note = timeline.add_annotation(db, engineer, at, "  new supplier lot  ", line="L1")
    timeline.add_annotation(db, engineer, at + timedelta(hours=1), "line 2 only", line="L2")
    assert note.text == "new supplier lot" and note.created_by == "erin"
    report = trends.trend_report(db, berlin, viewer, DAY0, DAY0 + timedelta(days=3),
                                 TrendFilter(line="L1"), "day")  # fmt: skip
    assert [(e.kind, e.label) for e in report.events] == [("annotation", "new supplier lot")]
    assert report.to_dict()["events"][0]["at"] == at.astimezone(UTC).isoformat()
    with pytest.raises(PermissionDenied):
        timeline.add_annotation(db, viewer, at, "viewers only read")
    with pytest.raises(ValidationError, match="in the future"):
        timeline.add_annotation(db, engineer, datetime.now(UTC) + timedelta(days=1), "soon")
    with pytest.raises(ValidationError, match="needs a text"):
        timeline.add_annotation(db, engineer, at, "   ")
    timeline.delete_annotation(db, engineer, note.id)
    with pytest.raises(NotFound):
        timeline.delete_annotation(db, engineer, note.id)
    with db.read() as s:
        actions = [a.action for a in s.query(AuditEntry)]
    assert actions.count("annotation_added") == 2 and "annotation_deleted" in actions
