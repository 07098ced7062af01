"""Defect rates over time for plant managers: KPIs against the previous period, the control
chart (on a frozen baseline when an engineer set one) with its signals, the defect mix, the
Pareto, drift, and the markers of what changed on the line.

Everything is computed from the hourly rollup (db/queries/trends.py), summed into plant-local
buckets by core.quality.buckets. A part counts as defective by its reviewed class once reviewed,
else by the model's. Without a frozen baseline the chart is chosen by core.quality.spc (p, or
Laney p′ when the data are overdispersed) with the displayed period as its baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.errors import ValidationError
from core.quality import spc
from core.quality.buckets import (
    Bucket,
    bucket_start,
    checked_bucket,
    default_bucket,
    in_shift,
    into_buckets,
    plant_zone,
    shift_of,
)
from core.quality.drift import Drift, drift
from core.quality.forecast import Forecast, forecast
from db.engine import Database
from db.queries import baselines as baseline_queries
from db.queries import timeline as timeline_queries
from db.queries import trends as trend_queries
from db.queries.baselines import BaselineRecord
from db.queries.timeline import TimelineEvent
from db.queries.trends import HourCounts, TrendFilter

MAX_FILTER_LENGTH = 100


def checked_filter(
    line: str | None,
    station: str | None,
    product: str | None,
    model_id: int | None = None,
    shift: str | None = None,
) -> TrendFilter:
    """The filter as given, refused when a value is longer than a stored one can be."""
    for name, value in (("line", line), ("station", station), ("product", product)):
        if value is not None and len(value) > MAX_FILTER_LENGTH:
            raise ValidationError(f"{name} must be at most {MAX_FILTER_LENGTH} characters")
    return TrendFilter(line=line, station=station, product=product, model_id=model_id,
                       shift=shift)  # fmt: skip


def checked_period(since: datetime, until: datetime) -> None:
    """ValidationError unless [since, until) is a non-empty period of aware times."""
    if since.tzinfo is None or until.tzinfo is None:
        raise ValidationError("since and until must carry a time zone offset")
    if until <= since:
        raise ValidationError(
            f"until ({until.isoformat()}) must be after since ({since.isoformat()})"
        )


def checked_shift(where: TrendFilter, settings: Settings) -> None:
    """ValidationError unless the filter's shift is one of DEFECTLENS_SHIFTS."""
    if where.shift is not None and where.shift not in settings.shift_starts:
        raise ValidationError(
            f"shift must be the start of a shift ({', '.join(settings.shift_starts)}), "
            f"not {where.shift!r}"
        )


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
    """What the Trends page, the PDF and `defectlens trends --json` show for one view."""

    since: datetime
    until: datetime
    by: str
    where: TrendFilter
    chart: spc.ControlChart | None  # None: no parts in the period
    choice: spc.ChartChoice | None
    baseline: BaselineRecord | None  # the frozen limits in force, None: the displayed period
    buckets: list[Bucket]
    signals: list[list[int]]  # per bucket, the Western Electric rules it triggers
    pareto: spc.Pareto
    mix: dict[str, list[int]]  # defect class -> defective parts per bucket
    drift: Drift
    events: list[TimelineEvent]  # promotions, rule changes and annotations, oldest first
    daily: list[Bucket]  # plant-local days, the forecast's history
    forecast: Forecast | None  # None: fewer than forecast.MIN_HISTORY_DAYS days with parts
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
            "baseline": None if self.baseline is None else _baseline_dict(self.baseline),
            "series": series,
            "pareto": [
                {"class": r.name, "count": r.count, "cumulative_share": r.cumulative_share}
                for r in self.pareto.rows
            ],
            "events": [
                {"at": e.at.isoformat(), "kind": e.kind, "label": e.label, "line": e.line}
                for e in self.events
            ],
            "forecast": None if self.forecast is None else self.forecast.to_dict(),
            "kpis": self.kpis,
            "previous_kpis": self.previous_kpis,
        }


def _baseline_dict(b: BaselineRecord) -> dict[str, Any]:
    return {
        "id": b.id, "window_start": b.window_start.isoformat(),
        "window_end": b.window_end.isoformat(), "excluded": b.excluded,
        "created_by": b.created_by, "created_at": b.created_at.isoformat(),
    }  # fmt: skip


def period_buckets(
    hours: Sequence[HourCounts], where: TrendFilter, by: str, settings: Settings
) -> list[Bucket]:
    """The hours (of the filter's shift, if any) summed into plant-local buckets."""
    tz, shifts = plant_zone(settings), settings.shift_starts
    return into_buckets(in_shift(hours, where.shift, tz, shifts), by, tz, shifts)


def trend_report(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    since: datetime,
    until: datetime,
    where: TrendFilter,
    by: str | None = None,
) -> TrendReport:
    """Buckets, KPIs (and the previous period's), chart, mix, Pareto, drift and markers."""
    require(actor, Action.VIEW_TRENDS)
    checked_period(since, until)
    checked_shift(where, settings)
    by = checked_bucket(by or default_bucket(since, until))
    length = until - since
    with db.read() as session:
        hours = trend_queries.hourly(session, since, until, where)
        before = trend_queries.hourly(session, since - length, since, where)
        classes = trend_queries.hourly_classes(session, since, until, where)
        baseline = baseline_queries.active_baseline(session, where, by)
        events = timeline_events(session, since, until, where)
    buckets = period_buckets(hours, where, by, settings)
    daily = buckets if by == "day" else period_buckets(hours, where, "day", settings)
    chart, choice, signals = _chart(buckets, baseline)
    mix = _mix(classes, buckets, where, by, settings)
    return TrendReport(
        since=since, until=until, by=by, where=where, chart=chart, choice=choice,
        baseline=baseline, buckets=buckets, signals=signals,
        pareto=spc.pareto({name: sum(n) for name, n in mix.items()}), mix=mix,
        drift=drift(buckets), events=events, daily=daily, forecast=forecast(daily),
        kpis=kpis(buckets),
        previous_kpis=kpis(period_buckets(before, where, by, settings)),
    )  # fmt: skip


