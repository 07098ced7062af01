"""Ingest: storage, content addressing, bad input, display-text names, rules, heatmaps, reads."""

from __future__ import annotations

import dataclasses
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage
from sqlalchemy import func, select

from core.auth import permissions
from core.config import Settings
from core.errors import NotFound, PermissionDenied, ValidationError
from core.quality import flag_rules, image_store, ingest, inspections, rollup, uploads
from core.quality.ingest import Traceability
from core.vision import gradcam
from core.vision.images import DecodeLimits
from db.engine import Database
from db.models import Image, Inspection, Role
from db.queries import rollups
from tests.core.inspection_support import (
    Active,
    blob_strip,
    bomb_png,
    brightness_cam,
    jpeg,
    peak,
    png,
    png_of,
    register_active_model,
    stored_files,
)


def _count(db: Database, model: type) -> int:
    with db.read() as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_ingest_records_traceability_and_stores_images_by_content(
    db: Database, settings: Settings, active: Active
) -> None:
    captured = datetime(2026, 11, 20, 8, 30, tzinfo=UTC)
    trace = Traceability(
        line=" L1 ", station="S2", product="pump", lot="LOT-7", serial="", captured_at=captured
    )
    files = [("a.png", png(1)), ("b.jpg", jpeg(2)), ("c.png", png(3, scratch=True))]
    result = ingest.ingest(db, settings, permissions.SYSTEM, files, trace, classifier=active)

    assert [r.source_name for r in result.processed] == ["a.png", "b.jpg", "c.png"]
    assert result.rejected == []
    assert result.images_per_second > 0
    model, clf = active
    for rec, (_name, data) in zip(result.processed, files, strict=True):
        assert (rec.line, rec.station, rec.product, rec.lot) == ("L1", "S2", "pump", "LOT-7")
        assert rec.serial is None  # blank means "not given"
        assert rec.captured_at == captured
        assert rec.model_id == model.id
        assert rec.predicted_class in clf.class_names
        assert sum(rec.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert rec.confidence == pytest.approx(max(rec.probabilities.values()))
        assert rec.latency_ms is not None and rec.latency_ms > 0
        assert rec.review_version == 0 and not rec.reviewed
        # Content-addressed: the path comes from the bytes' SHA-256, never from the name.
        sha = rec.image_sha256
        assert sha is not None and rec.image_path is not None
        assert rec.image_path.startswith(f"{sha[:2]}/{sha}.")
        assert (settings.images_dir / rec.image_path).read_bytes() == data
        assert inspections.image_bytes(settings, permissions.SYSTEM, rec) == data
    assert result.processed[1].image_path.endswith(".jpg")  # type: ignore[union-attr]

    listed = inspections.list_inspections(db, permissions.SYSTEM)
    assert {r.id for r in listed} == {r.id for r in result.processed}
    one = inspections.get_inspection(db, permissions.SYSTEM, result.processed[0].id)
    assert one == result.processed[0]
    with pytest.raises(NotFound):
        inspections.get_inspection(db, permissions.SYSTEM, 10_000)


def test_same_bytes_are_stored_once_and_inspected_twice(
    db: Database, settings: Settings, active: Active
) -> None:
    data = png(7)
    first = ingest.ingest(
        db,
        settings,
        permissions.SYSTEM,
        [("x.png", data), ("copy.png", data)],
        Traceability(),
        classifier=active,
    )
    second = ingest.ingest(
        db, settings, permissions.SYSTEM, [("again.png", data)], Traceability(), classifier=active
    )
    recs = first.processed + second.processed
    assert len(recs) == 3
    assert len({r.id for r in recs}) == 3
    assert len({r.image_id for r in recs}) == 1
    assert _count(db, Image) == 1 and _count(db, Inspection) == 3
    images_only = [p for p in stored_files(settings) if "heatmaps" not in p.parts]
    assert len(images_only) == 1


def _truncated_png() -> bytes:
    data = png(11, size=(64, 64))
    return data[: len(data) // 2]


def test_each_bad_file_is_rejected_with_its_reason_and_leaves_nothing(
    db: Database, settings: Settings
) -> None:
    settings = dataclasses.replace(settings, max_image_pixels=1_000_000, max_image_bytes=200_000)
    register_active_model(db, settings)
    active = ingest.load_active(db, settings)
    rng = np.random.default_rng(0)
    big = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8)).save(big, "PNG")
    assert len(big.getvalue()) > 200_000
    files = [
        ("good1.png", png(1)),
        ("truncated.png", _truncated_png()),
        ("empty.png", b""),
        ("notes.png", b"hello, this is a text file\n"),
        ("bomb.png", bomb_png()),
        ("doc.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n"),
        ("huge.png", big.getvalue()),
        ("good2.png", png(2)),
    ]
    result = ingest.ingest(
        db, settings, permissions.SYSTEM, files, Traceability(), classifier=active
    )

    assert [r.source_name for r in result.processed] == ["good1.png", "good2.png"]
    reasons = {r.file: r.reason for r in result.rejected}
    assert set(reasons) == {
        "truncated.png",
        "empty.png",
        "notes.png",
        "bomb.png",
        "doc.pdf",
        "huge.png",
    }
    assert "truncated or corrupt" in reasons["truncated.png"]
    assert "empty" in reasons["empty.png"]
    assert "not an image" in reasons["notes.png"]
    assert "exceeds" in reasons["bomb.png"] and "Mpx" in reasons["bomb.png"]
    assert "PDF" in reasons["doc.pdf"] and "not allowed" in reasons["doc.pdf"]
    assert "exceeds" in reasons["huge.png"] and "MB" in reasons["huge.png"]
    for reason in reasons.values():
        assert not reason.startswith(tuple(reasons))  # the name is not repeated in the reason
    # Nothing stored for the bad ones: two image rows, and only their files (plus heatmaps).
    assert _count(db, Image) == 2 and _count(db, Inspection) == 2
    stored = {p.name.split(".")[0] for p in stored_files(settings) if "heatmaps" not in p.parts}
    assert stored == {r.image_sha256 for r in result.processed}


