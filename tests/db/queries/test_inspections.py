"""Inspection and image-store queries on real migrated databases (SQLite; PostgreSQL marked)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from db.engine import Database
from db.models import Inspection, Model, Review, TrainingJob, User
from db.queries import images as image_queries
from db.queries import inspections as inspection_queries
from db.queries.images import NewImage
from db.queries.inspections import NewInspection

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def model_id(database: Database) -> int:
    with database.write() as s:
        row = Model(
            name="m",
            architecture="defectnet",
            class_names=["ok", "scratch"],
            artifact_path="/m",
            artifact_sha256="0" * 64,
            status="active",
        )
        s.add(row)
        s.flush()
        return row.id


def _image(n: int) -> NewImage:
    sha = f"{n:02x}" * 32
    return NewImage(sha, f"{sha[:2]}/{sha}.png", 100 + n, "PNG", 40, 48)


def _part(image: NewImage, model_id: int, **changes: object) -> NewInspection:
    part = NewInspection(
        image_sha256=image.sha256,
        source_name="a.png",
        captured_at=T0,
        line="L1",
        station=None,
        product="pump",
        lot=None,
        serial=None,
        model_id=model_id,
        predicted_class="scratch",
        confidence=0.75,
        probabilities={"ok": 0.25, "scratch": 0.75},
        is_defect=True,
        flagged=True,
        flag_reason="defect: scratch",
        flag_rule_id=None,
        heatmap_path=None,
        latency_ms=1.5,
    )
    return replace(part, **changes)  # type: ignore[arg-type]


def _add(database: Database, parts: list[NewInspection], imgs: list[NewImage]) -> list[int]:
    with database.write() as s:
        rows = image_queries.ensure_images(s, imgs)
        return [r.id for r in inspection_queries.add_inspections(s, parts, rows)]


def test_ensure_images_records_each_content_hash_once(database: Database) -> None:
    a, b = _image(1), _image(2)
    with database.write() as s:
        first = image_queries.ensure_images(s, [a, b, replace(a, stored_path="ignored")])
        ids = {sha: row.id for sha, row in first.items()}
    assert set(ids) == {a.sha256, b.sha256}
    with database.write() as s:
        again = image_queries.ensure_images(s, [b, _image(3)])
        assert again[b.sha256].id == ids[b.sha256]
    with database.read() as s:
        found = image_queries.images_by_sha(s, [a.sha256, b.sha256, "f" * 64])
        assert {sha: row.stored_path for sha, row in found.items()} == {
            a.sha256: a.stored_path,  # the first of two rows with one hash wins
            b.sha256: b.stored_path,
        }
        assert image_queries.images_by_sha(s, []) == {}


def test_added_parts_read_back_with_their_image_and_newest_review(
    database: Database, model_id: int
) -> None:
    img = _image(1)
    ok = _part(img, model_id, source_name="b.png", captured_at=T0 + timedelta(hours=1))
    first, second = _add(database, [_part(img, model_id), ok], [img])
    with database.write() as s:
        user = User(username="rita", password_hash="x", role="reviewer")
        s.add(user)
        s.flush()
        for cls, version in (("ok", 1), ("scratch", 2)):
            s.add(
                Review(
                    inspection_id=first,
                    reviewer_id=user.id,
                    true_class=cls,
                    disposition="accept",
                    version=version,
                )
            )
    with database.read() as s:
        rec = inspection_queries.get_inspection(s, first)
        assert inspection_queries.get_inspection(s, 10_000) is None
        newest = inspection_queries.list_inspections(s, limit=10)
    assert rec is not None
    assert (rec.image_sha256, rec.image_path, rec.width, rec.height) == (
        img.sha256,
        img.stored_path,
        40,
        48,
    )
    assert (rec.reviewed, rec.true_class, rec.reviewer) == (True, "scratch", "rita")
    assert rec.probabilities == {"ok": 0.25, "scratch": 0.75} and rec.model_id == model_id
    assert [r.id for r in newest] == [second, first]  # newest capture first
    assert not newest[0].reviewed and newest[0].true_class is None


def test_list_filters_by_flag_line_product_and_time(database: Database, model_id: int) -> None:
    imgs = [_image(i) for i in range(4)]
    hour = timedelta(hours=1)
    ids = _add(
        database,
        [
            _part(imgs[0], model_id, line="L1", product="pump", captured_at=T0),
            _part(imgs[1], model_id, line="L2", product="pump", captured_at=T0 + hour),
            _part(imgs[2], model_id, line="L1", product="valve", captured_at=T0 + 2 * hour),
            _part(imgs[3], model_id, flagged=False, captured_at=T0 + 3 * hour),
        ],
        imgs,
    )

    def listed(**filters: object) -> list[int]:
        with database.read() as s:
            return [r.id for r in inspection_queries.list_inspections(s, **filters)]  # type: ignore[arg-type]

    assert listed(limit=10) == ids[::-1]
    assert listed(limit=2) == [ids[3], ids[2]]
    assert listed(limit=10, flagged_only=True) == [ids[2], ids[1], ids[0]]
    assert listed(limit=10, line="L2") == [ids[1]]
    assert listed(limit=10, product="valve") == [ids[2]]
    window = {"since": T0 + timedelta(minutes=30), "until": T0 + timedelta(hours=2)}
    assert listed(limit=10, **window) == [ids[1]]  # since inclusive, until exclusive


def test_missing_heatmaps_are_filled_once(database: Database, model_id: int) -> None:
    imgs = [_image(i) for i in range(3)]
    ids = _add(
        database,
        [
            _part(imgs[0], model_id),
            _part(imgs[1], model_id, heatmap_path="heatmaps/aa/done.png"),
            _part(imgs[2], model_id, flagged=False),
        ],
        imgs,
    )
    with database.read() as s:
        missing = inspection_queries.missing_heatmaps(s, model_id, limit=10)
        assert inspection_queries.missing_heatmaps(s, model_id + 1, limit=10) == []
    assert [(m.inspection_id, m.predicted_class, m.image_path) for m in missing] == [
        (ids[0], "scratch", imgs[0].stored_path)
    ]
    with database.write() as s:
        inspection_queries.set_heatmap_path(s, ids[0], "heatmaps/bb/first.png")
        inspection_queries.set_heatmap_path(s, ids[0], "heatmaps/cc/second.png")  # no-op
        inspection_queries.set_heatmap_path(s, ids[1], "heatmaps/dd/other.png")  # has one
    with database.read() as s:
        assert s.get(Inspection, ids[0]).heatmap_path == "heatmaps/bb/first.png"  # type: ignore[union-attr]
        assert s.get(Inspection, ids[1]).heatmap_path == "heatmaps/aa/done.png"  # type: ignore[union-attr]
        assert inspection_queries.missing_heatmaps(s, model_id, limit=10) == []
        assert image_queries.referenced_paths(s) == {
            *(i.stored_path for i in imgs),
            "heatmaps/aa/done.png",
            "heatmaps/bb/first.png",
        }


def test_recorded_since_matches_image_name_and_time(database: Database, model_id: int) -> None:
    img = _image(1)
    _add(database, [_part(img, model_id, source_name="cam.png")], [img])
    with database.read() as s:
        (row,) = s.query(Inspection).all()
        created = row.created_at
        assert inspection_queries.recorded_since(s, img.sha256, "cam.png", created)
        assert not inspection_queries.recorded_since(s, img.sha256, "other.png", created)
        assert not inspection_queries.recorded_since(s, "f" * 64, "cam.png", created)
        later = created + timedelta(seconds=1)
        assert not inspection_queries.recorded_since(s, img.sha256, "cam.png", later)


def test_overview_counts(database: Database, model_id: int) -> None:
    imgs = [_image(i) for i in range(4)]
    ids = _add(
        database,
        [
            _part(imgs[0], model_id, captured_at=T0 - timedelta(days=2)),  # before the window
            _part(imgs[1], model_id),
            _part(imgs[2], model_id, is_defect=False, flag_reason="unsure"),
            _part(imgs[3], model_id, is_defect=False, flagged=False, flag_reason=None),
        ],
        imgs,
    )
    with database.write() as s:
        user = User(username="rita", password_hash="x", role="reviewer")
        s.add(user)
        s.flush()
        s.add(
            Review(
                inspection_id=ids[1],
                reviewer_id=user.id,
                true_class="ok",
                disposition="accept",
                version=1,
            )
        )
        s.add(TrainingJob(status="queued"))
        s.add(TrainingJob(status="succeeded"))
    with database.read() as s:
        counts = inspection_queries.overview_counts(s, T0 - timedelta(hours=1))
    assert counts == {
        "inspected": 3,
        "flagged": 2,
        "defects": 1,
        "open_reviews": 2,  # flagged and never reviewed, at any time
        "jobs_waiting_or_running": 1,
        "active_model": f"#{model_id} m",
    }
