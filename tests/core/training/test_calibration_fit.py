"""After training, fit() calibrates the kept model on the validation split (or records why not),
and the artifact and the registered model carry the temperature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.auth import permissions
from core.training import register
from core.training.config import TrainConfig
from core.training.loop import fit
from core.vision import calibration as cal
from core.vision.artifacts import load_model, metadata_from_result, save_model
from core.vision.classifier import Classifier
from tests.core.training.test_loop import make_snapshot, tiny
from tests.core.training_support import Entry


def test_fit_calibrates_on_the_validation_logits(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path / "data", n_per_class=16)
    res = fit(tiny(epochs=2), snap)
    report = res.calibration
    assert report["calibrated"] and report["fitted_on"] == "val" and report["bins"] == 15
    assert report["images"] == 12  # 3 classes x 16 images, every 4th in val
    assert report["temperature"] == res.temperature
    meta = metadata_from_result(res)
    assert meta.temperature == res.temperature and meta.calibration == report
    # Recompute independently, end to end: the saved model classifies the val images with
    # calibrated probabilities; undoing T gives softmax(logits), whose logs are the logits up
    # to a per-row constant, so fitting them again must give the same T and the same ECEs.
    save_model(res, meta, tmp_path / "m")
    clf = Classifier.from_artifact(tmp_path / "m", backend="torch")
    val = [e for e in snap.entries if e.split == "val"]
    preds = clf.predict_bytes([(snap.path / e.file).read_bytes() for e in val])
    probs = np.array([[p.probabilities[c] for c in res.class_names] for p in preds])  # type: ignore[union-attr]
    y = np.array([res.class_names.index(e.cls) for e in val])
    raw = cal.uncalibrated(probs, res.temperature)
    assert cal.fit_temperature(np.log(raw), y) == pytest.approx(res.temperature, rel=1e-3)
    assert report["ece_before"] == pytest.approx(cal.expected_calibration_error(raw, y), abs=1e-4)
    assert report["ece_after"] == pytest.approx(cal.expected_calibration_error(probs, y), abs=1e-4)


def test_no_val_split_leaves_the_temperature_at_one_and_says_why(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path, n_per_class=8)
    snap.entries = [Entry(e.file, e.cls, "train") for e in snap.entries]
    res = fit(tiny(epochs=1), snap)
    assert res.temperature == 1.0
    assert res.calibration["calibrated"] is False
    assert "no validation split" in res.calibration["reason"]


def test_registered_artifact_carries_the_temperature(db, settings, tiny_dataset) -> None:  # type: ignore[no-untyped-def]
    outcome = register.train_and_register(
        db, settings, permissions.SYSTEM, tiny_dataset.id, TrainConfig(epochs=1, img_size=32,
                                                                        device="cpu"),
    )  # fmt: skip
    assert outcome.model is not None
    meta = load_model(Path(outcome.model.artifact_path)).metadata
    assert meta.temperature == outcome.result.temperature
    assert meta.calibration["calibrated"] and meta.calibration["fitted_on"] == "val"