def test_all_bad_batch_records_nothing(db: Database, settings: Settings, active: Active) -> None:
    result = ingest.ingest(
        db,
        settings,
        permissions.SYSTEM,
        [("a", b""), ("b", b"x")],
        Traceability(),
        classifier=active,
    )
    assert result.processed == [] and len(result.rejected) == 2 and result.flagged == 0
    assert _count(db, Image) == 0 and stored_files(settings) == []


def test_hostile_file_names_are_display_text_only(
    db: Database, settings: Settings, active: Active, tmp_path: Path
) -> None:
    names = [
        "../../../../tmp/escaped.png",
        "/etc/passwd",
        "ünïcødé 部品 😀.png",
        "x" * 300 + ".png",
        "<script>alert('x')</script>.png",
        "new\nline\x00nul.png",
    ]
    files = [(n, png(100 + i)) for i, n in enumerate(names)]
    result = ingest.ingest(
        db, settings, permissions.SYSTEM, files, Traceability(), classifier=active
    )
    assert len(result.processed) == len(names)
    shown = [r.source_name for r in result.processed]
    assert shown[0] == "../../../../tmp/escaped.png"
    assert shown[2] == "ünïcødé 部品 😀.png"
    assert shown[4] == "<script>alert('x')</script>.png"  # stored verbatim; pages show text
    assert shown[3] is not None and len(shown[3]) <= uploads.MAX_SOURCE_NAME
    assert shown[5] == "new?line?nul.png"
    for rec in result.processed:
        assert rec.image_path is not None and rec.image_sha256 is not None
        assert rec.image_path.split("/")[-1].startswith(rec.image_sha256)
    # Nothing was written anywhere a name pointed to.
    assert not Path("/tmp/escaped.png").exists()
    assert not any(p.name.startswith("escaped") for p in tmp_path.rglob("*"))


