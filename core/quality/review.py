"""QA review of flagged parts: the queue, decisions with an optimistic version check, history and
reviewer statistics (the loop back to training is core.datasets.from_reviews).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.auth.audit import record_audit
from core.auth.permissions import Action, CurrentUser, require
from core.errors import Conflict, NotFound, ValidationError
from core.quality import ingest
from core.quality.ingest import InspectionRecord
from db.engine import Database
from db.models import Disposition, Image, Inspection, Model, Review, User, utcnow

QUEUE_ORDERS = ("oldest", "least_confident")
DISPOSITIONS: tuple[str, ...] = tuple(d.value for d in Disposition)
MAX_NOTE_LENGTH = 2000


@dataclass(frozen=True)
class ReviewEntry:
    """One reviewer decision on one part."""

    id: int
    inspection_id: int
    reviewer: str
    true_class: str
    disposition: str
    note: str | None
    version: int
    created_at: datetime


@dataclass(frozen=True)
class ReviewerStats:
    """A reviewer's work: decisions today, agreement with the model (None before any), total."""

    reviewed_today: int
    agreement: float | None
    total: int


def _entry(row: Review, username: str | None) -> ReviewEntry:
    return ReviewEntry(
        id=row.id,
        inspection_id=row.inspection_id,
        reviewer=username or f"user {row.reviewer_id}",
        true_class=row.true_class,
        disposition=row.disposition,
        note=row.note,
        version=row.version,
        created_at=row.created_at,
    )


def queue(
    db: Database,
    actor: CurrentUser,
    *,
    order: str = "oldest",
    line: str | None = None,
    product: str | None = None,
    limit: int = 100,
) -> list[InspectionRecord]:
    """Flagged parts nobody has reviewed yet, oldest or least confident first."""
    require(actor, Action.REVIEW)
    if order not in QUEUE_ORDERS:
        raise ValidationError(f"order must be one of {', '.join(QUEUE_ORDERS)}, not {order!r}")
    reviewed = select(Review.inspection_id)
    stmt = (
        select(Inspection, Image)
        .outerjoin(Image, Image.id == Inspection.image_id)
        .where(Inspection.flagged.is_(True), Inspection.id.not_in(reviewed))
        .limit(max(1, int(limit)))
    )
    if order == "oldest":
        stmt = stmt.order_by(Inspection.captured_at, Inspection.id)
    else:
        stmt = stmt.order_by(Inspection.confidence, Inspection.captured_at, Inspection.id)
    if line:
        stmt = stmt.where(Inspection.line == line)
    if product:
        stmt = stmt.where(Inspection.product == product)
    with db.read() as session:
        rows = [(i, im) for i, im in session.execute(stmt).all()]
        return ingest.records_for(session, rows)


def queue_size(
    db: Database, actor: CurrentUser, *, line: str | None = None, product: str | None = None
) -> int:
    """How many flagged parts wait for review (with the same filters as queue)."""
    require(actor, Action.REVIEW)
    stmt = select(func.count(Inspection.id)).where(
        Inspection.flagged.is_(True), Inspection.id.not_in(select(Review.inspection_id))
    )
    if line:
        stmt = stmt.where(Inspection.line == line)
    if product:
        stmt = stmt.where(Inspection.product == product)
    with db.read() as session:
        return session.scalar(stmt) or 0


def class_names_for(db: Database, inspection_id: int) -> list[str]:
    """The classes a reviewer may choose for a part: those of the model that judged it."""
    with db.read() as session:
        insp = session.get(Inspection, inspection_id)
        if insp is None:
            raise NotFound(f"no inspection with id {inspection_id}")
        return _class_names(session, insp)


def _class_names(session: Session, insp: Inspection) -> list[str]:
    model = session.get(Model, insp.model_id) if insp.model_id is not None else None
    if model is not None:
        return [str(c) for c in model.class_names]
    return sorted({str(k) for k in (insp.probabilities or {})} | {insp.predicted_class})


