"""Inspections: the record pages show, the row -> record mapper, listing, inserting a chunk,
heatmap backfill and watcher look-ups, and the counts of the plant overview. Callers own the
transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from db.models import Image, Inspection, Model, Review, TrainingJob, User


@dataclass(frozen=True)
class InspectionRecord:
    """One inspected part as pages and the CLI show it (paths are relative to images_dir)."""

    id: int
    image_id: int | None
    source_name: str | None
    captured_at: datetime
    line: str | None
    station: str | None
    product: str | None
    lot: str | None
    serial: str | None
    model_id: int | None
    predicted_class: str
    confidence: float
    probabilities: dict[str, float]
    is_defect: bool
    flagged: bool
    flag_reason: str | None
    flag_rule_id: int | None
    heatmap_path: str | None
    review_version: int
    latency_ms: float | None
    reviewed: bool
    true_class: str | None
    disposition: str | None
    image_sha256: str | None = None
    image_path: str | None = None
    width: int | None = None
    height: int | None = None
    reviewer: str | None = None
    reviewed_at: datetime | None = None
    is_demo: bool = False
    created_at: datetime | None = None


@dataclass(frozen=True)
class NewInspection:
    """One judged part to record; its image (by SHA-256) is recorded in the same transaction."""

    image_sha256: str
    source_name: str
    captured_at: datetime
    line: str | None
    station: str | None
    product: str | None
    lot: str | None
    serial: str | None
    model_id: int
    predicted_class: str
    confidence: float
    probabilities: dict[str, float]
    is_defect: bool
    flagged: bool
    flag_reason: str | None
    flag_rule_id: int | None
    heatmap_path: str | None
    latency_ms: float


@dataclass(frozen=True)
class MissingHeatmap:
    """A flagged part recorded without its Grad-CAM map."""

    inspection_id: int
    predicted_class: str
    image_path: str


def to_record(
    insp: Inspection, image: Image | None, review: Review | None, reviewer: str | None
) -> InspectionRecord:
    """The record of an inspection row, its image row and its newest review (if any)."""
    return InspectionRecord(
        id=insp.id,
        image_id=insp.image_id,
        source_name=insp.source_name,
        captured_at=insp.captured_at,
        line=insp.line,
        station=insp.station,
        product=insp.product,
        lot=insp.lot,
        serial=insp.serial,
        model_id=insp.model_id,
        predicted_class=insp.predicted_class,
        confidence=float(insp.confidence),
        probabilities={str(k): float(v) for k, v in (insp.probabilities or {}).items()},
        is_defect=bool(insp.is_defect),
        flagged=bool(insp.flagged),
        flag_reason=insp.flag_reason,
        flag_rule_id=insp.flag_rule_id,
        heatmap_path=insp.heatmap_path,
        review_version=insp.review_version,
        latency_ms=insp.latency_ms,
        reviewed=review is not None,
        true_class=None if review is None else review.true_class,
        disposition=None if review is None else review.disposition,
        image_sha256=None if image is None else image.sha256,
        image_path=None if image is None else image.stored_path,
        width=None if image is None else image.width,
        height=None if image is None else image.height,
        reviewer=reviewer,
        reviewed_at=None if review is None else review.created_at,
        is_demo=bool(insp.is_demo),
        created_at=insp.created_at,
    )


def records_for(
    session: Session, rows: Sequence[tuple[Inspection, Image | None]]
) -> list[InspectionRecord]:
    """InspectionRecords for loaded rows, with each part's newest review (one extra query)."""
    ids = [insp.id for insp, _ in rows]
    latest: dict[int, tuple[Review, str | None]] = {}
    if ids:
        for review, username in session.execute(
            select(Review, User.username)
            .outerjoin(User, User.id == Review.reviewer_id)
            .where(Review.inspection_id.in_(ids))
            .order_by(Review.id)
        ).all():
            latest[review.inspection_id] = (review, username)
    out = []
    for insp, image in rows:
        found = latest.get(insp.id)
        if found is None:
            out.append(to_record(insp, image, None, None))
        else:
            out.append(to_record(insp, image, found[0], found[1]))
    return out


