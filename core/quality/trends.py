"""Defect rates over time for plant managers: buckets in plant-local time, KPIs against the
previous period, the control chart with its signals, and the Pareto of defect classes.

Everything is computed from the hourly rollup (db/queries/trends.py): hours are summed into
plant-local hours, shifts, days or weeks here, so a day is the plant's day across a daylight-
saving change (23 or 25 hours). A part counts as defective by its reviewed class once reviewed,
else by the model's. The chart is chosen by core.quality.spc (p, or Laney p′ when the data are
overdispersed), with the displayed period as its baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.errors import ValidationError
from core.quality import spc
from db.engine import Database
from db.queries import trends as trend_queries
from db.queries.trends import HourCounts, TrendFilter

BUCKETS = ("hour", "shift", "day", "week")
MAX_FILTER_LENGTH = 100


def plant_zone(settings: Settings) -> ZoneInfo:
    """The plant's time zone (DEFECTLENS_TIMEZONE); ValidationError for an unknown name."""
    try:
        return ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"DEFECTLENS_TIMEZONE={settings.timezone!r} is not a time zone name "
            "(for example Europe/Berlin)"
        ) from None


def checked_filter(
    line: str | None, station: str | None, product: str | None, model_id: int | None = None
) -> TrendFilter:
    """The filter as given, refused when a value is longer than a stored one can be."""
    for name, value in (("line", line), ("station", station), ("product", product)):
        if value is not None and len(value) > MAX_FILTER_LENGTH:
            raise ValidationError(f"{name} must be at most {MAX_FILTER_LENGTH} characters")
    return TrendFilter(line=line, station=station, product=product, model_id=model_id)


def checked_period(since: datetime, until: datetime) -> None:
    """ValidationError unless [since, until) is a non-empty period of aware times."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValidationError("since and until must carry a time zone offset")
    if until <= since:
        raise ValidationError(
            f"until ({until.isoformat()}) must be after since ({since.isoformat()})"
        )


def bucket_start(hour: datetime, by: str, tz: ZoneInfo, shifts: Sequence[str]) -> datetime:
    """The plant-local start of the bucket that the UTC hour ``hour`` falls in (aware, in tz)."""
    local = hour.astimezone(tz)
    if by == "hour":
        return local
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if by == "day":
        return _localise(midnight, tz)
    if by == "week":  # weeks start on Monday, as ISO 8601
        return _localise(midnight - timedelta(days=midnight.weekday()), tz)
    if by == "shift":
        starts = [tuple(int(x) for x in s.split(":")) for s in shifts]
        wall = (local.hour, local.minute)
        earlier = [s for s in starts if s <= wall]
        if earlier:
            h, m = earlier[-1]
            return _localise(midnight.replace(hour=h, minute=m), tz)
        h, m = starts[-1]  # before the first shift: the previous day's last shift
        return _localise((midnight - timedelta(days=1)).replace(hour=h, minute=m), tz)
    raise ValidationError(f"bucket must be one of {', '.join(BUCKETS)}, not {by!r}")


def _localise(wall: datetime, tz: ZoneInfo) -> datetime:
    """A wall-clock time in tz with its correct offset (after date arithmetic changed the day)."""
    naive = wall.replace(tzinfo=None)
    return naive.replace(tzinfo=tz)


def default_bucket(since: datetime, until: datetime) -> str:
    """The bucket for a range: hours up to 2 days, shifts up to 7, days up to 120, else weeks."""
    days = (until - since).total_seconds() / 86400
    if days <= 2:
        return "hour"
    if days <= 7:
        return "shift"
    return "day" if days <= 120 else "week"


@dataclass
class Bucket:
    """The counts of one plant-local bucket."""

    start: datetime
    parts: int = 0
    defects: int = 0
    flagged: int = 0
    reviewed: int = 0
    corrections: int = 0
    unsure: int = 0
    confidence_sum: float = 0.0

    def add(self, h: HourCounts) -> None:
        self.parts += h.parts
        self.defects += h.defects
        self.flagged += h.flagged
        self.reviewed += h.reviewed
        self.corrections += h.corrections
        self.unsure += h.unsure
        self.confidence_sum += h.confidence_sum


def into_buckets(
    hours: Sequence[HourCounts], by: str, tz: ZoneInfo, shifts: Sequence[str]
) -> list[Bucket]:
    """Sum UTC hours into plant-local buckets, in time order (buckets without parts absent)."""
    out: dict[datetime, Bucket] = {}
    for h in hours:
        start = bucket_start(h.hour, by, tz, shifts)
        key = start.astimezone(UTC)
        if key not in out:
            out[key] = Bucket(start=start)
        out[key].add(h)
    return [out[k] for k in sorted(out)]


def kpis(buckets: Sequence[Bucket]) -> dict[str, Any]:
    """Parts, defect rate, flagged and reviewed shares, corrections, model-inspector agreement."""
    parts = sum(b.parts for b in buckets)
    reviewed = sum(b.reviewed for b in buckets)
    corrections = sum(b.corrections for b in buckets)
    return {
        "parts": parts,
        "defect_rate": sum(b.defects for b in buckets) / parts if parts else None,
        "flagged_share": sum(b.flagged for b in buckets) / parts if parts else None,
        "reviewed_share": reviewed / parts if parts else None,
        "corrections": corrections,
        "agreement": (reviewed - corrections) / reviewed if reviewed else None,
        "mean_confidence": sum(b.confidence_sum for b in buckets) / parts if parts else None,
        "unsure_share": sum(b.unsure for b in buckets) / parts if parts else None,
    }


@dataclass(frozen=True)
class TrendReport:
    """What the Trends page and `defectlens trends --json` show for one period and filter."""

    since: datetime
    until: datetime
    by: str
    chart: spc.ControlChart | None  # None: no parts in the period
    choice: spc.ChartChoice | None
    buckets: list[Bucket]
    signals: list[list[int]]  # per bucket, the Western Electric rules it triggers
    pareto: spc.Pareto
    kpis: dict[str, Any]
    previous_kpis: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON contract of `defectlens trends --json` (DESIGN.md)."""
        points = self.chart.points if self.chart is not None else ()
        series = [
            {
                "start": b.start.isoformat(),
                "n": b.parts,
                "defects": b.defects,
                "rate": p.rate,
                "ucl": p.ucl,
                "lcl": p.lcl,
                "signals": s,
            }  # fmt: skip
            for b, p, s in zip(self.buckets, points, self.signals, strict=True)
        ]
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "by": self.by,
            "chart": self.chart.chart if self.chart else None,
            "chart_reason": self.choice.reason if self.choice else None,
            "center": self.chart.centre if self.chart else None,
            "sigma_z": self.chart.sigma_z if self.chart else None,
            "series": series,
            "pareto": [
                {"class": r.name, "count": r.count, "cumulative_share": r.cumulative_share}
                for r in self.pareto.rows
            ],
            "kpis": self.kpis,
            "previous_kpis": self.previous_kpis,
        }


