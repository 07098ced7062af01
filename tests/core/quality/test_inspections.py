"""Inspections read back (lists, one part, image, thumbnail) and the heatmap backfill."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from PIL import Image as PILImage

from core.auth import permissions
from core.config import Settings
from core.quality import flag_rules, image_store, ingest, inspections
from core.quality.ingest import Traceability
from core.vision import gradcam, images
from db.engine import Database
from db.models import Role
from tests.core.inspection_support import Active, png, register_active_model


def _stored_map(settings: Settings, rel: str | None) -> np.ndarray:
    assert rel is not None
    data = image_store.read_stored(settings, rel, "heatmap")
    return np.asarray(PILImage.open(io.BytesIO(data)))


def test_no_heatmaps_then_backfill(db: Database, settings: Settings, make_user: Any) -> None:
    # A model whose Grad-CAM maps are not blank, and differ from image to image and by class.
    register_active_model(db, settings, img_size=64, seed=2, explainable=True)
    active = ingest.load_active(db, settings)
    engineer, _ = make_user("erin", Role.ENGINEER)
    flag_rules.set_rule(db, engineer, "*", ["ok", "scratch"], 1.0)
    files = [(f"b{i}.png", png(500 + i, scratch=i == 1)) for i in range(3)]
    result = ingest.ingest(
        db,
        settings,
        permissions.SYSTEM,
        files,
        Traceability(),
        classifier=active,
        with_heatmaps=False,
    )
    assert result.flagged == 3 and all(r.heatmap_path is None for r in result.processed)
    assert inspections.backfill_heatmaps(db, settings, classifier=active) == 3
    assert inspections.backfill_heatmaps(db, settings, classifier=active) == 0

    # The same images explained at ingest: backfill must have stored the very same maps.
    explained = ingest.ingest(
        db, settings, permissions.SYSTEM, files, Traceability(), classifier=active
    )
    _model, clf = active
    limits = images.DecodeLimits.from_settings(settings)
    maps = []
    for part, at_ingest, (_name, data) in zip(
        result.processed, explained.processed, files, strict=True
    ):
        rec = inspections.get_inspection(db, permissions.SYSTEM, part.id)
        got = _stored_map(settings, rec.heatmap_path)
        pixels = images.decode(data, limits=limits, grayscale=True, max_side=clf.img_size)
        target = clf.class_names.index(rec.predicted_class)
        (want,) = gradcam.cam_batch(clf, [clf.prepare(pixels)], [target])
        np.testing.assert_array_equal(got, want)  # this image's map, for its predicted class
        assert got.max() == 255  # a real map (peak-normalised), not a blank one
        (other_class,) = gradcam.cam_batch(clf, [clf.prepare(pixels)], [1 - target])
        assert not np.array_equal(got, other_class)
        assert rec.heatmap_path == at_ingest.heatmap_path  # same bytes, same content address
        overlay = inspections.heatmap_png(settings, permissions.SYSTEM, rec)
        assert overlay is not None and overlay == inspections.heatmap_png(
            settings, permissions.SYSTEM, at_ingest
        )
        maps.append(got)
    # The maps tell the parts apart: a map stored on the wrong part would not match.
    assert not np.array_equal(maps[0], maps[1]) and not np.array_equal(maps[1], maps[2])


def test_thumbnail_fits_the_box(db: Database, settings: Settings, active: Active) -> None:
    rec = ingest.ingest(
        db,
        settings,
        permissions.SYSTEM,
        [("big.png", png(1, size=(300, 200)))],
        Traceability(),
        classifier=active,
    ).processed[0]
    thumb = PILImage.open(
        io.BytesIO(inspections.thumbnail_png(settings, permissions.SYSTEM, rec, size=64))
    )
    assert max(thumb.size) == 64 and thumb.size == (43, 64)


def test_list_inspections_filters(db: Database, settings: Settings, active: Active) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    for i, (line, product) in enumerate([("L1", "pump"), ("L2", "pump"), ("L1", "valve")]):
        ingest.ingest(
            db,
            settings,
            permissions.SYSTEM,
            [(f"{i}.png", png(600 + i))],
            Traceability(line=line, product=product, captured_at=t0 + timedelta(hours=i)),
            classifier=active,
        )
    assert [r.source_name for r in inspections.list_inspections(db, permissions.SYSTEM)] == [
        "2.png",
        "1.png",
        "0.png",
    ]
    assert [
        r.source_name for r in inspections.list_inspections(db, permissions.SYSTEM, line="L1")
    ] == [
        "2.png",
        "0.png",
    ]
    assert [
        r.source_name for r in inspections.list_inspections(db, permissions.SYSTEM, product="pump")
    ] == [
        "1.png",
        "0.png",
    ]
    window = inspections.list_inspections(
        db, permissions.SYSTEM, since=t0 + timedelta(minutes=30), until=t0 + timedelta(hours=2)
    )
    assert [r.source_name for r in window] == ["1.png"]
    assert len(inspections.list_inspections(db, permissions.SYSTEM, limit=1)) == 1
