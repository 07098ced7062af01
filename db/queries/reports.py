"""Raw inspection rows for exports (the only place trends read them), page by page by id.
Callers own the transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from db.models import Inspection, Review, User
from db.queries.trends import TrendFilter

EXPORT_COLUMNS = (
    "id", "captured_at", "line", "station", "product", "lot", "serial", "source_name",
    "model_id", "predicted_class", "confidence", "is_defect", "flagged", "flag_reason",
    "reviewed_class", "disposition", "reviewer", "reviewed_at",
)  # fmt: skip


def _where(since: datetime, until: datetime, where: TrendFilter) -> list[Any]:
    out: list[Any] = [Inspection.captured_at >= since, Inspection.captured_at < until]
    for column, value in (
        (Inspection.line, where.line),
        (Inspection.station, where.station),
        (Inspection.product, where.product),
    ):
        if value == "":
            out.append(column.is_(None) | (column == ""))
        elif value is not None:
            out.append(column == value)
    if where.model_id is not None:
        out.append(func.coalesce(Inspection.model_id, 0) == where.model_id)
    return out


def export_page(
    session: Session,
    since: datetime,
    until: datetime,
    where: TrendFilter,
    *,
    after_id: int = 0,
    limit: int = 5000,
) -> list[tuple[Any, ...]]:
    """Up to ``limit`` rows (EXPORT_COLUMNS order) with id > after_id, by id."""
    current = and_(
        Review.inspection_id == Inspection.id, Review.version == Inspection.review_version
    )
    stmt = (
        select(
            Inspection.id,
            Inspection.captured_at,
            Inspection.line,
            Inspection.station,
            Inspection.product,
            Inspection.lot,
            Inspection.serial,
            Inspection.source_name,
            Inspection.model_id,
            Inspection.predicted_class,
            Inspection.confidence,
            Inspection.is_defect,
            Inspection.flagged,
            Inspection.flag_reason,
            Review.true_class,
            Review.disposition,
            User.username,
            Review.created_at,
        )  # fmt: skip
        .outerjoin(Review, current)
        .outerjoin(User, User.id == Review.reviewer_id)
        .where(Inspection.id > after_id, *_where(since, until, where))
        .order_by(Inspection.id)
        .limit(limit)
    )
    return [tuple(r) for r in session.execute(stmt)]
