"""core.datasets.from_reviews: a dataset made from reviewed parts (the loop back to training)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.auth import permissions
from core.config import Settings
from core.datasets import from_reviews, service
from core.errors import DatasetError, PermissionDenied
from core.quality import flag_rules, ingest, review
from core.quality.ingest import Traceability
from core.registry import catalog
from db.engine import Database
from db.models import Role
from db.queries.inspections import InspectionRecord
from tests.core.inspection_support import png, register_active_model


def _flag_everything(db: Database, classes: tuple[str, ...] = ("ok", "scratch")) -> None:
    flag_rules.set_rule(db, permissions.SYSTEM, "*", list(classes), 1.0)


def _ingest(db: Database, settings: Settings, n: int, seed: int = 0) -> list[InspectionRecord]:
    active = ingest.load_active(db, settings)
    files = [(f"part{seed + i}.png", png(seed + i)) for i in range(n)]
    return ingest.ingest(
        db, settings, permissions.SYSTEM, files, Traceability(), classifier=active
    ).processed


def _review_all(
    db: Database, reviewer: Any, parts: list[InspectionRecord], labels: list[str]
) -> None:
    for part, cls in zip(parts, labels, strict=True):
        review.record_review(
            db,
            reviewer,
            part.id,
            true_class=cls,
            disposition="accept",
            note=None,
            expected_version=0,
        )


def test_snapshot_from_reviews_registers_a_dataset_with_the_reviewed_labels(
    db: Database, settings: Settings, make_user: Any, tiny_dataset: Any
) -> None:
    register_active_model(db, settings, dataset_id=tiny_dataset.id)
    _flag_everything(db)
    parts = _ingest(db, settings, 6, seed=1000)
    rev, _ = make_user("rita", Role.REVIEWER)
    eng, _ = make_user("erin", Role.ENGINEER)
    _review_all(db, rev, parts, ["ok", "scratch", "ok", "scratch", "ok", "scratch"])
    # The newest decision wins: part 0 is re-labelled scratch.
    review.record_review(
        db,
        rev,
        parts[0].id,
        true_class="scratch",
        disposition="scrap",
        note=None,
        expected_version=1,
    )
    with pytest.raises(PermissionDenied):
        from_reviews.snapshot_from_reviews(db, settings, rev, "from reviews")

    record = from_reviews.snapshot_from_reviews(db, settings, eng, "from reviews")
    assert record.counts == {"ok": 2, "scratch": 4}
    assert record in catalog.list_datasets(db, permissions.SYSTEM)  # what the training page lists
    _rec, snap = service.load_dataset(db, permissions.SYSTEM, record.id)
    by_sha = {e.sha256: e.cls for e in snap.entries}
    assert by_sha[str(parts[0].image_sha256)] == "scratch"
    assert by_sha[str(parts[1].image_sha256)] == "scratch"
    assert by_sha[str(parts[2].image_sha256)] == "ok"
    assert {e.split for e in snap.entries} <= {"train", "val"}

    merged = from_reviews.snapshot_from_reviews(
        db, settings, eng, "merged", merge_dataset_id=tiny_dataset.id
    )
    assert merged.num_images == tiny_dataset.num_images + 6
    _rec, msnap = service.load_dataset(db, permissions.SYSTEM, merged.id)
    _rec, tsnap = service.load_dataset(db, permissions.SYSTEM, tiny_dataset.id)
    old_split = {e.sha256: e.split for e in tsnap.entries}
    for e in msnap.entries:
        if e.sha256 in old_split:
            assert e.split == old_split[e.sha256]  # merged images keep their split

    since = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(DatasetError, match="no reviewed parts"):
        from_reviews.snapshot_from_reviews(db, settings, eng, "later", since=since)


def test_snapshot_needs_two_classes(db: Database, settings: Settings, make_user: Any) -> None:
    register_active_model(db, settings)
    _flag_everything(db)
    part = _ingest(db, settings, 1)[0]
    rev, _ = make_user("rita", Role.REVIEWER)
    _review_all(db, rev, [part], ["ok"])
    with pytest.raises(DatasetError, match="at least 2 classes"):
        from_reviews.snapshot_from_reviews(db, settings, permissions.SYSTEM, "one class")
    assert catalog.list_datasets(db, permissions.SYSTEM) == []


def test_class_names_with_commas_quotes_and_newlines_survive_the_split_file(
    db: Database, settings: Settings, make_user: Any
) -> None:
    # The split file is CSV: a class called "scratch, deep" must not become two columns.
    classes = ("ok", "scratch, deep", 'dent "big"\nleft')
    register_active_model(db, settings, class_names=classes)
    _flag_everything(db, classes)
    parts = _ingest(db, settings, 12, seed=2000)
    rev, _ = make_user("rita", Role.REVIEWER)
    labels = [classes[i % 3] for i in range(12)]
    _review_all(db, rev, parts, labels)

    record = from_reviews.snapshot_from_reviews(db, settings, permissions.SYSTEM, "odd names")

    assert record.class_names == sorted(classes)
    assert record.counts == {c: 4 for c in classes}
    _rec, snap = service.load_dataset(db, permissions.SYSTEM, record.id)
    want = {
        str(p.image_sha256): (cls, from_reviews._review_split(str(p.image_sha256)))
        for p, cls in zip(parts, labels, strict=True)
    }
    assert {e.sha256: (e.cls, e.split) for e in snap.entries} == want
    assert {e.split for e in snap.entries} == {"train", "val"}  # both sides are exercised
