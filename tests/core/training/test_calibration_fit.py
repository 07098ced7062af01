"""After training, fit() calibrates the kept model on the validation split (or records why not),
and the artifact and the registered model carry the temperature."""

from __future__ import annotations

import dataclasses
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
from core.vision.images import DecodeLimits
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


def test_fit_sets_the_acceptance_threshold_on_the_calibrated_good_validation_parts(
    tmp_path: Path,
) -> None:
    # "ok" is the plain pattern; 12 of its 48 images validate: enough for a threshold.
    snap = make_snapshot(tmp_path / "data", n_per_class=48, classes=("blob", "checker", "ok"))
    res = fit(tiny(epochs=3), snap)
    accept = res.acceptance
    assert accept["fitted"] and accept["good_classes"] == ["ok"] and accept["good_images"] == 12
    assert accept["rank"] == 1  # floor(0.005 x 13) = 0, so the smallest
    meta = metadata_from_result(res)
    assert meta.acceptance == accept
    save_model(res, meta, tmp_path / "m")
    clf = Classifier.from_artifact(tmp_path / "m", backend="torch")
    ok_val = [e for e in snap.entries if e.split == "val" and e.cls == "ok"]
    preds = clf.predict_bytes([(snap.path / e.file).read_bytes() for e in ok_val])
    p_ok = sorted(p.probabilities["ok"] for p in preds)  # type: ignore[union-attr]
    # Recomputed from the saved model's calibrated probabilities: the smallest good P(ok).
    assert accept["threshold"] == pytest.approx(p_ok[0], abs=1e-5)
    called_ok = sum(p.class_name == "ok" for p in preds)  # type: ignore[union-attr]
    assert called_ok == accept["good_images"] - accept["false_rejects"]


def test_test_metrics_decide_as_the_product_does(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path / "data", n_per_class=48, classes=("blob", "checker", "ok"))
    val = [e for e in snap.entries if e.split == "val"]
    snap.entries += [Entry(e.file, e.cls, "test") for e in val]  # test = val: both decided
    res = fit(tiny(epochs=3), snap)
    limits = DecodeLimits()
    as_fitted = register.test_metrics(res, snap, limits)  # type: ignore[arg-type]
    assert as_fitted["per_class"]["ok"]["recall"] > 0
    # A threshold no part reaches: nothing may be called ok any more.
    never = dict(res.acceptance, fitted=True, threshold=1.0, good_classes=["ok"])
    strict = register.test_metrics(dataclasses.replace(res, acceptance=never), snap, limits)  # type: ignore[arg-type]
    assert strict["per_class"]["ok"]["recall"] == 0.0
    assert strict["per_class"]["blob"]["recall"] >= as_fitted["per_class"]["blob"]["recall"]
