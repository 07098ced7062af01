"""Reviews: what a dataset made from reviews is built from (the reviewed images and their labels).
Callers own the transaction."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Image, Inspection, Review

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
