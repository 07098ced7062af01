"""The plant overview shown on the home page: plant-wide headline numbers, and per line today
against the last 30 days, the review backlog and open SPC signals.

The per-line numbers come from the hourly rollup. "Today" starts at plant-local midnight
(DEFECTLENS_TIMEZONE) and the 30 days are the 30 plant-local days before it, so a day is the
plant's day across a daylight-saving change. Signals are those of the Trends page's own chart
for the line over the last 7 days by shift (core.quality.trends.trend_report); one is open when
it falls in a shift that began in the last 24 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.auth import permissions
from core.auth.permissions import Action, CurrentUser
from core.config import Settings
from core.quality import spc, trends
from db.engine import Database
from db.models import utcnow
from db.queries import inspections, rollups
from db.queries import overview as overview_queries
from db.queries.overview import LinePeriods

HISTORY_DAYS = 30
SIGNAL_PERIOD = timedelta(days=7)  # the Trends page's "7d" period ...
SIGNAL_BUCKET = (
    "shift"  # ... by shift: short enough to show today's trouble, long enough for limits
)
OPEN_FOR = timedelta(hours=24)


@dataclass(frozen=True)
class Overview:
    """Headline numbers for the last `hours` hours (since `since`, UTC)."""

    hours: int
    since: datetime
    inspected: int
    flagged: int
    defects: int
    open_reviews: int
    jobs_waiting_or_running: int
    active_model: str | None

    @property
    def defect_rate(self) -> float | None:
        return None if self.inspected == 0 else self.defects / self.inspected


def plant_overview(
    db: Database, user: CurrentUser, hours: int = 24, now: datetime | None = None
) -> Overview:
    """Headline numbers any logged-in user may see."""
    permissions.require(user, Action.VIEW_TRENDS)
    since = (now or utcnow()) - timedelta(hours=hours)
    with db.read() as session:
        counts = inspections.overview_counts(session, since)
    return Overview(hours=hours, since=since, **counts)


@dataclass(frozen=True)
class OpenSignal:
    """A bucket of the line's chart that triggers Western Electric rules."""

    start: datetime  # plant-local start of the shift
    rate: float | None
    rules: tuple[int, ...]

    @property
    def descriptions(self) -> list[str]:
        """The rules in words (core.quality.spc.RULE_DESCRIPTIONS)."""
        return [spc.RULE_DESCRIPTIONS[r] for r in self.rules]


@dataclass(frozen=True)
class LineStatus:
    """One line ('' for parts recorded without one): today, the 30 days before, backlog, signals."""

    line: str
    today_parts: int
    today_defects: int
    history_parts: int
    history_defects: int
    backlog: int
    signals: tuple[OpenSignal, ...]

    @property
    def today_rate(self) -> float | None:
        return self.today_defects / self.today_parts if self.today_parts else None

    @property
    def history_rate(self) -> float | None:
        return self.history_defects / self.history_parts if self.history_parts else None


@dataclass(frozen=True)
class LineOverview:
    """Every line with parts in the last 30 days and today, or waiting for review."""

    today_since: datetime  # plant-local midnight (aware, in the plant's zone)
    history_since: datetime  # plant-local midnight 30 days before
    chart_since: datetime  # the 7-day chart the signals come from, [chart_since, chart_until)
    chart_until: datetime
    open_since: datetime  # a signal in a bucket starting at or after this is open
    any_inspections: bool
    lines: list[LineStatus]

    @property
    def signalling(self) -> list[LineStatus]:
        """The lines with an open signal."""
        return [s for s in self.lines if s.signals]


def plant_days(now: datetime, tz: ZoneInfo, days: int = HISTORY_DAYS) -> tuple[datetime, datetime]:
    """Plant-local midnight today, and plant-local midnight ``days`` days before it."""
    today = now.astimezone(tz).date()
    # Date arithmetic, then midnight in tz: a day across a DST change is 23 or 25 hours.
    midnight = datetime.combine(today, time(), tz)
    return midnight, datetime.combine(today - timedelta(days=days), time(), tz)


def line_overview(
    db: Database, settings: Settings, user: CurrentUser, now: datetime | None = None
) -> LineOverview:
    """Per line: today against the last 30 days, the review backlog and open SPC signals."""
    permissions.require(user, Action.VIEW_TRENDS)
    now = now or utcnow()
    today, history = plant_days(now, trends.plant_zone(settings))
    # The Trends page's 7-day period ends after the current hour; so does today.
    until = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    with db.read() as session:
        periods = {
            p.line: p for p in overview_queries.parts_by_line(session, history, today, until)
        }
        backlog = overview_queries.backlog_by_line(session)
        anything = rollups.has_inspections(session)
    empty = LinePeriods("", 0, 0, 0, 0)
    statuses = []
    for name in sorted(set(periods) | set(backlog)):
        c = periods.get(name, empty)
        statuses.append(
            LineStatus(
                line=name,
                today_parts=c.after_parts,
                today_defects=c.after_defects,
                history_parts=c.before_parts,
                history_defects=c.before_defects,
                backlog=backlog.get(name, 0),
                signals=open_signals(db, settings, user, name, until, now - OPEN_FOR),
            )
        )
    return LineOverview(
        today_since=today, history_since=history, chart_since=until - SIGNAL_PERIOD,
        chart_until=until, open_since=now - OPEN_FOR, any_inspections=anything, lines=statuses,
    )  # fmt: skip


def open_signals(
    db: Database,
    settings: Settings,
    user: CurrentUser,
    line: str,
    until: datetime,
    open_since: datetime,
) -> tuple[OpenSignal, ...]:
    """The signals of the line's 7-day chart by shift (ending at until) from open_since on."""
    where = trends.checked_filter(line, None, None)
    report = trends.trend_report(
        db, settings, user, until - SIGNAL_PERIOD, until, where, SIGNAL_BUCKET
    )
    points = report.chart.points if report.chart is not None else ()
    return tuple(
        OpenSignal(start=b.start, rate=p.rate, rules=tuple(rules))
        for b, p, rules in zip(report.buckets, points, report.signals, strict=True)
        if rules and b.start >= open_since
    )