def _format_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def record_review(
    db: Database,
    actor: CurrentUser,
    inspection_id: int,
    *,
    true_class: str,
    disposition: str,
    note: str | None,
    expected_version: int,
) -> ReviewEntry:
    """Save a decision if nobody else saved one since the reviewer loaded the part.

    expected_version is the part's review_version as the reviewer saw it. The check and the
    increment are one conditional UPDATE in the write transaction, so of two reviewers saving
    the same version exactly one succeeds; the other gets Conflict and nothing is written.
    """
    require(actor, Action.REVIEW)
    if actor.id is None:
        raise ValidationError("reviews are recorded against a user account; log in to review")
    disposition = str(disposition).strip().lower()
    if disposition not in DISPOSITIONS:
        raise ValidationError(
            f"disposition must be one of {', '.join(DISPOSITIONS)}, not {disposition!r}"
        )
    text = None if note is None else str(note).strip()
    if text and len(text) > MAX_NOTE_LENGTH:
        raise ValidationError(f"note must be at most {MAX_NOTE_LENGTH} characters")
    with db.write() as session:
        insp = session.get(Inspection, inspection_id)
        if insp is None:
            raise NotFound(f"no inspection with id {inspection_id}")
        classes = _class_names(session, insp)
        if true_class not in classes:
            raise ValidationError(
                f"true class {true_class!r} is not one of the model's classes: {', '.join(classes)}"
            )
        result = session.execute(
            update(Inspection)
            .where(Inspection.id == inspection_id, Inspection.review_version == expected_version)
            .values(review_version=Inspection.review_version + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise _conflict(session, inspection_id)
        row = Review(
            inspection_id=inspection_id,
            reviewer_id=actor.id,
            true_class=true_class,
            disposition=disposition,
            note=text or None,
            version=expected_version + 1,
        )
        session.add(row)
        session.flush()
        record_audit(
            session,
            actor,
            action="part_reviewed",
            entity="inspection",
            entity_id=inspection_id,
            details={
                "review_id": row.id,
                "version": row.version,
                "predicted_class": insp.predicted_class,
                "true_class": true_class,
                "disposition": disposition,
                "note": row.note,
            },
        )
        return _entry(row, actor.username)


def _conflict(session: Session, inspection_id: int) -> Conflict:
    latest = session.execute(
        select(Review, User.username)
        .outerjoin(User, User.id == Review.reviewer_id)
        .where(Review.inspection_id == inspection_id)
        .order_by(Review.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        return Conflict(f"part {inspection_id} changed while you were looking; reload")
    review, username = latest
    return Conflict(
        f"part {inspection_id} was reviewed by {username or 'another user'} at "
        f"{_format_time(review.created_at)} ({review.true_class}, {review.disposition}) "
        "while you were looking; reload"
    )


def history(db: Database, inspection_id: int) -> list[ReviewEntry]:
    """Every decision on a part, newest first (the first is the current one)."""
    with db.read() as session:
        if session.get(Inspection, inspection_id) is None:
            raise NotFound(f"no inspection with id {inspection_id}")
        rows = session.execute(
            select(Review, User.username)
            .outerjoin(User, User.id == Review.reviewer_id)
            .where(Review.inspection_id == inspection_id)
            .order_by(Review.id.desc())
        ).all()
        return [_entry(r, u) for r, u in rows]


def _start_of_day(now: datetime, timezone: str) -> datetime:
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    local = now.astimezone(tz)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC)


def reviewer_stats(
    db: Database, actor: CurrentUser, *, timezone: str = "UTC", now: datetime | None = None
) -> ReviewerStats:
    """Decisions the user made today (plant-local day), agreement with the model, total."""
    if actor.id is None:
        return ReviewerStats(reviewed_today=0, agreement=None, total=0)
    start = _start_of_day(now or utcnow(), timezone)
    with db.read() as session:
        mine = Review.reviewer_id == actor.id
        total = session.scalar(select(func.count(Review.id)).where(mine)) or 0
        today = (
            session.scalar(
                select(func.count(Review.id)).where(
                    mine, Review.created_at >= start, Review.created_at < start + timedelta(days=1)
                )
            )
            or 0
        )
        agreed = (
            session.scalar(
                select(func.count(Review.id))
                .join(Inspection, Inspection.id == Review.inspection_id)
                .where(mine, Review.true_class == Inspection.predicted_class)
            )
            or 0
        )
    return ReviewerStats(
        reviewed_today=today, agreement=agreed / total if total else None, total=total
    )
