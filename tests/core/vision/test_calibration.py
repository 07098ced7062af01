"""Temperature scaling and ECE against worked examples with known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from core.vision import calibration as cal


def _top_label_probs(p_class1: list[float]) -> np.ndarray:
    return np.array([[1 - p, p] for p in p_class1])


def test_ece_of_the_published_forecasting_toy_example() -> None:
    # Flach & Perello Nieto, "Classifier Calibration" (TAILOR training material,
    # tailor-uob.github.io/training-material/cha_wahcc/slides-cla-cal.html), "Forecasting
    # example": forecasts 0.1, 0.1 (no rain twice), 0.4, 0.4 (once each), 0.7 x 3 (rain twice),
    # 0.9 (rain). Per forecast the gaps are |0.1 - 0| = 0.1, |0.4 - 0.5| = 0.1,
    # |0.7 - 2/3| = 1/30, |0.9 - 1| = 0.1, so the class-1 calibration error is
    # (2 * 0.1 + 2 * 0.1 + 3 * (1/30) + 1 * 0.1) / 8 = 0.075.
    # As top-label confidences (what ECE bins): 0.1 -> "no rain" at 0.9, right twice;
    # 0.4 -> "no rain" at 0.6, right once of two; 0.7 -> "rain" at 0.7, right twice of three;
    # 0.9 -> "rain" at 0.9, right. With 15 bins: 0.9 x 3 in (0.8667, 0.9333] (acc 1, gap 0.1),
    # 0.6 x 2 exactly on the edge 9/15, so in (0.5333, 0.6] (acc 0.5, gap 0.1), 0.7 x 3 in
    # (0.6667, 0.7333] (acc 2/3, gap 1/30): ECE = 3/8 * 0.1 + 2/8 * 0.1 + 3/8 * 1/30 = 0.075.
    probs = _top_label_probs([0.1, 0.1, 0.4, 0.4, 0.7, 0.7, 0.7, 0.9])
    labels = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    assert cal.expected_calibration_error(probs, labels, bins=15) == pytest.approx(0.075)
    table = cal.reliability_table(probs, labels, bins=15)
    filled = {i: row for i, row in enumerate(table) if row["count"]}
    assert set(filled) == {8, 10, 13}
    assert filled[8]["count"] == 2 and filled[8]["accuracy"] == 0.5
    assert filled[8]["confidence"] == pytest.approx(0.6)
    assert filled[10]["accuracy"] == pytest.approx(2 / 3)
    assert filled[13]["count"] == 3 and filled[13]["accuracy"] == 1.0
    assert table[8]["lower"] == pytest.approx(8 / 15) and table[8]["upper"] == pytest.approx(0.6)


def test_ece_three_classes_by_hand() -> None:
    # 4 predictions, 5 bins (0, .2], (.2, .4], (.4, .6], (.6, .8], (.8, 1]:
    #   [.5, .3, .2] label 0: conf .5, right  -> bin 2
    #   [.1, .8, .1] label 1: conf .8, right  -> bin 3 (0.8 is the right edge, so included)
    #   [.1, .2, .7] label 0: conf .7, wrong  -> bin 3
    #   [.9, .05, .05] label 0: conf .9, right -> bin 4
    # bin 2: |1 - .5| = .5, weight 1/4; bin 3: conf .75, acc .5, gap .25, weight 2/4;
    # bin 4: |1 - .9| = .1, weight 1/4. ECE = .125 + .125 + .025 = .275
    probs = np.array([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.9, 0.05, 0.05]])
    labels = np.array([0, 1, 0, 0])
    assert cal.expected_calibration_error(probs, labels, bins=5) == pytest.approx(0.275)
    counts = [row["count"] for row in cal.reliability_table(probs, labels, bins=5)]
    assert counts == [0, 0, 1, 2, 1]
    # Perfectly confident and right: no error; an empty set: 0.
    assert cal.expected_calibration_error(np.eye(3), [0, 1, 2]) == 0.0
    assert cal.expected_calibration_error(np.zeros((0, 3)), []) == 0.0


def test_bin_edges_are_closed_on_the_right() -> None:
    assert cal.bin_of([1 / 15, 0.6, 1.0, 0.0, 0.60001], 15).tolist() == [0, 8, 14, 0, 9]


def test_fit_temperature_recovers_the_analytic_optimum() -> None:
    # Two classes, every logit pair (2, 0), 3 of 4 labels right: the NLL is minimal where
    # sigmoid(2 / T) = 0.75, i.e. T = 2 / ln 3 = 1.8205.
    logits = np.array([[2.0, 0.0]] * 4)
    labels = np.array([0, 0, 0, 1])
    assert cal.fit_temperature(logits, labels) == pytest.approx(2 / math.log(3), rel=1e-5)
    # K = 4, logits (m, 0, 0, 0) with m = 3, 90 % right and the rest spread: the optimum has
    # top probability 0.9, e^(m/T) / (e^(m/T) + 3) = 0.9, so m / T = ln 27, T = 3 / ln 27.
    logits4 = np.tile([3.0, 0.0, 0.0, 0.0], (30, 1))
    labels4 = np.array([0] * 27 + [1, 2, 3])
    assert cal.fit_temperature(logits4, labels4) == pytest.approx(3 / math.log(27), rel=1e-5)
    # Already calibrated (sigmoid(ln 3) = 0.75): T = 1.
    t1 = cal.fit_temperature(np.array([[math.log(3), 0.0]] * 4), labels)
    assert t1 == pytest.approx(1.0, rel=1e-5)
    assert cal.fit_temperature(np.zeros((0, 2)), []) == 1.0


def test_fit_is_deterministic_bounded_and_improves_nll() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, 400)
    logits = rng.normal(0, 1, (400, 5))
    logits[np.arange(400), labels] += 1.5
    logits *= 4.0  # overconfident
    t = cal.fit_temperature(logits, labels)
    assert t == cal.fit_temperature(logits, labels)
    assert t > 1.0
    assert cal.nll(logits, labels, t) < cal.nll(logits, labels)
    # A perfectly separated set drives the NLL fit to the lower bound ...
    sep = np.array([[5.0, 0.0], [0.0, 5.0]])
    assert cal.fit_temperature(sep, [0, 1]) == pytest.approx(cal.T_MIN, rel=1e-4)


def test_a_split_without_errors_cannot_make_the_model_certain() -> None:
    # 2 of 2 right support an accuracy of (2 + 1) / (2 + 2) = 0.75 (Laplace), not 100 %: T is
    # raised until the mean top confidence is 0.75, i.e. softmax([5, 0] / T)[0] = 0.75, which
    # is 1 / (1 + exp(-5 / T)) = 0.75, so T = 5 / ln 3.
    sep = np.array([[5.0, 0.0], [0.0, 5.0]])
    t, report = cal.calibrate(sep, [0, 1], fitted_on="val")
    assert t == pytest.approx(5 / math.log(3), rel=1e-5)
    assert report["capped"] and report["temperature_nll"] == pytest.approx(cal.T_MIN, rel=1e-4)
    assert report["supported_accuracy"] == pytest.approx(0.75)
    assert cal.mean_confidence(sep, t) == pytest.approx(0.75, rel=1e-5)
    assert not report["at_bound"]


def test_a_split_with_enough_errors_stays_close_to_its_nll_fit() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 500)
    logits = rng.normal(0, 1, (500, 3))
    logits[np.arange(500), labels] += 1.2
    logits *= 3.0
    t, report = cal.calibrate(logits, labels, fitted_on="val")
    # The NLL fit already puts the mean confidence near the accuracy: a cap, if any, is small.
    assert t == pytest.approx(report["temperature_nll"], rel=0.1)
    assert report["ece_after"] < report["ece_before"] / 3
    accuracy = float((logits.argmax(1) == labels).mean())
    assert cal.mean_confidence(logits, t) <= report["supported_accuracy"] + 1e-9
    assert abs(cal.mean_confidence(logits, t) - accuracy) < 0.03


def test_calibration_never_changes_the_predicted_class() -> None:
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 3, (500, 6))
    for t in (cal.T_MIN, 0.3, 1.0, 2.5, cal.T_MAX):
        assert (cal.softmax(logits, t).argmax(1) == logits.argmax(1)).all()


def test_report_lowers_ece_on_an_overconfident_model_and_uncalibrated_inverts() -> None:
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 600)
    logits = rng.normal(0, 1, (600, 4))
    logits[np.arange(600), labels] += 1.0
    logits *= 5.0
    t, report = cal.calibrate(logits, labels, fitted_on="val")
    assert report["calibrated"] and report["fitted_on"] == "val" and report["bins"] == 15
    assert report["temperature"] == t and report["images"] == 600
    assert report["ece_after"] < report["ece_before"]
    assert report["ece_before"] == pytest.approx(
        cal.expected_calibration_error(cal.softmax(logits), labels)
    )
    assert len(report["reliability_before"]) == len(report["reliability_after"]) == 15
    json.dumps(report)  # stored in model.json
    back = cal.uncalibrated(cal.softmax(logits, t), t)
    np.testing.assert_allclose(back, cal.softmax(logits), atol=1e-9)


def test_read_stored_defaults_for_old_metadata(tmp_path: Path) -> None:
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"architecture": "defectnet"}))
    stored = cal.read_stored(old)
    assert stored.temperature == 1.0 and stored.report == {} and not stored.calibrated
    new = tmp_path / "new.json"
    new.write_text(json.dumps({"temperature": 0.7, "calibration": {"calibrated": True}}))
    assert cal.read_stored(new).temperature == 0.7 and cal.read_stored(new).calibrated
