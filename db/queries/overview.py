"""The overview's per-line counts, from the hourly rollup (never the raw inspection rows): parts
and defects of two adjacent periods, and the review backlog. Callers own the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, not_, select
from sqlalchemy.orm import Session

from db.models import Rollup


@dataclass(frozen=True)
class LinePeriods:
    """One line's parts and defective parts before and from a split time ('' = no line)."""

    line: str
    before_parts: int
    before_defects: int
    after_parts: int
    after_defects: int


def _parts_where(*conditions: Any) -> Any:
    return func.coalesce(func.sum(case((and_(*conditions), Rollup.parts), else_=0)), 0)


def parts_by_line(
    session: Session, since: datetime, split: datetime, until: datetime
) -> list[LinePeriods]:
    """Per line, parts and defects in [since, split) and in [split, until), by line name."""
    after = Rollup.hour >= split
    stmt = (
        select(
            Rollup.line,
            _parts_where(not_(after)),
            _parts_where(not_(after), Rollup.defect),
            _parts_where(after),
            _parts_where(after, Rollup.defect),
        )
        .where(Rollup.hour >= since, Rollup.hour < until)
        .group_by(Rollup.line)
        .having(func.sum(Rollup.parts) > 0)
        .order_by(Rollup.line)
    )
    return [
        LinePeriods(str(line), int(bp), int(bd), int(ap), int(ad))
        for line, bp, bd, ap, ad in session.execute(stmt)
    ]


def backlog_by_line(session: Session) -> dict[str, int]:
    """Flagged parts nobody has reviewed yet, per line: the review queue's rule, by line."""
    stmt = (
        select(Rollup.line, func.sum(Rollup.parts))
        .where(Rollup.flagged.is_(True), Rollup.reviewed.is_(False))
        .group_by(Rollup.line)
        .having(func.sum(Rollup.parts) > 0)
    )
    return {str(line): int(n) for line, n in session.execute(stmt)}
