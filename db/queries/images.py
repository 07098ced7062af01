"""Stored images: rows by content hash, inserts, and the paths rows point at in the image store.
Callers own the transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Image, Inspection


@dataclass(frozen=True)
class NewImage:
    """An image file already written to the store, to be recorded once by its SHA-256."""

    sha256: str
    stored_path: str
    size_bytes: int
    format: str
    width: int
    height: int


def images_by_sha(session: Session, shas: Iterable[str]) -> dict[str, Image]:
    """The image rows with these content hashes, by hash (missing ones are left out)."""
    wanted = sorted(set(shas))
    if not wanted:
        return {}
    rows = session.scalars(select(Image).where(Image.sha256.in_(wanted))).all()
    return {row.sha256: row for row in rows}


def ensure_images(session: Session, new: Iterable[NewImage]) -> dict[str, Image]:
    """Rows for these images by hash: existing ones looked up, the others inserted (flushed).

    Two processes storing the same new image race on the unique hash: the loser gets an
    IntegrityError at flush and retries its transaction, then finds the winner's row.
    """
    pending: dict[str, NewImage] = {}
    for n in new:
        pending.setdefault(n.sha256, n)
    by_sha = images_by_sha(session, pending)
    for sha, n in pending.items():
        if sha not in by_sha:
            row = Image(
                sha256=n.sha256,
                stored_path=n.stored_path,
                size_bytes=n.size_bytes,
                format=n.format,
                width=n.width,
                height=n.height,
            )
            session.add(row)
            by_sha[sha] = row
    session.flush()
    return by_sha


def referenced_paths(session: Session) -> set[str]:
    """Every image-store path a row points at: stored images and Grad-CAM maps."""
    used = set(session.scalars(select(Image.stored_path)).all())
    used |= {
        p
        for p in session.scalars(
            select(Inspection.heatmap_path).where(Inspection.heatmap_path.is_not(None))
        ).all()
        if p
    }
    return used