def test_traceability_is_validated(db: Database, settings: Settings, active: Active) -> None:
    with pytest.raises(ValidationError, match="timezone"):
        ingest.ingest(
            db,
            settings,
            permissions.SYSTEM,
            [("a.png", png(1))],
            Traceability(captured_at=datetime(2026, 1, 1)),
            classifier=active,
        )
    with pytest.raises(ValidationError, match="line"):
        ingest.ingest(
            db,
            settings,
            permissions.SYSTEM,
            [("a.png", png(1))],
            Traceability(line="L" * 101),
            classifier=active,
        )
    assert _count(db, Inspection) == 0


def test_viewers_may_not_inspect(
    db: Database, settings: Settings, make_user: Any, active: Active
) -> None:
    viewer, _ = make_user("vera", Role.VIEWER)
    with pytest.raises(PermissionDenied):
        ingest.ingest(db, settings, viewer, [("a.png", png(1))], Traceability(), classifier=active)
    reviewer, _ = make_user("rita", Role.REVIEWER)
    result = ingest.ingest(
        db, settings, reviewer, [("a.png", png(1))], Traceability(), classifier=active
    )
    assert len(result.processed) == 1


def test_load_active_needs_an_active_model(db: Database, settings: Settings) -> None:
    with pytest.raises(NotFound, match="no active model"):
        ingest.load_active(db, settings)


def test_flagging_rule_of_the_product_is_applied_and_stored(
    db: Database, settings: Settings, make_user: Any, active: Active
) -> None:
    engineer, _ = make_user("erin", Role.ENGINEER)
    files = [(f"p{i}.png", png(200 + i, scratch=i % 2 == 0)) for i in range(6)]
    lenient = flag_rules.set_rule(db, engineer, "pump", ["ok", "scratch"], 0.01)
    strict = flag_rules.set_rule(db, engineer, "*", ["ok", "scratch"], 1.0)

    passed = ingest.ingest(
        db, settings, permissions.SYSTEM, files, Traceability(product="pump"), classifier=active
    )
    assert passed.flagged == 0
    assert all(r.flag_rule_id == lenient.id and not r.is_defect for r in passed.processed)

    # A product without its own rule gets "*": everything below 100 % confidence is unsure.
    unsure = ingest.ingest(
        db, settings, permissions.SYSTEM, files, Traceability(product="valve"), classifier=active
    )
    assert unsure.flagged == len(files)
    for r in unsure.processed:
        assert r.flag_rule_id == strict.id
        assert r.flag_reason is not None and r.flag_reason.startswith("unsure: ")

    only_ok = flag_rules.set_rule(db, engineer, "pump", ["ok"], 0.01)
    judged = ingest.ingest(
        db, settings, permissions.SYSTEM, files, Traceability(product="pump"), classifier=active
    )
    for r in judged.processed:
        assert r.flag_rule_id == only_ok.id
        assert r.is_defect == (r.predicted_class == "scratch")
        assert r.flagged == r.is_defect
        assert r.flag_reason == ("defect: scratch" if r.is_defect else None)
    # Old inspections still name the rule version they were judged by.
    assert {
        r.flag_rule_id for r in inspections.list_inspections(db, permissions.SYSTEM, product="pump")
    } == {
        lenient.id,
        only_ok.id,
    }


