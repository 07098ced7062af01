"""Frozen SPC baselines: add one, find the one in force for a view, retire it, list the history.
Callers own the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, aliased

from db.models import SpcBaseline, User
from db.queries.trends import TrendFilter


@dataclass(frozen=True)
class BaselineRecord:
    """One set of frozen limits and the view, window and exclusions that produced them."""

    id: int
    where: TrendFilter
    bucket: str
    window_start: datetime
    window_end: datetime
    excluded: list[dict[str, Any]]  # [{"start": UTC ISO start of the bucket, "reason": text}]
    chart: str
    centre: float
    sigma_z: float
    buckets: int
    parts: int
    defects: int
    note: str
    created_by: str | None
    created_at: datetime
    retired_at: datetime | None
    retired_by: str | None


def add_baseline(session: Session, record: dict[str, Any]) -> int:
    """Insert one baseline (the columns of SpcBaseline as keys); its id."""
    row = SpcBaseline(**record)
    session.add(row)
    session.flush()
    return row.id


def _scope(where: TrendFilter, bucket: str) -> list[Any]:
    # NULL is "any"; IS NOT DISTINCT FROM would do it in one step but SQLite spells it IS.
    clauses: list[Any] = [SpcBaseline.bucket == bucket]
    for column, value in (
        (SpcBaseline.line, where.line),
        (SpcBaseline.station, where.station),
        (SpcBaseline.product, where.product),
        (SpcBaseline.model_id, where.model_id),
        (SpcBaseline.shift, where.shift),
    ):
        clauses.append(column.is_(None) if value is None else column == value)
    return clauses


def active_baseline(session: Session, where: TrendFilter, bucket: str) -> BaselineRecord | None:
    """The newest baseline in force for exactly this view and bucket, or None."""
    rows = _records(session, *_scope(where, bucket), SpcBaseline.retired_at.is_(None), limit=1)
    return rows[0] if rows else None


def history(session: Session, where: TrendFilter, bucket: str) -> list[BaselineRecord]:
    """Every baseline ever frozen for this view and bucket, newest first."""
    return _records(session, *_scope(where, bucket))


def retire(session: Session, baseline_id: int, by: int | None, at: datetime) -> bool:
    """Take a baseline out of force; False when it was not in force."""
    result = session.execute(
        update(SpcBaseline)
        .where(SpcBaseline.id == baseline_id, SpcBaseline.retired_at.is_(None))
        .values(retired_at=at, retired_by=by)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def _records(session: Session, *where: Any, limit: int | None = None) -> list[BaselineRecord]:
    creator, retirer = aliased(User), aliased(User)
    stmt = (
        select(SpcBaseline, creator.username, retirer.username)
        .outerjoin(creator, creator.id == SpcBaseline.created_by)
        .outerjoin(retirer, retirer.id == SpcBaseline.retired_by)
        .where(*where)
        .order_by(SpcBaseline.created_at.desc(), SpcBaseline.id.desc())
        .limit(limit)
    )
    return [_record(row, made, retired) for row, made, retired in session.execute(stmt)]


def _record(row: SpcBaseline, made_by: str | None, retired_by: str | None) -> BaselineRecord:
    return BaselineRecord(
        id=row.id,
        where=TrendFilter(
            line=row.line,
            station=row.station,
            product=row.product,
            model_id=row.model_id,
            shift=row.shift,
        ),  # fmt: skip
        bucket=row.bucket,
        window_start=row.window_start,
        window_end=row.window_end,
        excluded=list(row.excluded),
        chart=row.chart,
        centre=float(row.centre),
        sigma_z=float(row.sigma_z),
        buckets=row.buckets,
        parts=row.parts,
        defects=row.defects,
        note=row.note,
        created_by=made_by,
        created_at=row.created_at,
        retired_at=row.retired_at,
        retired_by=retired_by,
    )