def trend_report(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    since: datetime,
    until: datetime,
    where: TrendFilter,
    by: str | None = None,
) -> TrendReport:
    """Buckets, KPIs (and the previous period's), the control chart and the Pareto."""
    require(actor, Action.VIEW_TRENDS)
    checked_period(since, until)
    by = by or default_bucket(since, until)
    if by not in BUCKETS:
        raise ValidationError(f"bucket must be one of {', '.join(BUCKETS)}, not {by!r}")
    tz = plant_zone(settings)
    length = until - since
    with db.read() as session:
        hours = trend_queries.hourly(session, since, until, where)
        before = trend_queries.hourly(session, since - length, since, where)
        classes = trend_queries.defect_classes(session, since, until, where)
    buckets = into_buckets(hours, by, tz, settings.shift_starts)
    chart, choice, signals = _chart(buckets)
    return TrendReport(
        since=since, until=until, by=by, chart=chart, choice=choice, buckets=buckets,
        signals=signals, pareto=spc.pareto(classes), kpis=kpis(buckets),
        previous_kpis=kpis(into_buckets(before, by, tz, settings.shift_starts)),
    )  # fmt: skip


def _chart(
    buckets: Sequence[Bucket],
) -> tuple[spc.ControlChart | None, spc.ChartChoice | None, list[list[int]]]:
    """The chart the data call for, on the displayed period as baseline, and its signals."""
    if not buckets:
        return None, None, []
    defects = [b.defects for b in buckets]
    sizes = [b.parts for b in buckets]
    choice = spc.choose_chart(defects, sizes)
    if choice.chart == spc.LANEY_P_CHART:
        chart = spc.laney_p_chart(defects, sizes)
    else:
        chart = spc.p_chart(defects, sizes)
    rules = spc.western_electric(chart.z_scores)
    return chart, choice, [list(f) for f in rules.flags]


def filter_values(db: Database, actor: CurrentUser) -> dict[str, list[str]]:
    """The lines, stations and products the filters can offer."""
    require(actor, Action.VIEW_TRENDS)
    with db.read() as session:
        return trend_queries.filter_values(session)


def rate_by_line(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    since: datetime,
    until: datetime,
    where: TrendFilter,
    by: str,
) -> dict[str, list[Bucket]]:
    """Each line's buckets over the period ('' for parts recorded without a line)."""
    require(actor, Action.VIEW_TRENDS)
    tz = plant_zone(settings)
    with db.read() as session:
        hours = trend_queries.hourly(session, since, until, where, by_line=True)
    lines: dict[str, list[HourCounts]] = {}
    for h in hours:
        lines.setdefault(h.line or "", []).append(h)
    return {line: into_buckets(rows, by, tz, settings.shift_starts) for line, rows in lines.items()}