def test_a_good_call_the_models_threshold_holds_back_is_stored_as_a_flagged_defect(
    db: Database, settings: Settings, make_user: Any
) -> None:
    engineer, _ = make_user("erin", Role.ENGINEER)
    flag_rules.set_rule(db, engineer, "*", ["ok"], 0.01)  # only the class decides
    # 70 files: the first chunk is judged then explained, the second fused (most are flagged).
    files = [(f"g{i}.png", png(400 + i, scratch=i % 3 == 0)) for i in range(70)]
    register_active_model(db, settings, seed=3, explainable=True)
    plain = ingest.ingest(db, settings, permissions.SYSTEM, files, Traceability(),
                          classifier=ingest.load_active(db, settings))  # fmt: skip
    called_ok = {r.source_name for r in plain.processed if r.predicted_class == "ok"}
    assert called_ok, "the untrained model must call some parts ok for this test"
    # The same weights with a threshold no part reaches: no good call stands.
    never = {
        "fitted": True,
        "threshold": 1.0,
        "good_classes": ["ok"],
        "good_images": 20,
        "false_rejects": 0,
        "false_reject_bound": 0.05,
        "escapes_argmax": 0,
        "escapes": 0,
    }
    register_active_model(db, settings, seed=3, explainable=True, acceptance=never)
    strict = ingest.ingest(db, settings, permissions.SYSTEM, files, Traceability(),
                           classifier=ingest.load_active(db, settings))  # fmt: skip
    assert strict.flagged == len(files) and strict.heatmaps == len(files)
    for r in strict.processed:
        assert r.predicted_class == "scratch" and r.is_defect and r.flagged
        held = r.source_name in called_ok
        assert (r.flag_reason or "").startswith("defect: scratch")
        assert ("not sure enough it is good: P(good)" in (r.flag_reason or "")) == held
        assert ("unsure" in (r.flag_reason or "")) is False


def test_heatmaps_are_stored_for_flagged_parts_only_and_match_explain(
    db: Database, settings: Settings, make_user: Any
) -> None:
    register_active_model(db, settings, img_size=64, seed=2, explainable=True)  # maps not blank
    active = ingest.load_active(db, settings)
    engineer, _ = make_user("erin", Role.ENGINEER)
    flag_rules.set_rule(db, engineer, "flag-all", ["ok", "scratch"], 1.0)
    flag_rules.set_rule(db, engineer, "flag-none", ["ok", "scratch"], 0.01)
    files = [(f"h{i}.png", png(300 + i, size=(60, 80), scratch=True)) for i in range(3)]
    flagged = ingest.ingest(
        db, settings, permissions.SYSTEM, files, Traceability(product="flag-all"), classifier=active
    )
    clean = ingest.ingest(
        db,
        settings,
        permissions.SYSTEM,
        [("n.png", png(400))],
        Traceability(product="flag-none"),
        classifier=active,
    )
    assert flagged.heatmaps == 3 and clean.heatmaps == 0
    assert inspections.heatmap_png(settings, permissions.SYSTEM, clean.processed[0]) is None
    _model, clf = active
    for rec, (_n, data) in zip(flagged.processed, files, strict=True):
        assert rec.heatmap_path is not None and rec.heatmap_path.startswith("heatmaps/")
        stored = image_store.read_stored(settings, rec.heatmap_path, "heatmap")
        assert np.asarray(PILImage.open(io.BytesIO(stored))).max() == 255  # a real map
        overlay = inspections.heatmap_png(settings, permissions.SYSTEM, rec)
        assert overlay is not None
        got = np.asarray(PILImage.open(io.BytesIO(overlay)))
        assert got.shape == (60, 80, 3)
        # The batched Grad-CAM gives the classifier's own single-image explanation.
        want = np.asarray(PILImage.open(io.BytesIO(clf.explain(data).overlay_png)))
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 3


