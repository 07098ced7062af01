"""core.quality.overview on SQLite and PostgreSQL (marked): per line today against the 30
plant-local days before it, in the plant's zone across a daylight-saving change; the review
backlog is the review queue per line; a spike in the current shift is an open SPC signal, a
steady line has none; the headline numbers."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.auth import accounts, permissions
from core.auth.permissions import CurrentUser
from core.config import Settings
from core.quality import overview, review, rollup
from db import migrate
from db.engine import Database
from db.models import Inspection, Role
from db.queries import rollups
from tests.db.conftest import blank_url, fresh_pg_url, fresh_sqlite_url  # noqa: F401 - fixtures

AUCKLAND = ZoneInfo("Pacific/Auckland")  # UTC+12, UTC+13 from 27 September 2026
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def database(blank_url: str) -> Iterator[Database]:  # noqa: F811
    """A migrated database on SQLite, and on PostgreSQL when the postgres mark runs."""
    migrate.upgrade(blank_url)
    database = Database(blank_url)
    yield database
    database.dispose()


def _parts(database: Database, line: str | None, at: datetime, n: int, bad: int = 0,
           flagged: int = 0) -> list[int]:  # fmt: skip
    """n parts captured at ``at``, the first ``bad`` defective, the first ``flagged`` flagged;
    counted in the rollup in the same transaction, with the statements ingest uses."""
    with database.write() as s:
        rows = [
            Inspection(captured_at=at, line=line, product="pump",
                       predicted_class="pit" if i < bad else "ok", confidence=0.95,
                       probabilities={"ok": 0.5, "pit": 0.5}, is_defect=i < bad,
                       flagged=i < flagged)
            for i in range(n)
        ]  # fmt: skip
        s.add_all(rows)
        s.flush()
        rollups.apply(s, rollups.cells_of_parts(s, [r.id for r in rows], rollup.FALLBACK))
        return [r.id for r in rows]


def _numbers(lo: overview.LineOverview) -> dict[str, tuple[int, int, int, int, int]]:
    return {
        s.line: (s.today_parts, s.today_defects, s.history_parts, s.history_defects, s.backlog)
        for s in lo.lines
    }


def test_today_and_the_30_days_before_are_plant_local_days(
    database: Database, settings: Settings
) -> None:
    now = datetime(2026, 10, 10, 7, 30, tzinfo=UTC)  # 20:30 on 10 October in Auckland (+13)
    _parts(database, "L1", datetime(2026, 10, 9, 11, 30, tzinfo=UTC), 4, bad=1)  # today there
    _parts(database, "L1", datetime(2026, 10, 10, 7, 10, tzinfo=UTC), 6, bad=2)
    _parts(database, "L1", datetime(2026, 10, 9, 10, 30, tzinfo=UTC), 5, bad=1)  # yesterday
    # 00:30 on 10 September (+12, before the change): the first hour of the 30 days ...
    _parts(database, "L1", datetime(2026, 9, 9, 12, 30, tzinfo=UTC), 5)
    # ... and 23:30 the day before, outside them (30 x 24 h back would take it in).
    _parts(database, "L1", datetime(2026, 9, 9, 11, 30, tzinfo=UTC), 7, bad=7)
    _parts(database, None, datetime(2026, 10, 10, 6, tzinfo=UTC), 2)

    plant = dataclasses.replace(settings, timezone="Pacific/Auckland")
    lo = overview.line_overview(database, plant, permissions.SYSTEM, now=now)
    assert lo.today_since == datetime(2026, 10, 10, tzinfo=AUCKLAND)
    assert lo.history_since == datetime(2026, 9, 10, tzinfo=AUCKLAND)
    assert lo.history_since.astimezone(UTC) == datetime(2026, 9, 9, 12, tzinfo=UTC)
    assert _numbers(lo) == {"L1": (10, 3, 10, 1, 0), "": (2, 0, 0, 0, 0)}
    l1 = lo.lines[1]
    assert l1.line == "L1" and l1.today_rate == pytest.approx(0.3)
    assert l1.history_rate == pytest.approx(0.1) and lo.lines[0].history_rate is None
    assert lo.any_inspections

    utc = overview.line_overview(database, settings, permissions.SYSTEM, now=now)
    assert utc.today_since == datetime(2026, 10, 10, tzinfo=UTC)
    assert _numbers(utc) == {"L1": (6, 2, 9, 2, 0), "": (2, 0, 0, 0, 0)}


def test_the_backlog_is_the_review_queue_of_each_line(
    database: Database, settings: Settings
) -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    info, _ = accounts.create_user(database, permissions.SYSTEM, "rita", Role.REVIEWER,
                                   password="correct-horse-1")  # fmt: skip
    rita = CurrentUser(id=info.id, username=info.username, role=info.role)
    l1 = _parts(database, "L1", now - timedelta(hours=3), 5, bad=3, flagged=3)
    _parts(database, "L2", now - timedelta(days=2), 4, bad=2, flagged=2)
    # Forty days ago: outside the 30 days, still waiting, so the line is listed.
    _parts(database, "L3", now - timedelta(days=40), 1, bad=1, flagged=1)
    review.record_review(database, rita, l1[0], true_class="ok", disposition="accept",
                         note=None, expected_version=0)  # fmt: skip

    lo = overview.line_overview(database, settings, permissions.SYSTEM, now=now)
    assert _numbers(lo) == {
        "L1": (5, 2, 0, 0, 2),  # the reviewed part counts by its reviewed class: good
        "L2": (0, 0, 4, 2, 2),
        "L3": (0, 0, 0, 0, 1),
    }
    for status in lo.lines:
        assert status.backlog == review.queue_size(database, rita, line=status.line)


def test_a_spike_in_this_shift_is_an_open_signal_and_a_steady_line_has_none(
    database: Database, settings: Settings
) -> None:
    now = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)  # 13:30 in Berlin: the 06:00 shift
    first = datetime(2026, 11, 13, 13, tzinfo=UTC)  # 14:00 Berlin, a week before the next hour
    for k in range(21):  # every shift of the week, the current one last
        at = first + timedelta(hours=8 * k + 2)
        _parts(database, "L1", at, 100, bad=40 if k == 20 else 4 + 2 * (k % 2))
        _parts(database, "L2", at, 100, bad=4 + 2 * (k % 2))
    plant = dataclasses.replace(settings, timezone="Europe/Berlin")

    lo = overview.line_overview(database, plant, permissions.SYSTEM, now=now)
    assert lo.chart_since == first and lo.chart_until == datetime(2026, 11, 20, 13, tzinfo=UTC)
    assert [s.line for s in lo.signalling] == ["L1"]
    steady = lo.lines[1]
    assert steady.line == "L2" and steady.signals == ()
    spike = lo.lines[0].signals[-1]
    assert spike.start == datetime(2026, 11, 20, 6, tzinfo=BERLIN) and spike.rate == 0.4
    assert 1 in spike.rules and "Rule 1: 1 point beyond 3σ" in spike.descriptions
    # Only shifts that began in the last 24 hours are open.
    assert all(s.start >= now - timedelta(hours=24) for s in lo.lines[0].signals)
    assert lo.open_since == now - timedelta(hours=24)
    # A day later the spike is an old shift: still on the chart, no longer open.
    later = overview.line_overview(database, plant, permissions.SYSTEM,
                                   now=now + timedelta(days=1))  # fmt: skip
    assert later.lines[0].signals == () and later.signalling == []


def test_no_inspections_and_the_plant_wide_headline(database: Database, settings: Settings) -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    empty = overview.line_overview(database, settings, permissions.SYSTEM, now=now)
    assert not empty.any_inspections and empty.lines == [] and empty.signalling == []
    _parts(database, "L1", now - timedelta(hours=2), 10, bad=2, flagged=3)
    _parts(database, "L1", now - timedelta(hours=30), 10, bad=10, flagged=10)
    head = overview.plant_overview(database, permissions.SYSTEM, hours=24, now=now)
    assert head.since == now - timedelta(hours=24)
    assert (head.inspected, head.defects, head.flagged, head.open_reviews) == (10, 2, 3, 13)
    assert head.defect_rate == pytest.approx(0.2) and head.active_model is None
