"""Reviews: the queue of flagged parts nobody has reviewed, decisions guarded by the part's review
version, each part's history, a reviewer's counts, and the reviewed images a dataset is made
from. Callers own the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, func, select, update
from sqlalchemy.orm import Session

from db.models import Image, Inspection, Model, Review, User
from db.queries.inspections import InspectionRecord, awaiting_review, records_for


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
class ReviewTarget:
    """The part a reviewer decides on: what the model said, and the classes of that model
    (None when the part names no model, or the model is gone)."""

    inspection_id: int
    predicted_class: str
    probabilities: dict[str, Any]
    model_class_names: list[str] | None


def to_review_entry(row: Review, username: str | None) -> ReviewEntry:
    """The record of a review row, with the reviewer's username."""
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


# --------------------------------------------------------------------------- the queue


def _waiting(line: str | None, product: str | None) -> list[ColumnElement[bool]]:
    """Flagged, never reviewed, and on the line / of the product when given."""
    where = awaiting_review()
    if line:
        where.append(Inspection.line == line)
    if product:
        where.append(Inspection.product == product)
    return where


def unreviewed_flagged(
    session: Session,
    *,
    least_confident_first: bool,
    line: str | None,
    product: str | None,
    limit: int,
) -> list[InspectionRecord]:
    """Flagged parts nobody has reviewed, oldest (or least confident) first."""
    order = (
        (Inspection.confidence, Inspection.captured_at, Inspection.id)
        if least_confident_first
        else (Inspection.captured_at, Inspection.id)
    )
    stmt = (
        select(Inspection, Image)
        .outerjoin(Image, Image.id == Inspection.image_id)
        .where(*_waiting(line, product))
        .order_by(*order)
        .limit(limit)
    )
    return records_for(session, [(i, im) for i, im in session.execute(stmt).all()])


def count_unreviewed_flagged(session: Session, *, line: str | None, product: str | None) -> int:
    """How many flagged parts nobody has reviewed (same filters as unreviewed_flagged)."""
    return session.scalar(select(func.count(Inspection.id)).where(*_waiting(line, product))) or 0


# --------------------------------------------------------------------------- decisions


def review_target(session: Session, inspection_id: int) -> ReviewTarget | None:
    """The part and the classes of the model that judged it; None when there is no such part."""
    insp = session.get(Inspection, inspection_id)
    if insp is None:
        return None
    model = session.get(Model, insp.model_id) if insp.model_id is not None else None
    return ReviewTarget(
        inspection_id=insp.id,
        predicted_class=insp.predicted_class,
        probabilities=dict(insp.probabilities or {}),
        model_class_names=None if model is None else [str(c) for c in model.class_names],
    )


def claim_review_version(session: Session, inspection_id: int, expected_version: int) -> bool:
    """Move the part's review version from expected_version to the next one.

    One conditional UPDATE: of two transactions that expect the same version exactly one gets
    True; the other gets False and must write nothing.
    """
    result = session.execute(
        update(Inspection)
        .where(Inspection.id == inspection_id, Inspection.review_version == expected_version)
        .values(review_version=Inspection.review_version + 1)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


def add_review(
    session: Session,
    *,
    inspection_id: int,
    reviewer_id: int,
    username: str | None,
    true_class: str,
    disposition: str,
    note: str | None,
    version: int,
) -> ReviewEntry:
    """Insert one decision (its id assigned) and return its record."""
    row = Review(
        inspection_id=inspection_id,
        reviewer_id=reviewer_id,
        true_class=true_class,
        disposition=disposition,
        note=note,
        version=version,
    )
    session.add(row)
    session.flush()
    return to_review_entry(row, username)


def review_history(session: Session, inspection_id: int) -> list[ReviewEntry]:
    """Every decision on a part, newest first (the first is the current one)."""
    rows = session.execute(
        select(Review, User.username)
        .outerjoin(User, User.id == Review.reviewer_id)
        .where(Review.inspection_id == inspection_id)
        .order_by(Review.id.desc())
    ).all()
    return [to_review_entry(r, u) for r, u in rows]


def latest_review(session: Session, inspection_id: int) -> ReviewEntry | None:
    """The current decision on a part, or None before its first review."""
    row = session.execute(
        select(Review, User.username)
        .outerjoin(User, User.id == Review.reviewer_id)
        .where(Review.inspection_id == inspection_id)
        .order_by(Review.id.desc())
        .limit(1)
    ).first()
    return None if row is None else to_review_entry(row[0], row[1])


# --------------------------------------------------------------------------- a reviewer's work


def count_reviews(
    session: Session,
    reviewer_id: int,
    *,
    since: datetime | None = None,
    before: datetime | None = None,
) -> int:
    """How many decisions the reviewer made, optionally in [since, before)."""
    stmt = select(func.count(Review.id)).where(Review.reviewer_id == reviewer_id)
    if since is not None:
        stmt = stmt.where(Review.created_at >= since)
    if before is not None:
        stmt = stmt.where(Review.created_at < before)
    return session.scalar(stmt) or 0


def count_agreements(session: Session, reviewer_id: int) -> int:
    """How many of the reviewer's decisions kept the class the model predicted."""
    stmt = (
        select(func.count(Review.id))
        .join(Inspection, Inspection.id == Review.inspection_id)
        .where(Review.reviewer_id == reviewer_id, Review.true_class == Inspection.predicted_class)
    )
    return session.scalar(stmt) or 0


# --------------------------------------------------------------------------- the loop to training


@dataclass(frozen=True)
class ReviewedImage:
    """One review decision on a stored image (what a dataset made from reviews is built from)."""

    review_id: int
    true_class: str
    image_sha256: str
    stored_path: str  # relative to the image store


def reviewed_images(session: Session, *, since: datetime | None = None) -> list[ReviewedImage]:
    """Every review of an inspection that has a stored image, oldest review first."""
    stmt = (
        select(Review.id, Review.true_class, Image.sha256, Image.stored_path)
        .join(Inspection, Inspection.id == Review.inspection_id)
        .join(Image, Image.id == Inspection.image_id)
        .order_by(Review.id)
    )
    if since is not None:
        stmt = stmt.where(Review.created_at >= since)
    return [
        ReviewedImage(review_id=rid, true_class=cls, image_sha256=sha, stored_path=path)
        for rid, cls, sha, path in session.execute(stmt).all()
    ]
