"""Review queries on real migrated databases (SQLite; PostgreSQL marked): the queue, the guarded
version claim (also under two concurrent transactions), history and a reviewer's counts."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from db.engine import Database
from db.models import Inspection, Model, Review, User
from db.queries import reviews as review_queries
from db.queries.reviews import ReviewEntry

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def _user(database: Database, name: str) -> int:
    with database.write() as s:
        row = User(username=name, password_hash="x", role="reviewer")
        s.add(row)
        s.flush()
        return row.id


def _model(database: Database) -> int:
    with database.write() as s:
        row = Model(
            name="m",
            architecture="defectnet",
            class_names=["ok", "pit", "scratch"],
            artifact_path="/m",
            artifact_sha256="0" * 64,
            status="active",
        )
        s.add(row)
        s.flush()
        return row.id


def _part(
    database: Database,
    minutes: int,
    confidence: float,
    *,
    flagged: bool = True,
    line: str = "L1",
    product: str = "pump",
    model_id: int | None = None,
) -> int:
    with database.write() as s:
        row = Inspection(
            captured_at=T0 + timedelta(minutes=minutes),
            line=line,
            product=product,
            model_id=model_id,
            predicted_class="scratch",
            confidence=confidence,
            probabilities={"ok": 1 - confidence, "scratch": confidence},
            is_defect=True,
            flagged=flagged,
        )
        s.add(row)
        s.flush()
        return row.id


def _review(
    database: Database, part: int, by: int, name: str, true_class: str = "ok", version: int = 0
) -> ReviewEntry:
    with database.write() as s:
        assert review_queries.claim_review_version(s, part, version)
        return review_queries.add_review(
            s,
            inspection_id=part,
            reviewer_id=by,
            username=name,
            true_class=true_class,
            disposition="accept",
            note=None,
            version=version + 1,
        )


def test_the_queue_holds_flagged_unreviewed_parts_in_either_order(database: Database) -> None:
    rita = _user(database, "rita")
    old_sure = _part(database, 0, 0.95)
    new_unsure = _part(database, 10, 0.55)
    mid = _part(database, 5, 0.7, line="L2", product="valve")
    _part(database, 1, 0.99, flagged=False)
    reviewed = _part(database, 2, 0.6)
    _review(database, reviewed, rita, "rita")

    def ids(**kw: object) -> list[int]:
        args: dict = {"least_confident_first": False, "line": None, "product": None, "limit": 10}
        with database.read() as s:
            return [r.id for r in review_queries.unreviewed_flagged(s, **{**args, **kw})]

    assert ids() == [old_sure, mid, new_unsure]
    assert ids(least_confident_first=True) == [new_unsure, mid, old_sure]
    assert ids(line="L2") == [mid] and ids(product="pump") == [old_sure, new_unsure]
    assert ids(limit=1) == [old_sure]
    with database.read() as s:
        assert review_queries.count_unreviewed_flagged(s, line=None, product=None) == 3
        assert review_queries.count_unreviewed_flagged(s, line="L1", product="pump") == 2
        assert review_queries.count_unreviewed_flagged(s, line="L9", product=None) == 0


def test_review_target_names_the_classes_of_the_judging_model(database: Database) -> None:
    model = _model(database)
    judged = _part(database, 0, 0.8, model_id=model)
    orphan = _part(database, 1, 0.8)
    with database.read() as s:
        target = review_queries.review_target(s, judged)
        assert target is not None and target.model_class_names == ["ok", "pit", "scratch"]
        assert target.predicted_class == "scratch"
        bare = review_queries.review_target(s, orphan)
        assert bare is not None and bare.model_class_names is None
        assert set(bare.probabilities) == {"ok", "scratch"}
        assert review_queries.review_target(s, 999) is None


def test_a_version_is_claimed_once_and_history_is_newest_first(database: Database) -> None:
    rita, tom = _user(database, "rita"), _user(database, "tom")
    part = _part(database, 0, 0.6)
    with database.read() as s:
        assert review_queries.latest_review(s, part) is None
    first = _review(database, part, rita, "rita", "ok")
    with database.write() as s:
        assert not review_queries.claim_review_version(s, part, 0)  # someone saved version 1
    second = _review(database, part, tom, "tom", "pit", version=1)
    with database.read() as s:
        assert review_queries.review_history(s, part) == [second, first]
        assert review_queries.latest_review(s, part) == second
        assert (second.reviewer, second.version, second.true_class) == ("tom", 2, "pit")
        assert s.get(Inspection, part).review_version == 2  # type: ignore[union-attr]


def test_two_transactions_claiming_one_version_let_exactly_one_win(database: Database) -> None:
    """The second writer waits for the first (row lock on PostgreSQL, the write lock on SQLite),
    then finds the version moved on and claims nothing."""
    part = _part(database, 0, 0.6)
    second: list[bool] = []

    def claim_in_other_transaction() -> None:
        with database.write() as s:
            second.append(review_queries.claim_review_version(s, part, 0))

    with database.write() as s:
        assert review_queries.claim_review_version(s, part, 0)
        other = threading.Thread(target=claim_in_other_transaction)
        other.start()
        time.sleep(0.5)  # the other transaction is now waiting on ours
        assert second == []
    other.join(timeout=30)
    assert second == [False]
    with database.read() as s:
        assert s.get(Inspection, part).review_version == 1  # type: ignore[union-attr]


def test_a_reviewers_counts(database: Database) -> None:
    rita, tom = _user(database, "rita"), _user(database, "tom")
    parts = [_part(database, i, 0.6) for i in range(4)]
    _review(database, parts[0], rita, "rita", "scratch")  # agrees with the model
    _review(database, parts[1], rita, "rita", "ok")
    _review(database, parts[2], tom, "tom", "scratch")
    with database.write() as s:  # move one of rita's decisions to the day before
        row = s.get_one(Review, 2)
        row.created_at = T0 - timedelta(days=1)
    with database.read() as s:
        assert review_queries.count_reviews(s, rita) == 2
        assert review_queries.count_reviews(s, rita, since=T0) == 1
        assert review_queries.count_reviews(s, rita, before=T0) == 1
        assert review_queries.count_reviews(s, rita, since=T0, before=T0) == 0
        assert review_queries.count_agreements(s, rita) == 1
        assert review_queries.count_agreements(s, tom) == 1