def list_inspections(
    session: Session,
    *,
    limit: int,
    flagged_only: bool = False,
    line: str | None = None,
    product: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[InspectionRecord]:
    """Newest inspections first, optionally only flagged ones, by line, product and time."""
    stmt = (
        select(Inspection, Image)
        .outerjoin(Image, Image.id == Inspection.image_id)
        .order_by(Inspection.captured_at.desc(), Inspection.id.desc())
        .limit(max(1, int(limit)))
    )
    if flagged_only:
        stmt = stmt.where(Inspection.flagged.is_(True))
    if line:
        stmt = stmt.where(Inspection.line == line)
    if product:
        stmt = stmt.where(Inspection.product == product)
    if since is not None:
        stmt = stmt.where(Inspection.captured_at >= since)
    if until is not None:
        stmt = stmt.where(Inspection.captured_at < until)
    rows = [(i, im) for i, im in session.execute(stmt).all()]
    return records_for(session, rows)


def get_inspection(session: Session, inspection_id: int) -> InspectionRecord | None:
    """One inspection by id, with its newest review; None when there is none."""
    row = session.execute(
        select(Inspection, Image)
        .outerjoin(Image, Image.id == Inspection.image_id)
        .where(Inspection.id == inspection_id)
    ).first()
    if row is None:
        return None
    return records_for(session, [(row[0], row[1])])[0]


def add_inspections(
    session: Session, parts: Sequence[NewInspection], images: Mapping[str, Image]
) -> list[InspectionRecord]:
    """Insert one row per part (images: the parts' image rows by hash); records in order."""
    rows: list[tuple[Inspection, Image]] = []
    for part in parts:
        image = images[part.image_sha256]
        insp = Inspection(
            image_id=image.id,
            source_name=part.source_name,
            captured_at=part.captured_at,
            line=part.line,
            station=part.station,
            product=part.product,
            lot=part.lot,
            serial=part.serial,
            model_id=part.model_id,
            predicted_class=part.predicted_class,
            confidence=part.confidence,
            probabilities=part.probabilities,
            is_defect=part.is_defect,
            flagged=part.flagged,
            flag_reason=part.flag_reason,
            flag_rule_id=part.flag_rule_id,
            heatmap_path=part.heatmap_path,
            latency_ms=part.latency_ms,
            review_version=0,
        )
        session.add(insp)
        rows.append((insp, image))
    session.flush()
    return [to_record(insp, image, None, None) for insp, image in rows]


def missing_heatmaps(session: Session, model_id: int, limit: int) -> list[MissingHeatmap]:
    """Flagged parts this model judged that have no heatmap yet, oldest first."""
    rows = session.execute(
        select(Inspection.id, Inspection.predicted_class, Image.stored_path)
        .join(Image, Image.id == Inspection.image_id)
        .where(
            Inspection.flagged.is_(True),
            Inspection.heatmap_path.is_(None),
            Inspection.model_id == model_id,
        )
        .order_by(Inspection.id)
        .limit(limit)
    ).all()
    return [MissingHeatmap(i, cls, path) for i, cls, path in rows]


def set_heatmap_path(session: Session, inspection_id: int, path: str) -> None:
    """Point a part at its heatmap, unless another run already gave it one."""
    session.execute(
        update(Inspection)
        .where(Inspection.id == inspection_id, Inspection.heatmap_path.is_(None))
        .values(heatmap_path=path)
    )


def recorded_since(session: Session, sha256: str, source_name: str, since: datetime) -> bool:
    """Whether an inspection of this image under this name was recorded at or after since."""
    hit = session.scalar(
        select(Inspection.id)
        .join(Image, Image.id == Inspection.image_id)
        .where(
            Image.sha256 == sha256,
            Inspection.source_name == source_name,
            Inspection.created_at >= since,
        )
        .limit(1)
    )
    return hit is not None


def awaiting_review() -> list[ColumnElement[bool]]:
    """The review queue's rule: flagged, and nobody has reviewed the part yet."""
    return [Inspection.flagged.is_(True), Inspection.id.not_in(select(Review.inspection_id))]


def overview_counts(session: Session, since: datetime) -> dict[str, Any]:
    """Counts for the plant overview: inspections and flags since a time, open reviews, jobs."""
    inspected = session.scalar(
        select(func.count(Inspection.id)).where(Inspection.captured_at >= since)
    )
    flagged = session.scalar(
        select(func.count(Inspection.id)).where(
            Inspection.captured_at >= since, Inspection.flagged.is_(True)
        )
    )
    defects = session.scalar(
        select(func.count(Inspection.id)).where(
            Inspection.captured_at >= since, Inspection.is_defect.is_(True)
        )
    )
    open_reviews = session.scalar(select(func.count(Inspection.id)).where(*awaiting_review()))
    running = session.scalar(
        select(func.count(TrainingJob.id)).where(TrainingJob.status.in_(("queued", "running")))
    )
    active = session.scalar(select(Model).where(Model.status == "active"))
    return {
        "inspected": inspected or 0,
        "flagged": flagged or 0,
        "defects": defects or 0,
        "open_reviews": open_reviews or 0,
        "jobs_waiting_or_running": running or 0,
        "active_model": None if active is None else f"#{active.id} {active.name}",
    }
