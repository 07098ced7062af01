"""The good-class acceptance threshold: the decision rule, the conformal fit, the stored report,
and every inference path (torch, ONNX, Grad-CAM) deciding the same way."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from core.errors import ModelError, ValidationError
from core.vision import acceptance as acc
from core.vision import gradcam
from core.vision.artifacts import load_model, save_model
from core.vision.classifier import Classifier
from tests.core.vision.test_artifacts import metadata, trained_like_model

CLASSES = ["ok", "crack", "dent"]


def test_without_a_threshold_or_a_good_class_the_most_probable_class_decides() -> None:
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.34, 0.33, 0.33]])
    assert acc.decide(p, [0], None).tolist() == [0, 1, 0]
    assert acc.decide(p, [], 0.99).tolist() == [0, 1, 0]  # no good class (NEU)
    assert acc.decide(p, [0, 1, 2], 0.99).tolist() == [0, 1, 0]  # no defect class


def test_a_good_call_below_the_threshold_names_the_likeliest_defect_and_never_the_reverse() -> None:
    p = np.array(
        [
            [0.96, 0.01, 0.03],  # good and sure: stays good
            [0.80, 0.05, 0.15],  # good but short of 0.95: the likeliest defect, dent
            [0.90, 0.06, 0.04],  # short: crack
            [0.10, 0.85, 0.05],  # a defect call stays a defect call
            [0.45, 0.50, 0.05],  # argmax crack though P(good) < 0.95: unchanged
        ]
    )
    assert acc.decide(p, [0], 0.95).tolist() == [0, 2, 1, 1, 1]
    # The predicted class only ever moves from good to defect.
    arg = p.argmax(1)
    got = acc.decide(p, [0], 0.95)
    assert all(g == a or (a == 0 and g != 0) for g, a in zip(got, arg, strict=True))


def test_two_good_classes_are_judged_by_their_summed_probability() -> None:
    names = ["ok_front", "ok_back", "crack"]
    assert acc.good_indices(names) == [0, 1]
    p = np.array([[0.50, 0.45, 0.05], [0.50, 0.30, 0.20]])  # P(good) 0.95 and 0.80
    assert acc.decide(p, [0, 1], 0.9).tolist() == [0, 2]


def test_the_threshold_is_the_conformal_quantile_of_the_good_validation_parts() -> None:
    rng = np.random.default_rng(0)
    n_good, n_bad = 199, 20
    p_good = np.sort(rng.uniform(0.90, 1.0, n_good))
    p_bad = rng.uniform(0.0, 0.95, n_bad)  # some defects look good to argmax
    p_ok = np.concatenate([p_good, p_bad])
    probs = np.stack([p_ok, 1 - p_ok], axis=1)
    labels = np.array([0] * n_good + [1] * n_bad)
    names = ["good", "scratch"]
    # k = max(1, floor(alpha (n + 1))): 0.005 x 200 = 1 (the smallest), 0.05 x 200 = 10.
    t, report = acc.fit_threshold(probs, labels, names, false_reject=0.005)
    assert t == pytest.approx(p_good[0]) and report["rank"] == 1
    t10, report10 = acc.fit_threshold(probs, labels, names, false_reject=0.05)
    assert t10 == pytest.approx(p_good[9]) and report10["rank"] == 10
    assert report10["false_rejects"] == 9  # the 9 good parts below the 10th smallest
    assert report10["false_reject_bound"] == pytest.approx(0.05)
    # Escapes are defects with P(good) >= 0.5 (argmax) and, after, >= the threshold.
    assert report["escapes_argmax"] == int((p_bad >= 0.5).sum())
    assert report["escapes"] == int((p_bad >= t).sum())
    assert report["good_images"] == n_good and report["defect_images"] == n_bad
    assert report["good_classes"] == ["good"] and report["fitted_on"] == "val"


def test_new_good_parts_fall_below_the_threshold_at_the_promised_rate() -> None:
    # Split conformal: for exchangeable scores the chance that a new good part scores below the
    # k-th smallest of n is exactly k / (n + 1) in expectation (here 10 / 200 = 5 %).
    rng = np.random.default_rng(1)
    n, trials, below = 199, 4000, 0.0
    for _ in range(trials):
        cal = rng.beta(20, 1, n)
        t, _ = acc.fit_threshold(np.stack([cal, 1 - cal], 1), np.zeros(n), ["ok", "bad"],
                                 false_reject=0.05)  # fmt: skip
        below += float((rng.beta(20, 1, 50) < t).mean())
    assert below / trials == pytest.approx(10 / 200, abs=0.004)


def test_no_threshold_without_a_good_class_enough_good_images_or_when_turned_off() -> None:
    probs = np.full((30, 3), 1 / 3)
    labels = np.arange(30) % 3
    for names, why in (
        (["crazing", "patches", "scratches"], "no class name reads as good"),
        (["ok", "good", "pass"], "no defect class"),
    ):
        t, report = acc.fit_threshold(probs, labels, names)
        assert t is None and report == {"fitted": False, "reason": report["reason"]}
        assert why in report["reason"]
    t, report = acc.fit_threshold(probs, labels, CLASSES)  # 10 good images: enough
    assert t is not None
    t, report = acc.fit_threshold(probs[:27], labels[:27], CLASSES)  # 9: too few
    assert t is None and "9 good images; at least 10" in report["reason"]
    t, report = acc.fit_threshold(probs, labels, CLASSES, false_reject=0.0)
    assert t is None and "turned off" in report["reason"]


def test_false_reject_share_is_checked() -> None:
    assert acc.check_false_reject(0) == 0.0 and acc.check_false_reject("0.01") == 0.01
    for bad in (-0.1, 0.5, "lots", None):
        with pytest.raises(ValidationError, match="false reject share"):
            acc.check_false_reject(bad)  # type: ignore[arg-type]


def _fitted(threshold: float, good: list[str] | None = None) -> dict[str, object]:
    return {"fitted": True, "threshold": threshold, "good_classes": good or ["ok"],
            "good_images": 50, "false_rejects": 0, "false_reject_bound": 0.02,
            "escapes_argmax": 3, "escapes": 1}  # fmt: skip


def test_stored_reports_are_read_strictly() -> None:
    assert acc.stored_rule({}, CLASSES) == ([0], None)  # older models: argmax
    assert acc.stored_rule({"fitted": False, "reason": "x"}, CLASSES) == ([0], None)
    assert acc.stored_rule(_fitted(0.97), CLASSES) == ([0], 0.97)
    for bad in (_fitted(1.5), dict(_fitted(0.9), threshold="high"), _fitted(0.9, ["scratch"]),
                dict(_fitted(0.9), good_classes="ok")):  # fmt: skip
        with pytest.raises(ValueError, match="acceptance"):
            acc.stored_rule(bad, CLASSES)
    assert "ok only at P(good) >= 0.9700" in acc.acceptance_text(_fitted(0.97))
    assert "predates" in acc.acceptance_text({})


# ------------------------------------------------------------------- the inference paths


def _inputs(n: int = 24) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (1, 32, 32), dtype=np.uint8) for _ in range(n)]


def _save(tmp_path: Path, report: dict[str, object]) -> Path:
    meta = dataclasses.replace(metadata(), class_names=list(CLASSES), acceptance=report)
    save_model(trained_like_model(), meta, tmp_path / "m")
    return tmp_path / "m"


def test_every_inference_path_applies_the_stored_threshold(tmp_path: Path) -> None:
    inputs = _inputs()
    plain = Classifier.from_artifact(_save(tmp_path / "a", {}), backend="torch")
    preds = plain.predict_prepared(inputs)
    probs = np.array([[p.probabilities[c] for c in CLASSES] for p in preds])
    good_calls = probs[probs.argmax(1) == 0, 0]
    assert len(good_calls) >= 2, "the random model must call some inputs ok for this test"
    threshold = float(np.median(good_calls)) + 1e-6  # about half of the good calls fall short
    expected = acc.decide(probs, [0], threshold)
    assert (expected != probs.argmax(1)).sum() >= 1
    path = _save(tmp_path / "b", _fitted(threshold))
    assert load_model(path).metadata.acceptance["threshold"] == threshold
    for backend in ("torch", "onnx"):
        clf = Classifier.from_artifact(path, backend=backend)
        assert clf.acceptance_threshold == threshold and clf.good_indices == [0]
        preds = clf.predict_prepared(inputs)
        assert [p.class_index for p in preds] == expected.tolist(), backend
        # The confidence is the named class's own probability; a held-back call keeps P(good).
        for p, row in zip(preds, probs, strict=True):
            assert p.confidence == pytest.approx(row[p.class_index], abs=1e-4)
            if p.class_index == row.argmax():
                assert p.held_back is None
            else:
                assert p.held_back == pytest.approx(row[0], abs=1e-4) and row[0] < threshold
    # Grad-CAM explains the class the product names, on both explainers.
    clf = Classifier.from_artifact(path, backend="onnx")
    for cam in (gradcam.GradCam(clf), clf.batch_explainer()):
        picked: list[int] = []

        def choose(p: np.ndarray, picked: list[int] = picked) -> list[tuple[int, int]]:
            picked.extend(clf.decide(row) for row in p)
            return [(0, picked[0])]

        cam.run(inputs, choose)
        assert picked == expected.tolist(), type(cam).__name__


def test_a_bad_stored_threshold_refuses_the_model(tmp_path: Path) -> None:
    path = _save(tmp_path, _fitted(0.9))
    meta = json.loads((path / "model.json").read_text())
    for bad, match in ((dict(_fitted(2.0)), "threshold"), ([1], "acceptance must be"),
                       (_fitted(0.9, ["crack_free_typo"]), "lacks")):  # fmt: skip
        (path / "model.json").write_text(json.dumps(dict(meta, acceptance=bad)))
        with pytest.raises(ModelError, match=match):
            load_model(path)