def test_large_mostly_flagged_batch_explains_every_flagged_part(
    db: Database, settings: Settings, make_user: Any
) -> None:
    register_active_model(db, settings, img_size=64, seed=2, explainable=True)  # maps not blank
    active = ingest.load_active(db, settings)
    # Past the first chunk, a mostly-flagged batch switches to the one-pass classify+explain.
    engineer, _ = make_user("erin", Role.ENGINEER)
    flag_rules.set_rule(db, engineer, "*", ["ok", "scratch"], 1.0)
    n = ingest.CHUNK_SIZE + 6
    files = [(f"m{i}.png", png(700 + i)) for i in range(n)]
    result = ingest.ingest(
        db, settings, permissions.SYSTEM, files, Traceability(), classifier=active
    )
    assert result.flagged == n and result.heatmaps == n
    # Ingest counted every part in the hourly rollup, in its transaction, as a rebuild would.
    with db.read() as session:
        counted = rollups.all_cells(session)
    assert sum(c.parts for c in counted.values()) == n == sum(c.unsure for c in counted.values())
    assert all(k.flagged and k.line == "" and not k.reviewed for k in counted)
    rollup.rebuild(db)
    with db.read() as session:
        rebuilt = rollups.all_cells(session)
    assert {k: (c.parts, c.unsure) for k, c in rebuilt.items()} == {
        k: (c.parts, c.unsure) for k, c in counted.items()
    }
    _model, clf = active
    onnx = clf.predict_bytes([d for _, d in files])
    for rec, pred in zip(result.processed, onnx, strict=True):
        assert not isinstance(pred, Exception)
        assert rec.predicted_class == pred.class_name  # both paths classify alike
        assert rec.confidence == pytest.approx(pred.confidence, abs=1e-4)
    last, data = result.processed[-1], files[-1][1]
    got = np.asarray(
        PILImage.open(
            io.BytesIO(inspections.heatmap_png(settings, permissions.SYSTEM, last) or b"")
        )
    )
    want = np.asarray(PILImage.open(io.BytesIO(clf.explain(data).overlay_png)))
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 3


def test_stored_heatmaps_of_a_letterboxing_model_lie_on_the_image(
    db: Database, settings: Settings, make_user: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Non-square parts, a letterboxing model, a Grad-CAM whose peak is the bright defect: the
    map stored at ingest and the one backfilled both cover just the image (padding cut), and the
    overlay's peak is on the defect in the displayed image, as Classifier.explain draws it."""
    monkeypatch.setattr(gradcam.GradCam, "run", brightness_cam)
    monkeypatch.setattr(gradcam.OnnxGradCam, "run", brightness_cam)  # ingest's, on ONNX
    register_active_model(db, settings, img_size=64, resize="letterbox")
    active = ingest.load_active(db, settings)
    engineer, _ = make_user("erin", Role.ENGINEER)
    flag_rules.set_rule(db, engineer, "*", ["ok", "scratch"], 1.0)
    spots = [(6, 100), (30, 15)]
    files = [(f"s{i}.png", png_of(blob_strip(at=at))) for i, at in enumerate(spots)]
    shown = ingest.ingest(
        db, settings, permissions.SYSTEM, files, Traceability(), classifier=active
    )
    later = ingest.ingest(
        db,
        settings,
        permissions.SYSTEM,
        [(n, d + b"\0") for n, d in files],  # other bytes: new inspections without maps
        Traceability(),
        classifier=active,
        with_heatmaps=False,
    )
    assert inspections.backfill_heatmaps(db, settings, classifier=active) == 2
    _model, clf = active
    limits = DecodeLimits.from_settings(settings)
    for i, at in enumerate(spots):
        for rec in (
            shown.processed[i],
            inspections.get_inspection(db, permissions.SYSTEM, later.processed[i].id),
        ):
            assert rec.heatmap_path is not None
            stored = image_store.read_stored(settings, rec.heatmap_path, "heatmap")
            cam = np.asarray(PILImage.open(io.BytesIO(stored)))
            assert cam.shape == (21, 64)  # the 40x120 image's box in the 64 px input
            heat, _ = gradcam.overlay(files[i][1], cam, limits)
            py, px = peak(heat)
            assert abs(py - at[0]) <= 2 and abs(px - at[1]) <= 2
        overlay = inspections.heatmap_png(settings, permissions.SYSTEM, shown.processed[i])
        want = clf.explain(files[i][1]).overlay_png
        got = np.asarray(PILImage.open(io.BytesIO(overlay or b"")))
        assert np.abs(got.astype(int) - np.asarray(PILImage.open(io.BytesIO(want)))).max() <= 3
