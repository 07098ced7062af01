"""The loop back to training: a dataset snapshot made from reviewed parts.

The newest review of each image gives its label; optionally an existing dataset is merged in.
The images are laid out as class folders with a split file next to them and go through the
normal import, so the result is validated, deduplicated, health-checked and registered.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.datasets import service
from core.datasets.snapshot import DatasetSnapshot
from core.datasets.splits import write_split_file
from core.errors import DatasetError
from db.engine import Database
from db.queries.catalog import DatasetRecord
from db.queries.reviews import ReviewedImage, reviewed_images

# Share of reviewed images that go to the validation split of a snapshot made from reviews.
REVIEW_VAL_FRACTION = 0.2


def _safe_class_dir(name: str) -> str:
    text = str(name).strip()
    if (
        not text
        or text.startswith(".")
        or any(ch in text for ch in "/\\\x00")
        or len(text.encode()) > 200
    ):
        raise DatasetError(f"class name {name!r} cannot be a folder name")
    return text


def _review_split(sha: str) -> str:
    """Deterministic train/val for a reviewed image: the same image always lands on one side."""
    rank = int(hashlib.sha256(f"reviews:{sha}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "val" if rank < REVIEW_VAL_FRACTION else "train"


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)


def _newest_labels(reviewed: list[ReviewedImage]) -> dict[str, tuple[str, str]]:
    """sha256 -> (true class, stored path): a part inspected or reviewed twice has one label."""
    labels: dict[str, tuple[str, str]] = {}
    for r in reviewed:  # oldest review first, so the newest one stays
        labels[r.image_sha256] = (r.true_class, r.stored_path)
    return labels


def _check_classes(
    labels: dict[str, tuple[str, str]], merged: DatasetSnapshot | None, since: datetime | None
) -> None:
    classes = {c for c, _ in labels.values()}
    if merged is not None:
        classes |= {e.cls for e in merged.entries}
    if not labels:
        raise DatasetError("no reviewed parts" + (" since then" if since else "") + " yet")
    if len(classes) < 2:
        raise DatasetError(
            f"reviewed parts cover only {', '.join(sorted(classes))}; "
            "a dataset needs at least 2 classes (merge with an existing dataset)"
        )


def _lay_out(
    settings: Settings,
    root: Path,
    labels: dict[str, tuple[str, str]],
    merged: DatasetSnapshot | None,
) -> list[tuple[str, str]]:
    """Link every image into root/<class>/ and return its (file, split) row for the split file."""
    rows: list[tuple[str, str]] = []
    if merged is not None:
        for e in merged.entries:
            if e.sha256 in labels:
                continue  # the reviewer's label is newer knowledge
            rel = f"{_safe_class_dir(e.cls)}/{e.sha256}{Path(e.file).suffix}"
            _link_or_copy(merged.path / e.file, root / rel)
            rows.append((rel, e.split))
    for sha, (cls, stored) in labels.items():
        rel = f"{_safe_class_dir(cls)}/{sha}{Path(stored).suffix}"
        src = settings.images_dir / stored
        if not src.is_file():
            raise DatasetError(f"stored image {stored} is missing; run the orphan check")
        _link_or_copy(src, root / rel)
        rows.append((rel, _review_split(sha)))
    return rows


def _source_label(since: datetime | None, merge_dataset_id: int | None) -> str:
    text = "reviews"
    if since is not None:
        text += f" since {since.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}"
    if merge_dataset_id is not None:
        text += f" + dataset {merge_dataset_id}"
    return text


def snapshot_from_reviews(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    name: str,
    *,
    merge_dataset_id: int | None = None,
    since: datetime | None = None,
) -> DatasetRecord:
    """Register a dataset made from reviewed parts (newest decision per image gives the label).

    With merge_dataset_id the existing snapshot's images keep their split and label unless a
    reviewer labelled the same image differently (the review wins); reviewed images are split
    train/val deterministically by content. The result goes through the normal dataset import,
    so it is validated, deduplicated, health-checked and appears on the training page.
    """
    require(actor, Action.MANAGE_DATASETS)
    with db.read() as session:
        labels = _newest_labels(reviewed_images(session, since=since))
    merged = None
    if merge_dataset_id is not None:
        merged = service.load_dataset(db, actor, merge_dataset_id)[1]
    _check_classes(labels, merged, since)
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".reviews-", dir=settings.datasets_dir))
    try:
        root = tmp / "src"
        split_file = tmp / "splits.csv"
        write_split_file(split_file, _lay_out(settings, root, labels, merged))
        record, _snap, _created = service.import_dataset(
            db,
            settings,
            actor,
            root,
            name,
            split_file=split_file,
            source_label=_source_label(since, merge_dataset_id),
        )
        return record
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