def timeline_events(
    session: Any, since: datetime, until: datetime, where: TrendFilter
) -> list[TimelineEvent]:
    """Model changes, the filtered product's rule changes and the line's annotations."""
    notes = [
        TimelineEvent(at=a.at, kind="annotation", label=a.text, line=a.line)
        for a in timeline_queries.annotations_between(session, since, until, where.line)
    ]
    changes = timeline_queries.model_changes(session, since, until)
    rules = timeline_queries.rule_changes(session, since, until, where.product)
    return sorted(notes + changes + rules, key=lambda e: e.at)


def _chart(
    buckets: Sequence[Bucket], baseline: BaselineRecord | None
) -> tuple[spc.ControlChart | None, spc.ChartChoice | None, list[list[int]]]:
    """The chart on the frozen baseline if there is one, else the one the data call for on the
    displayed period; and its signals."""
    if not buckets:
        return None, None, []
    defects = [b.defects for b in buckets]
    sizes = [b.parts for b in buckets]
    if baseline is not None:
        excluded = {e["start"] for e in baseline.excluded}
        mask = [
            baseline.window_start <= b.start < baseline.window_end
            and b.start.astimezone(UTC).isoformat() not in excluded
            for b in buckets
        ]
        chart = _frozen_chart(defects, sizes, mask, baseline)
        choice = spc.ChartChoice(baseline.chart, baseline.sigma_z, _frozen_reason(baseline))
    else:
        choice = spc.choose_chart(defects, sizes)
        if choice.chart == spc.LANEY_P_CHART:
            chart = spc.laney_p_chart(defects, sizes)
        else:
            chart = spc.p_chart(defects, sizes)
    rules = spc.western_electric(chart.z_scores)
    return chart, choice, [list(f) for f in rules.flags]


def _frozen_chart(
    defects: list[int], sizes: list[int], mask: list[bool], baseline: BaselineRecord
) -> spc.ControlChart:
    if baseline.chart == spc.LANEY_P_CHART:
        return spc.laney_p_chart(defects, sizes, baseline=mask, p_bar=baseline.centre,
                                 sigma_z=baseline.sigma_z)  # fmt: skip
    return spc.p_chart(defects, sizes, baseline=mask, p_bar=baseline.centre)


def _frozen_reason(b: BaselineRecord) -> str:
    name = "Laney p′" if b.chart == spc.LANEY_P_CHART else "p-chart"
    left_out = f", {len(b.excluded)} point(s) left out" if b.excluded else ""
    sigma = f", σ_z = {b.sigma_z:.2f}" if b.chart == spc.LANEY_P_CHART else ""
    return (
        f"Limits frozen by {b.created_by or 'system'} on {b.created_at:%Y-%m-%d %H:%M} UTC from "
        f"{b.buckets} buckets ({b.window_start:%Y-%m-%d} to {b.window_end:%Y-%m-%d}{left_out}): "
        f"{name}, p̄ = {b.centre:.4f}{sigma}."
    )


def _mix(
    classes: Sequence[tuple[datetime, str, int]],
    buckets: Sequence[Bucket],
    where: TrendFilter,
    by: str,
    settings: Settings,
) -> dict[str, list[int]]:
    """Defective parts per class and bucket (the buckets' order), the filter's shift only."""
    tz, shifts = plant_zone(settings), settings.shift_starts
    index = {b.start: i for i, b in enumerate(buckets)}
    out: dict[str, list[int]] = {}
    for hour, name, n in classes:
        start = bucket_start(hour, by, tz, shifts)
        if where.shift is not None and shift_of(hour, tz, shifts) != where.shift:
            continue
        i = index.get(start)
        if i is not None:
            out.setdefault(name, [0] * len(buckets))[i] += n
    return out


def filter_values(db: Database, actor: CurrentUser) -> dict[str, list[str]]:
    """The lines, stations and products the filters can offer."""
    require(actor, Action.VIEW_TRENDS)
    with db.read() as session:
        return trend_queries.filter_values(session)


def model_values(db: Database, actor: CurrentUser) -> list[tuple[int, str]]:
    """The models (id, name) that judged parts, for the model filter."""
    require(actor, Action.VIEW_TRENDS)
    with db.read() as session:
        return trend_queries.models_with_parts(session)


def rate_by_line(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    since: datetime,
    until: datetime,
    where: TrendFilter,
    by: str,
) -> dict[str, list[Bucket]]:
    """Each line's parts and defects per bucket over the period ('' for parts recorded without
    a line; the other counts of these buckets are not read and stay 0)."""
    require(actor, Action.VIEW_TRENDS)
    checked_shift(where, settings)
    with db.read() as session:
        rows = trend_queries.rates_by_line(session, since, until, where)
    lines: dict[str, list[HourCounts]] = {}
    for hour, line, parts, defects in rows:
        lines.setdefault(line, []).append(HourCounts(hour, line, parts, defects, 0, 0, 0, 0, 0.0))
    return {line: period_buckets(rows, where, by, settings) for line, rows in lines.items()}
