"""Issue 9 "bad input": awkward datasets import and train, and say what is wrong in words.

Each dataset is real image files on disk, imported through core.datasets.service and trained
for one epoch at 32 px; the health report names the class or file and the reason, the training
log repeats it, and every source file is in the manifest or accounted for in the report.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.auth import permissions
from core.datasets import service
from core.datasets.snapshot import DatasetSnapshot
from core.training import register
from core.training.config import TrainConfig
from tests.conftest import write_tiny_dataset

TRAINING_LOGGER = "core.training.register"


def _gray(seed: int, size: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((size, size)) * 60 + 100).astype(np.uint8)


def _import_and_train(db, settings, source: Path, caplog: pytest.LogCaptureFixture):  # type: ignore[no-untyped-def]
    record, snap, _ = service.import_dataset(db, settings, permissions.SYSTEM, source, "bad")
    caplog.set_level(logging.WARNING, logger=TRAINING_LOGGER)
    outcome = register.train_and_register(
        db,
        settings,
        permissions.SYSTEM,
        record.id,
        TrainConfig(epochs=1, img_size=32, device="cpu"),
    )
    assert outcome.model is not None
    logged = [r.getMessage() for r in caplog.records if r.name == TRAINING_LOGGER]
    return snap, outcome, logged


def _assert_nothing_silently_dropped(source: Path, snap: DatasetSnapshot) -> None:
    """Every source file is in the manifest, a stored-once duplicate, a conflict or unreadable."""
    files = {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}
    h = snap.health
    accounted = (
        {e.source for e in snap.entries}
        | {f for group in h.duplicates for f in group}
        | {f for c in h.conflicting_duplicates for f in c["files"]}
        | {f for f, _ in h.unreadable}
    )
    assert files <= accounted


def _assert_logged(snap: DatasetSnapshot, logged: list[str], needle: str) -> str:
    (warning,) = [w for w in snap.health.warnings if needle in w]
    assert any(m.endswith(warning) for m in logged), logged
    return warning


@pytest.mark.slow
def test_a_class_of_one_image_trains_without_validation(  # type: ignore[no-untyped-def]
    tmp_path: Path, db, settings, caplog
) -> None:
    src = write_tiny_dataset(tmp_path / "src", n=12)
    (src / "dent").mkdir()
    Image.fromarray(_gray(500)).save(src / "dent" / "dent_0.png")
    snap, outcome, logged = _import_and_train(db, settings, src, caplog)
    assert outcome.result.class_names == ["dent", "ok", "scratch"]
    assert [e.split for e in snap.entries if e.cls == "dent"] == ["train"]
    warning = _assert_logged(snap, logged, "single image")
    assert "class 'dent'" in warning and "recall cannot be measured" in warning
    assert outcome.result.metrics is not None
    assert outcome.result.metrics.per_class["dent"].support == 0
    _assert_nothing_silently_dropped(src, snap)


@pytest.mark.slow
def test_a_class_copied_from_another_is_left_out_and_named(  # type: ignore[no-untyped-def]
    tmp_path: Path, db, settings, caplog
) -> None:
    src = write_tiny_dataset(tmp_path / "src", n=12)
    (src / "scratch_copy").mkdir()
    for i in range(4):
        name = f"scratch_{i}.png"
        (src / "scratch_copy" / name).write_bytes((src / "scratch" / name).read_bytes())
    snap, outcome, logged = _import_and_train(db, settings, src, caplog)
    assert outcome.result.class_names == ["ok", "scratch"]
    warning = _assert_logged(snap, logged, "also filed under")
    assert "'scratch_copy'" in warning and "'scratch'" in warning
    _assert_logged(snap, logged, "appear under more than one class")
    _assert_nothing_silently_dropped(src, snap)


@pytest.mark.slow
def test_tiny_images_among_large_ones_are_named(  # type: ignore[no-untyped-def]
    tmp_path: Path, db, settings, caplog
) -> None:
    src = write_tiny_dataset(tmp_path / "src", n=10, size=200)
    for i in range(3):
        Image.fromarray(_gray(600 + i, 20)).save(src / "ok" / f"tiny_{i}.png")
    snap, _outcome, logged = _import_and_train(db, settings, src, caplog)
    warning = _assert_logged(snap, logged, "far smaller")
    assert warning == (
        "3 images are far smaller than the others (20x20 px vs a median of 200x200 px): "
        "ok/tiny_0.png, ok/tiny_1.png, ok/tiny_2.png; they are enlarged up to 10x more than the "
        "others and lose detail"
    )
    _assert_nothing_silently_dropped(src, snap)


@pytest.mark.slow
def test_sixteen_bit_and_palette_images_are_converted_and_noted(  # type: ignore[no-untyped-def]
    tmp_path: Path, db, settings, caplog
) -> None:
    src = write_tiny_dataset(tmp_path / "src", n=10)
    for i in range(2):
        wide = _gray(700 + i).astype(np.uint16) * 257  # the same picture on the 16-bit range
        Image.fromarray(wide).save(src / "ok" / f"wide_{i}.png")
        Image.fromarray(_gray(800 + i)).convert("P").save(src / "scratch" / f"pal_{i}.png")
    snap, _outcome, logged = _import_and_train(db, settings, src, caplog)
    wide_note = _assert_logged(snap, logged, "converted to 8 bits")
    assert wide_note.startswith("2 images were ")
    pal_note = _assert_logged(snap, logged, "palette (P)")
    assert pal_note.startswith("2 images were palette (P) and were converted to RGB")
    assert len(snap.entries) == 24
    _assert_nothing_silently_dropped(src, snap)
