"""What happened on the timeline besides inspections: process annotations, model promotions and
flagging-rule changes, for the markers on every Trends chart. Callers own the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, cast, delete, or_, select
from sqlalchemy.orm import Session

from db.models import Annotation, AuditEntry, FlagRule, Model, User

# Audit actions that change which model judges parts.
MODEL_CHANGES = ("model_promoted", "model_rolled_back")


@dataclass(frozen=True)
class AnnotationRecord:
    """One process change noted by an engineer; line None means every line."""

    id: int
    at: datetime
    line: str | None
    text: str
    created_by: str | None  # username
    created_at: datetime


@dataclass(frozen=True)
class TimelineEvent:
    """A marker for the time axis: kind 'annotation', 'model' or 'flag_rule', and its label."""

    at: datetime
    kind: str
    label: str
    line: str | None = None  # annotations only: the line it concerns (None: all)


def add_annotation(
    session: Session, *, at: datetime, line: str | None, text: str, created_by: int | None
) -> int:
    """Insert one annotation; its id."""
    row = Annotation(at=at, line=line, text=text, created_by=created_by)
    session.add(row)
    session.flush()
    return row.id


def get_annotation(session: Session, annotation_id: int) -> AnnotationRecord | None:
    """One annotation, or None."""
    rows = _annotation_rows(session, Annotation.id == annotation_id)
    return rows[0] if rows else None


def delete_annotation(session: Session, annotation_id: int) -> bool:
    """Remove one annotation; False when there was none."""
    result = session.execute(delete(Annotation).where(Annotation.id == annotation_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def annotations_between(
    session: Session, since: datetime, until: datetime, line: str | None = None
) -> list[AnnotationRecord]:
    """Annotations in [since, until), oldest first; with a line, that line's and the plant-wide."""
    where = [Annotation.at >= since, Annotation.at < until]
    if line is not None:
        where.append(or_(Annotation.line.is_(None), Annotation.line == line))
    return _annotation_rows(session, *where)


def _annotation_rows(session: Session, *where: object) -> list[AnnotationRecord]:
    stmt = (
        select(Annotation, User.username)
        .outerjoin(User, User.id == Annotation.created_by)
        .where(*where)  # type: ignore[arg-type]
        .order_by(Annotation.at, Annotation.id)
    )
    return [
        AnnotationRecord(
            id=a.id,
            at=a.at,
            line=a.line,
            text=a.text,
            created_by=username,
            created_at=a.created_at,
        )  # fmt: skip
        for a, username in session.execute(stmt)
    ]


def model_changes(session: Session, since: datetime, until: datetime) -> list[TimelineEvent]:
    """Promotions and rollbacks in [since, until), from the audit trail, oldest first."""
    stmt = (
        select(AuditEntry.at, AuditEntry.action, AuditEntry.entity_id, Model.name)
        # entity_id is text; casting the model id (not the entity) is safe for every audit row.
        .outerjoin(Model, cast(Model.id, String) == AuditEntry.entity_id)
        .where(
            AuditEntry.action.in_(MODEL_CHANGES), AuditEntry.at >= since, AuditEntry.at < until
        )  # fmt: skip
        .order_by(AuditEntry.at, AuditEntry.id)
    )
    out = []
    for at, action, model_id, name in session.execute(stmt):
        verb = "promoted" if action == "model_promoted" else "rolled back to"
        out.append(TimelineEvent(at=at, kind="model", label=f"Model {verb}: {name} (#{model_id})"))
    return out


def rule_changes(
    session: Session, since: datetime, until: datetime, product: str | None = None
) -> list[TimelineEvent]:
    """New flagging-rule versions in [since, until) (one product's, or every product's)."""
    where = [FlagRule.created_at >= since, FlagRule.created_at < until]
    if product is not None:
        where.append(FlagRule.product == product)
    stmt = select(FlagRule).where(*where).order_by(FlagRule.created_at, FlagRule.id)
    return [
        TimelineEvent(
            at=r.created_at,
            kind="flag_rule",
            label=f"Flagging rule v{r.version} for {r.product}: unsure below "
            f"{r.min_confidence:.0%}",
        )  # fmt: skip
        for r in session.scalars(stmt)
    ]
