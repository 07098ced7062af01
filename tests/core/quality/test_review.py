"""Review: queue, optimistic conflicts, history, audit and statistics (snapshots from reviews:
tests/core/datasets/test_from_reviews.py)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from core.auth import permissions
from core.config import Settings
from core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from core.quality import flag_rules, ingest, inspections, review
from core.quality.ingest import Traceability
from core.vision.classifier import Classifier
from db.engine import Database
from db.models import AuditEntry, Review, Role
from db.queries.catalog import ModelRecord
from db.queries.inspections import InspectionRecord
from tests.core.inspection_support import png, register_active_model

Active = tuple[ModelRecord, Classifier]


@pytest.fixture
def active(db: Database, settings: Settings) -> Active:
    register_active_model(db, settings)
    return ingest.load_active(db, settings)


def _flag_everything(db: Database) -> None:
    flag_rules.set_rule(db, permissions.SYSTEM, "*", ["ok", "scratch"], 1.0)


def _ingest(
    db: Database, settings: Settings, active: Active, n: int, seed: int = 0, **trace: Any
) -> list[InspectionRecord]:
    files = [(f"part{seed + i}.png", png(seed + i)) for i in range(n)]
    return ingest.ingest(
        db, settings, permissions.SYSTEM, files, Traceability(**trace), classifier=active
    ).processed


def _audit(db: Database, action: str) -> list[AuditEntry]:
    with db.read() as s:
        return list(
            s.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            ).all()
        )


def test_queue_lists_flagged_unreviewed_parts_in_order(
    db: Database, settings: Settings, make_user: Any, active: Active
) -> None:
    rev, _ = make_user("rita", Role.REVIEWER)
    viewer, _ = make_user("vera", Role.VIEWER)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    flag_rules.set_rule(db, permissions.SYSTEM, "clean", ["ok", "scratch"], 0.01)
    _flag_everything(db)
    recs = []
    for i in range(4):
        recs += _ingest(
            db,
            settings,
            active,
            1,
            seed=10 * i,
            line=f"L{i % 2}",
            captured_at=t0 + timedelta(minutes=i),
        )
    _ingest(db, settings, active, 1, seed=99, product="clean")  # not flagged: never queued

    oldest = review.queue(db, rev)
    assert [r.id for r in oldest] == [r.id for r in recs]
    least = review.queue(db, rev, order="least_confident")
    assert [r.confidence for r in least] == sorted(r.confidence for r in recs)
    assert [r.line for r in review.queue(db, rev, line="L1")] == ["L1", "L1"]
    assert review.queue_size(db, rev) == 4 and review.queue_size(db, rev, line="L0") == 2
    assert len(review.queue(db, rev, limit=2)) == 2
    with pytest.raises(ValidationError):
        review.queue(db, rev, order="newest")
    with pytest.raises(PermissionDenied):
        review.queue(db, viewer)

    first = recs[0]
    review.record_review(
        db, rev, first.id, true_class="ok", disposition="accept", note=None, expected_version=0
    )
    assert first.id not in [r.id for r in review.queue(db, rev)]
    done = inspections.get_inspection(db, permissions.SYSTEM, first.id)
    assert done.reviewed and done.true_class == "ok" and done.disposition == "accept"
    assert done.reviewer == "rita" and done.review_version == 1


def test_second_reviewer_with_the_same_version_gets_a_conflict(
    db: Database, settings: Settings, make_user: Any, active: Active
) -> None:
    _flag_everything(db)
    part = _ingest(db, settings, active, 1)[0]
    anna, _ = make_user("anna", Role.REVIEWER)
    ben, _ = make_user("ben", Role.REVIEWER)

    saved = review.record_review(
        db,
        anna,
        part.id,
        true_class="scratch",
        disposition="scrap",
        note="deep",
        expected_version=part.review_version,
    )
    with pytest.raises(Conflict) as err:
        review.record_review(
            db,
            ben,
            part.id,
            true_class="ok",
            disposition="accept",
            note=None,
            expected_version=part.review_version,
        )
    msg = str(err.value)
    assert "anna" in msg and "while you were looking; reload" in msg

    current = inspections.get_inspection(db, permissions.SYSTEM, part.id)
    assert (current.true_class, current.disposition, current.reviewer) == (
        "scratch",
        "scrap",
        "anna",
    )
    assert [e.id for e in review.history(db, permissions.SYSTEM, part.id)] == [saved.id]
    audit = _audit(db, "part_reviewed")
    assert len(audit) == 1 and audit[0].username == "anna"
    assert audit[0].details["true_class"] == "scratch" and audit[0].entity_id == str(part.id)

    # Reloading gives the current version; a re-review is then allowed and kept in history.
    again = review.record_review(
        db,
        ben,
        part.id,
        true_class="ok",
        disposition="rework",
        note="<script>x</script>",
        expected_version=current.review_version,
    )
    hist = review.history(db, permissions.SYSTEM, part.id)
    assert [(e.reviewer, e.true_class, e.version) for e in hist] == [
        ("ben", "ok", 2),
        ("anna", "scratch", 1),
    ]
    assert hist[0] == again and again.note == "<script>x</script>"  # stored verbatim
    assert len(_audit(db, "part_reviewed")) == 2


def test_concurrent_saves_of_one_version_let_exactly_one_through(
    db: Database, settings: Settings, make_user: Any, active: Active
) -> None:
    _flag_everything(db)
    part = _ingest(db, settings, active, 1)[0]
    users = [make_user(f"r{i}", Role.REVIEWER)[0] for i in range(4)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(users))

    def save(user: permissions.CurrentUser) -> None:
        barrier.wait()
        try:
            review.record_review(
                db,
                user,
                part.id,
                true_class="ok",
                disposition="accept",
                note=None,
                expected_version=0,
            )
            outcomes.append("saved")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=save, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "saved"]
    with db.read() as s:
        assert len(s.scalars(select(Review)).all()) == 1
    assert len(_audit(db, "part_reviewed")) == 1


def test_review_is_validated(
    db: Database, settings: Settings, make_user: Any, active: Active
) -> None:
    _flag_everything(db)
    part = _ingest(db, settings, active, 1)[0]
    rev, _ = make_user("rita", Role.REVIEWER)
    viewer, _ = make_user("vera", Role.VIEWER)
    kwargs: dict[str, Any] = {"note": None, "expected_version": 0}
    with pytest.raises(ValidationError, match="not one of the model's classes"):
        review.record_review(db, rev, part.id, true_class="crack", disposition="scrap", **kwargs)
    with pytest.raises(ValidationError, match="disposition"):
        review.record_review(db, rev, part.id, true_class="ok", disposition="ship", **kwargs)
    with pytest.raises(ValidationError, match="note"):
        review.record_review(
            db,
            rev,
            part.id,
            true_class="ok",
            disposition="accept",
            note="n" * 2001,
            expected_version=0,
        )
    with pytest.raises(PermissionDenied):
        review.record_review(db, viewer, part.id, true_class="ok", disposition="accept", **kwargs)
    with pytest.raises(NotFound):
        review.record_review(db, rev, 999, true_class="ok", disposition="accept", **kwargs)
    assert review.history(db, permissions.SYSTEM, part.id) == []
    assert inspections.get_inspection(db, permissions.SYSTEM, part.id).review_version == 0
    assert review.class_names_for(db, permissions.SYSTEM, part.id) == ["ok", "scratch"]
    entry = review.record_review(
        db, rev, part.id, true_class="ok", disposition=" SCRAP ", note="  ", expected_version=0
    )
    assert entry.disposition == "scrap" and entry.note is None


def test_reviewer_stats_count_today_and_agreement(
    db: Database, settings: Settings, make_user: Any, active: Active
) -> None:
    _flag_everything(db)
    parts = _ingest(db, settings, active, 3)
    rev, _ = make_user("rita", Role.REVIEWER)
    other, _ = make_user("otto", Role.REVIEWER)
    assert review.reviewer_stats(db, rev) == review.ReviewerStats(0, None, 0)
    for i, part in enumerate(parts):
        agree = i < 2
        cls = (
            part.predicted_class if agree else ("ok" if part.predicted_class != "ok" else "scratch")
        )
        review.record_review(
            db, rev, part.id, true_class=cls, disposition="accept", note=None, expected_version=0
        )
    stats = review.reviewer_stats(db, rev)
    assert stats.total == 3 and stats.reviewed_today == 3
    assert stats.agreement == pytest.approx(2 / 3)
    assert review.reviewer_stats(db, other).total == 0
    tomorrow = datetime.now(UTC) + timedelta(days=1)
    assert review.reviewer_stats(db, rev, now=tomorrow).reviewed_today == 0


def test_unknown_parts_are_not_found_and_an_empty_queue_is_empty(
    db: Database, make_user: Any
) -> None:
    rev, _ = make_user("rita", Role.REVIEWER)
    with pytest.raises(NotFound):
        review.history(db, permissions.SYSTEM, 999)
    with pytest.raises(NotFound):
        review.class_names_for(db, permissions.SYSTEM, 999)
    assert review.queue(db, rev) == [] and review.queue_size(db, rev) == 0
