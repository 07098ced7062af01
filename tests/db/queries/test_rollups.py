"""The hourly rollup on real migrated databases (SQLite; PostgreSQL marked): after random
ingests, reviews and re-reviews it equals an independent aggregation of the raw rows and a
rebuild; parts judged without a rule use the built-in one; an upgraded database is filled once."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from core.auth.permissions import CurrentUser
from core.quality import review, rollup
from db.engine import Database
from db.models import FlagRule, Inspection, Model, Review, Role, User
from db.queries import rollups
from db.queries.rollups import CellCounts, CellKey

T0 = datetime(2026, 11, 1, 5, 40, tzinfo=UTC)
CLASSES = ["ok", "pit", "scratch"]
PROBS = {c: 1 / 3 for c in CLASSES}


def _setup(database: Database) -> tuple[CurrentUser, int, int]:
    with database.write() as s:
        user = User(username="rita", password_hash="x", role="reviewer")
        model = Model(name="m", architecture="defectnet", class_names=CLASSES, artifact_path="/m",
                      artifact_sha256="0" * 64, status="active")  # fmt: skip
        rule = FlagRule(product="pump", version=1, good_classes=["ok"], min_confidence=0.8)
        s.add_all([user, model, rule])
        s.flush()
        return CurrentUser(id=user.id, username="rita", role=Role.REVIEWER), model.id, rule.id


def _ingest(database: Database, rng: random.Random, n: int, model_id: int, rule_id: int) -> None:
    """Insert n random parts and count them, as core.quality.ingest does, in one transaction."""
    with database.write() as s:
        rows = []
        for _ in range(n):
            predicted = rng.choice(CLASSES)
            confidence = rng.uniform(0.4, 1.0)
            with_rule = rng.random() < 0.7
            limit = 0.8 if with_rule else 0.9
            rows.append(
                Inspection(
                    captured_at=T0 + timedelta(minutes=rng.randrange(0, 600)),
                    line=rng.choice(["L1", "L2", None]),
                    station=rng.choice(["S1", None]),
                    product="pump" if with_rule else rng.choice(["valve", None]),
                    model_id=rng.choice([model_id, None]),
                    predicted_class=predicted,
                    confidence=confidence,
                    probabilities=PROBS,
                    is_defect=predicted != "ok",
                    flagged=predicted != "ok" or confidence < limit,
                    flag_rule_id=rule_id if with_rule else None,
                    review_version=0,
                )
            )
        s.add_all(rows)
        s.flush()
        cells = rollups.cells_of_parts(s, [r.id for r in rows], rollup.FALLBACK)
        rollups.apply(s, cells)


def _review_some(database: Database, rng: random.Random, user: CurrentUser, k: int) -> None:
    with database.read() as s:
        parts = [(i.id, i.review_version) for i in s.query(Inspection).all()]
    for part_id, version in rng.sample(parts, k):
        with database.read() as s:
            version = s.get(Inspection, part_id).review_version  # type: ignore[union-attr]
        review.record_review(database, user, part_id, true_class=rng.choice(CLASSES),
                             disposition="scrap", note=None, expected_version=version)  # fmt: skip


def _independent(database: Database) -> dict[CellKey, CellCounts]:
    """The same counts from the raw rows in plain Python, without db.queries.rollups."""
    out: dict[CellKey, CellCounts] = defaultdict(CellCounts)
    with database.read() as s:
        rules = {r.id: r for r in s.query(FlagRule).all()}
        latest: dict[int, Review] = {}
        for r in s.query(Review).all():
            if r.inspection_id not in latest or r.version > latest[r.inspection_id].version:
                latest[r.inspection_id] = r
        for i in s.query(Inspection).all():
            rule = rules.get(i.flag_rule_id) if i.flag_rule_id else None
            good = rule.good_classes if rule else ["ok"]  # "ok" is what looks_good accepts here
            limit = rule.min_confidence if rule else 0.9
            rev = latest.get(i.id)
            cls = rev.true_class if rev else i.predicted_class
            key = CellKey(
                hour=i.captured_at.replace(minute=0, second=0, microsecond=0),
                line=i.line or "", station=i.station or "", product=i.product or "",
                model_id=i.model_id or 0, class_name=cls, flagged=i.flagged,
                defect=(cls not in good) if rev else i.is_defect, reviewed=rev is not None,
            )  # fmt: skip
            c = out[key]
            c.parts += 1
            c.corrections += int(rev is not None and rev.true_class != i.predicted_class)
            c.unsure += int(i.confidence < limit)
            c.confidence_sum += i.confidence
    return dict(out)


def _same(a: dict[CellKey, CellCounts], b: dict[CellKey, CellCounts]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        assert (x.parts, x.corrections, x.unsure) == (y.parts, y.corrections, y.unsure), key
        assert x.confidence_sum == pytest.approx(y.confidence_sum, abs=1e-9), key


def test_rollup_equals_the_raw_rows_after_random_ingests_reviews_and_re_reviews(
    database: Database,
) -> None:
    user, model_id, rule_id = _setup(database)
    rng = random.Random(7)
    for _ in range(4):
        _ingest(database, rng, 60, model_id, rule_id)
        _review_some(database, rng, user, 25)  # some parts twice or three times: re-reviews
    with database.read() as s:
        incremental = rollups.all_cells(s)
    expected = _independent(database)
    _same(incremental, expected)
    assert sum(c.parts for c in incremental.values()) == 240
    assert any(k.reviewed for k in incremental) and any(c.corrections for c in incremental.values())
    assert rollup.rebuild(database) == len(expected)
    with database.read() as s:
        _same(rollups.all_cells(s), expected)


def test_a_review_moves_its_part_between_cells_and_back(database: Database) -> None:
    user, model_id, rule_id = _setup(database)
    with database.write() as s:
        part = Inspection(captured_at=T0, line="L1", product="pump", model_id=model_id,
                          predicted_class="pit", confidence=0.95, probabilities=PROBS,
                          is_defect=True, flagged=True, flag_rule_id=rule_id)  # fmt: skip
        s.add(part)
        s.flush()
        rollups.apply(s, rollups.cells_of_parts(s, [part.id], rollup.FALLBACK))
        part_id = part.id
    review.record_review(database, user, part_id, true_class="ok", disposition="accept",
                         note=None, expected_version=0)  # fmt: skip
    with database.read() as s:
        cells = rollups.all_cells(s)
    ((key, counts),) = cells.items()
    assert key.hour == datetime(2026, 11, 1, 5, tzinfo=UTC)
    assert (key.class_name, key.defect, key.reviewed, key.flagged) == ("ok", False, True, True)
    assert (counts.parts, counts.corrections, counts.unsure) == (1, 1, 0)
    review.record_review(database, user, part_id, true_class="pit", disposition="scrap",
                         note=None, expected_version=1)  # fmt: skip
    with database.read() as s:
        ((key, counts),) = rollups.all_cells(s).items()
    assert (key.class_name, key.defect, key.reviewed) == ("pit", True, True)
    assert (counts.parts, counts.corrections) == (1, 0)  # the inspector agreed with the model


def test_an_upgraded_database_is_filled_once(database: Database) -> None:
    _user, model_id, rule_id = _setup(database)
    with database.write() as s:  # rows written before the rollup existed
        s.add_all(
            Inspection(captured_at=T0 + timedelta(hours=h), model_id=model_id,
                       predicted_class="scratch", confidence=0.5, probabilities=PROBS,
                       is_defect=True, flagged=True, flag_rule_id=rule_id)
            for h in range(3)
        )  # fmt: skip
    assert rollup.rebuild_if_empty(database) == 3
    assert rollup.rebuild_if_empty(database) is None  # not empty any more: never rebuilt again
    with database.read() as s:
        _same(rollups.all_cells(s), _independent(database))


def test_hours_are_cut_in_utc() -> None:
    t = datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=UTC)
    assert rollups.hour_of(t) == datetime(2026, 3, 29, 1, tzinfo=UTC)
