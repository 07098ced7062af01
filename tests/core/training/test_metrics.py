"""Metrics against hand-computed cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.training import metrics as ev


def test_confusion_matrix_and_accuracy() -> None:
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    cm = ev.confusion_matrix(y_true, y_pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert ev.accuracy(y_true, y_pred) == pytest.approx(4 / 6)


def test_per_class_and_macro_f1_hand_computed() -> None:
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    # class 0: tp 1, predicted 2, support 2 -> P .5 R .5 F1 .5
    # class 1: tp 2, predicted 3, support 2 -> P 2/3 R 1 F1 .8
    # class 2: tp 1, predicted 1, support 2 -> P 1 R .5 F1 2/3
    res = ev.evaluate(y_true, y_pred, ["a", "b", "c"])
    assert res.per_class["a"].precision == pytest.approx(0.5)
    assert res.per_class["b"].precision == pytest.approx(2 / 3)
    assert res.per_class["b"].recall == pytest.approx(1.0)
    assert res.per_class["b"].f1 == pytest.approx(0.8)
    assert res.per_class["c"].f1 == pytest.approx(2 / 3)
    assert res.per_class["c"].support == 2
    assert res.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert ev.macro_f1(y_true, y_pred, 3) == pytest.approx(res.macro_f1)
    assert res.roc_auc is None


def test_class_never_predicted_counts_zero() -> None:
    res = ev.evaluate([0, 1], [0, 0], ["a", "b"])
    assert res.per_class["b"].precision == 0.0
    assert res.per_class["b"].f1 == 0.0
    assert res.per_class["a"].precision == pytest.approx(0.5)


def test_roc_auc_hand_computed_with_ties() -> None:
    # positives scores 0.8, 0.4 ; negatives 0.4, 0.1
    # pairs: (0.8>0.4) 1, (0.8>0.1) 1, (0.4=0.4) 0.5, (0.4>0.1) 1 -> 3.5/4
    assert ev.roc_auc([1, 1, 0, 0], [0.8, 0.4, 0.4, 0.1]) == pytest.approx(0.875)
    assert ev.roc_auc([0, 1], [0.9, 0.1]) == pytest.approx(0.0)
    assert ev.roc_auc([0, 1], [0.1, 0.9]) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        ev.roc_auc([1, 1], [0.1, 0.2])


def test_roc_auc_matches_pairwise_definition() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200), 1)  # rounded, so there are many ties
    pos, neg = s[y == 1], s[y == 0]
    expected = ((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])).mean()
    assert ev.roc_auc(y, s) == pytest.approx(expected)


def test_two_class_evaluate_has_auc_and_is_json_safe() -> None:
    probs = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    res = ev.evaluate([0, 1, 1, 1], probs.argmax(1), ["ok", "def"], probs)
    assert res.roc_auc == pytest.approx(1.0)
    d = json.loads(json.dumps(res.to_dict()))
    assert d["confusion_matrix"] == [[1, 0], [1, 2]]
    assert d["per_class"]["def"]["recall"] == pytest.approx(2 / 3)


def test_bad_inputs_rejected() -> None:
    with pytest.raises(ValueError):
        ev.confusion_matrix([0, 1], [0], 2)
    with pytest.raises(ValueError):
        ev.confusion_matrix([0, 3], [0, 1], 2)
