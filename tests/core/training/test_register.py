"""core.training.register: train + register, and what a run without validation split records
(import + register is tested in tests/core/datasets/test_service.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from core.auth import permissions
from core.datasets import service
from core.errors import InvalidImageError, PermissionDenied
from core.registry import catalog
from core.training import register
from core.training.config import TrainConfig
from tests.conftest import write_tiny_dataset


def test_published_split_without_val_is_measured_on_test(tmp_path: Path, db, settings) -> None:  # type: ignore[no-untyped-def]
    data = write_tiny_dataset(tmp_path / "tiny", n=16)
    rows = ["file,split"]
    for cls in ("ok", "scratch"):
        rows += [
            f"{cls}/{cls}_{i},{'train' if i < 12 else 'test'}".replace(f"_{i},", f"_{i}.png,")
            for i in range(16)
        ]
    split_file = tmp_path / "splits.csv"
    split_file.write_text("\n".join(rows) + "\n")
    record, snap, _ = service.import_dataset(
        db, settings, permissions.SYSTEM, data, "tiny", split_file=split_file, val_fraction=0
    )
    assert not snap.split_entries("val") and len(snap.split_entries("test")) == 8
    outcome = register.train_and_register(
        db,
        settings,
        permissions.SYSTEM,
        record.id,
        TrainConfig(epochs=2, img_size=32, device="cpu"),
    )
    assert outcome.model is not None
    metrics = catalog.get_model(db, permissions.SYSTEM, outcome.model.id).metrics
    assert metrics["evaluated_on"] == "test"
    assert metrics["n"] == 8 and sum(map(sum, metrics["confusion_matrix"])) == 8


def test_published_split_gets_a_carved_val_and_test_is_measured_too(  # type: ignore[no-untyped-def]
    tmp_path: Path, db, settings
) -> None:
    data = write_tiny_dataset(tmp_path / "tiny", n=16)
    rows = ["file,split"] + [
        f"{cls}/{cls}_{i}.png,{'train' if i < 12 else 'test'}"
        for cls in ("ok", "scratch")
        for i in range(16)
    ]
    split_file = tmp_path / "splits.csv"
    split_file.write_text("\n".join(rows) + "\n")
    record, snap, _ = service.import_dataset(
        db, settings, permissions.SYSTEM, data, "tiny", split_file=split_file
    )
    assert len(snap.split_entries("val")) == 6 and len(snap.split_entries("test")) == 8
    outcome = register.train_and_register(
        db,
        settings,
        permissions.SYSTEM,
        record.id,
        TrainConfig(epochs=2, img_size=32, device="cpu"),
    )
    assert outcome.model is not None
    metrics = catalog.get_model(db, permissions.SYSTEM, outcome.model.id).metrics
    assert metrics["evaluated_on"] == "val" and metrics["n"] == 6
    assert metrics["test"]["n"] == 8
    assert outcome.result.calibration.get("fitted_on") == "val"


def test_stopped_run_registers_nothing(db, settings, tiny_dataset) -> None:  # type: ignore[no-untyped-def]
    outcome = register.train_and_register(
        db,
        settings,
        permissions.SYSTEM,
        tiny_dataset.id,
        TrainConfig(epochs=3, img_size=32, device="cpu"),
        should_stop=lambda: True,
    )
    assert outcome.model is None and outcome.result.stopped
    assert catalog.list_models(db, permissions.SYSTEM) == []


def test_training_decodes_with_the_configured_limits(db, settings, tiny_dataset) -> None:  # type: ignore[no-untyped-def]
    # The tiny dataset's images are 40 x 40 = 1600 px: imported under the default limits, then
    # refused once an operator lowers DEFECTLENS_MAX_IMAGE_PIXELS below that.
    strict = dataclasses.replace(settings, max_image_pixels=1000)
    config = TrainConfig(epochs=1, img_size=32, device="cpu")
    with pytest.raises(InvalidImageError, match="exceeds the 0.001 Mpx limit"):
        register.train_and_register(db, strict, permissions.SYSTEM, tiny_dataset.id, config)
    assert catalog.list_models(db, permissions.SYSTEM) == []


def test_reviewer_may_not_import_or_train(
    tmp_path: Path, db, settings, make_user, tiny_dataset
) -> None:  # type: ignore[no-untyped-def]
    reviewer, _ = make_user("rev", "reviewer")
    with pytest.raises(PermissionDenied):
        service.import_dataset(db, settings, reviewer, write_tiny_dataset(tmp_path / "x"), "x")
    with pytest.raises(PermissionDenied):
        register.train_and_register(db, settings, reviewer, tiny_dataset.id, TrainConfig())


def test_the_input_size_choice_is_registered_with_the_model(db, settings, tiny_dataset) -> None:  # type: ignore[no-untyped-def]
    """No img_size: chosen from the imported images (40 x 40 -> the 64 px floor), letterboxed;
    the catalog row (what the Models page shows) and the artifact both record it."""
    config = TrainConfig(epochs=1, device="cpu", num_threads=1)
    outcome = register.train_and_register(db, settings, permissions.SYSTEM, tiny_dataset.id, config)
    assert outcome.model is not None
    spec = catalog.get_model(db, permissions.SYSTEM, str(outcome.model.id)).input_spec
    assert spec["img_size"] == 64 and spec["resize"] == "letterbox"
    assert spec["img_size_reason"].startswith("64 px: median image 40 px on the longer side")
    meta = json.loads(Path(outcome.model.artifact_path).read_text())
    assert (meta["img_size"], meta["resize"]) == (64, "letterbox")
    assert meta["img_size_reason"] == spec["img_size_reason"]
