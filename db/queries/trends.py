"""Trend aggregations over the hourly rollup (never the raw inspection rows). Callers own the
transaction. One SQL GROUP BY per question, the same statement on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from db.models import Model, Rollup


@dataclass(frozen=True)
class TrendFilter:
    """Which parts count: None means any; '' matches parts recorded without that field."""

    line: str | None = None
    station: str | None = None
    product: str | None = None
    model_id: int | None = None  # 0: parts judged without a registered model
    # A plant-local shift ("06:00"): not SQL, since shifts are local wall times; core keeps the
    # hours of that shift after the query (core.quality.buckets.in_shift).
    shift: str | None = None

    def clauses(self) -> list[Any]:
        """The WHERE clauses (values are bound parameters, never SQL text)."""
        out: list[Any] = []
        for column, value in (
            (Rollup.line, self.line),
            (Rollup.station, self.station),
            (Rollup.product, self.product),
            (Rollup.model_id, self.model_id),
        ):
            if value is not None:
                out.append(column == value)
        return out


@dataclass(frozen=True)
class HourCounts:
    """Everything counted in one hour (UTC), for one line when grouped by line."""

    hour: datetime
    line: str | None
    parts: int
    defects: int
    flagged: int
    reviewed: int
    corrections: int
    unsure: int
    confidence_sum: float


def _sum_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, Rollup.parts), else_=0)), 0)


def hourly(
    session: Session, since: datetime, until: datetime, where: TrendFilter, by_line: bool = False
) -> list[HourCounts]:
    """Counts per hour in [since, until), per line too when ``by_line``; hours without parts
    are absent."""
    keys: list[Any] = [Rollup.hour] + ([Rollup.line] if by_line else [])
    stmt = (
        select(
            *keys,
            func.sum(Rollup.parts),
            _sum_if(Rollup.defect),
            _sum_if(Rollup.flagged),
            _sum_if(Rollup.reviewed),
            func.sum(Rollup.corrections),
            func.sum(Rollup.unsure),
            func.sum(Rollup.confidence_sum),
        )
        .where(Rollup.hour >= since, Rollup.hour < until, *where.clauses())
        .group_by(*keys)
        .having(func.sum(Rollup.parts) > 0)
        .order_by(*keys)
    )
    out = []
    for row in session.execute(stmt):
        values = list(row)
        line = values.pop(1) if by_line else None
        hour, parts, defects, flagged, reviewed, corrections, unsure, conf = values
        out.append(
            HourCounts(
                hour=hour,
                line=line,
                parts=int(parts),
                defects=int(defects),
                flagged=int(flagged),
                reviewed=int(reviewed),
                corrections=int(corrections),
                unsure=int(unsure),
                confidence_sum=float(conf),
            )  # fmt: skip
        )
    return out


def hourly_classes(
    session: Session, since: datetime, until: datetime, where: TrendFilter
) -> list[tuple[datetime, str, int]]:
    """Defective parts per hour and class in [since, until) (the reviewed class once reviewed)."""
    stmt = (
        select(Rollup.hour, Rollup.class_name, func.sum(Rollup.parts))
        .where(Rollup.hour >= since, Rollup.hour < until, Rollup.defect, *where.clauses())
        .group_by(Rollup.hour, Rollup.class_name)
        .having(func.sum(Rollup.parts) > 0)
        .order_by(Rollup.hour, Rollup.class_name)
    )
    return [(hour, str(name), int(n)) for hour, name, n in session.execute(stmt)]


def models_with_parts(session: Session) -> list[tuple[int, str]]:
    """(model id, name) of every model that judged parts; id 0 is parts without a model."""
    ids = session.scalars(select(Rollup.model_id).distinct().order_by(Rollup.model_id)).all()
    names = dict(session.execute(select(Model.id, Model.name).where(Model.id.in_(ids))).all())
    return [(int(i), str(names.get(i, "no registered model" if i == 0 else f"model {i}")))
            for i in ids]  # fmt: skip


def filter_values(session: Session) -> dict[str, list[str]]:
    """The lines, stations and products that have parts, sorted ('' for parts without one)."""
    out: dict[str, list[str]] = {}
    for name, column in (("line", Rollup.line), ("station", Rollup.station),
                         ("product", Rollup.product)):  # fmt: skip
        # DISTINCT over one column reads its index (migration 0008), not the table.
        values = session.scalars(select(column).distinct().order_by(column)).all()
        out[name] = [str(v) for v in values]
    return out


def rates_by_line(
    session: Session, since: datetime, until: datetime, where: TrendFilter
) -> list[tuple[datetime, str, int, int]]:
    """(hour, line, parts, defective parts) in [since, until): only what the per-line chart
    draws (a year of it is tens of thousands of rows, so no more columns than needed)."""
    stmt = (
        select(Rollup.hour, Rollup.line, func.sum(Rollup.parts), _sum_if(Rollup.defect))
        .where(Rollup.hour >= since, Rollup.hour < until, *where.clauses())
        .group_by(Rollup.hour, Rollup.line)
        .having(func.sum(Rollup.parts) > 0)
        .order_by(Rollup.hour, Rollup.line)
    )
    return [(h, str(line), int(n), int(x)) for h, line, n, x in session.execute(stmt)]
