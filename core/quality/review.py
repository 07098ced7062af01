"""QA review of flagged parts: the queue, decisions with an optimistic version check, history and
reviewer statistics (the loop back to training is core.datasets.from_reviews).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.orm import Session

from core.auth.audit import record_audit
from core.auth.permissions import Action, CurrentUser, require
from core.errors import Conflict, NotFound, ValidationError
from core.quality import rollup
from db.engine import Database
from db.models import Disposition, utcnow
from db.queries import reviews, rollups
from db.queries.inspections import InspectionRecord
from db.queries.reviews import ReviewEntry, ReviewTarget

QUEUE_ORDERS = ("oldest", "least_confident")
DISPOSITIONS: tuple[str, ...] = tuple(d.value for d in Disposition)
MAX_NOTE_LENGTH = 2000


@dataclass(frozen=True)
class ReviewerStats:
    """A reviewer's work: decisions today, agreement with the model (None before any), total."""

    reviewed_today: int
    agreement: float | None
    total: int


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
    with db.read() as session:
        return reviews.unreviewed_flagged(
            session,
            least_confident_first=order == "least_confident",
            line=line,
            product=product,
            limit=max(1, int(limit)),
        )


def queue_size(
    db: Database, actor: CurrentUser, *, line: str | None = None, product: str | None = None
) -> int:
    """How many flagged parts wait for review (with the same filters as queue)."""
    require(actor, Action.REVIEW)
    with db.read() as session:
        return reviews.count_unreviewed_flagged(session, line=line, product=product)


def _target(session: Session, inspection_id: int) -> ReviewTarget:
    target = reviews.review_target(session, inspection_id)
    if target is None:
        raise NotFound(f"no inspection with id {inspection_id}")
    return target


def _class_names(target: ReviewTarget) -> list[str]:
    if target.model_class_names is not None:
        return target.model_class_names
    return sorted({str(k) for k in target.probabilities} | {target.predicted_class})


def class_names_for(db: Database, actor: CurrentUser, inspection_id: int) -> list[str]:
    """The classes a reviewer may choose for a part: those of the model that judged it."""
    require(actor, Action.REVIEW)
    with db.read() as session:
        return _class_names(_target(session, inspection_id))


def _format_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _checked_decision(disposition: str, note: str | None) -> tuple[str, str | None]:
    """The disposition in canonical form and the note stripped (None when blank)."""
    disposition = str(disposition).strip().lower()
    if disposition not in DISPOSITIONS:
        raise ValidationError(
            f"disposition must be one of {', '.join(DISPOSITIONS)}, not {disposition!r}"
        )
    text = None if note is None else str(note).strip()
    if text and len(text) > MAX_NOTE_LENGTH:
        raise ValidationError(f"note must be at most {MAX_NOTE_LENGTH} characters")
    return disposition, text or None


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
    disposition, text = _checked_decision(disposition, note)
    with db.write() as session:
        target = _target(session, inspection_id)
        classes = _class_names(target)
        if true_class not in classes:
            raise ValidationError(
                f"true class {true_class!r} is not one of the model's classes: {', '.join(classes)}"
            )
        before = rollups.cells_of_parts(session, [inspection_id], rollup.FALLBACK)
        if not reviews.claim_review_version(session, inspection_id, expected_version):
            raise _conflict(session, inspection_id)
        entry = reviews.add_review(
            session,
            inspection_id=inspection_id,
            reviewer_id=actor.id,
            username=actor.username,
            true_class=true_class,
            disposition=disposition,
            note=text,
            version=expected_version + 1,
        )
        # The part moves to its reviewed class's rollup cell in this same transaction.
        after = rollups.cells_of_parts(session, [inspection_id], rollup.FALLBACK)
        rollups.apply(session, rollups.moved(before, after))
        record_audit(
            session,
            actor,
            action="part_reviewed",
            entity="inspection",
            entity_id=inspection_id,
            details={
                "review_id": entry.id,
                "version": entry.version,
                "predicted_class": target.predicted_class,
                "true_class": true_class,
                "disposition": disposition,
                "note": entry.note,
            },
        )
        return entry


def _conflict(session: Session, inspection_id: int) -> Conflict:
    latest = reviews.latest_review(session, inspection_id)
    if latest is None:
        return Conflict(f"part {inspection_id} changed while you were looking; reload")
    return Conflict(
        f"part {inspection_id} was reviewed by {latest.reviewer} at "
        f"{_format_time(latest.created_at)} ({latest.true_class}, {latest.disposition}) "
        "while you were looking; reload"
    )


def history(db: Database, actor: CurrentUser, inspection_id: int) -> list[ReviewEntry]:
    """Every decision on a part, newest first (the first is the current one); reviewers and
    up, since it names who decided what."""
    require(actor, Action.REVIEW)
    with db.read() as session:
        _target(session, inspection_id)
        return reviews.review_history(session, inspection_id)


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
        total = reviews.count_reviews(session, actor.id)
        today = reviews.count_reviews(
            session, actor.id, since=start, before=start + timedelta(days=1)
        )
        agreed = reviews.count_agreements(session, actor.id)
    return ReviewerStats(
        reviewed_today=today, agreement=agreed / total if total else None, total=total
    )
