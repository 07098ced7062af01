"""Classification metrics on numpy arrays: accuracy, per-class P/R/F1, confusion matrix, ROC-AUC.

Implemented here (not sklearn) so the product has no extra dependency and the definitions are
visible: undefined precision/recall (a class never predicted / never present) counts as 0.0,
like sklearn's ``zero_division=0``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall, F1 and support of one class."""

    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict[str, float | int]:
        """JSON-safe dict."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
        }


@dataclass(frozen=True)
class EvalResult:
    """Metrics of a classifier on one labelled set."""

    class_names: list[str]
    n: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassMetrics]
    confusion_matrix: list[list[int]]  # rows: true class, columns: predicted class
    roc_auc: float | None = None  # two-class sets with scores only

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (plain floats, ints, lists)."""
        return {
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": {k: v.to_dict() for k, v in self.per_class.items()},
            "confusion_matrix": self.confusion_matrix,
            "class_names": list(self.class_names),
            "roc_auc": self.roc_auc,
        }


def _labels(y: npt.ArrayLike) -> npt.NDArray[np.int64]:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {arr.shape}")
    return arr.astype(np.int64, copy=False)


def confusion_matrix(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, num_classes: int
) -> npt.NDArray[np.int64]:
    """Counts[i, j] = number of samples of true class i predicted as class j."""
    t, p = _labels(y_true), _labels(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
    if t.size and (min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes})")
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def accuracy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Fraction of samples predicted correctly (0.0 for an empty set)."""
    t, p = _labels(y_true), _labels(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
    return float((t == p).mean()) if t.size else 0.0


def per_class_metrics(
    cm: npt.NDArray[np.int64],
) -> tuple[
    npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.int64]
]:
    """Precision, recall, F1 and support per class from a confusion matrix."""
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    return precision, recall, f1, support.astype(np.int64)


def macro_f1(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, num_classes: int) -> float:
    """Unweighted mean of the per-class F1 scores."""
    _, _, f1, _ = per_class_metrics(confusion_matrix(y_true, y_pred, num_classes))
    return float(f1.mean()) if num_classes else 0.0


def roc_auc(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve for binary labels (1 = positive), ties counted as half.

    Computed as the Mann-Whitney U statistic from average ranks, which equals the trapezoidal
    area under the ROC curve. Raises ValueError when only one class is present.
    """
    t = _labels(y_true)
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != t.shape:
        raise ValueError(f"{t.size} labels but {s.size} scores")
    if not np.isin(t, (0, 1)).all():
        raise ValueError("roc_auc needs labels 0 and 1")
    n_pos = int(t.sum())
    n_neg = t.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("roc_auc needs at least one positive and one negative sample")
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(t.size, dtype=np.float64)
    # Average rank over each run of equal scores, so ties contribute one half.
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    u = ranks[t == 1].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def evaluate(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    class_names: Sequence[str],
    probabilities: npt.ArrayLike | None = None,
) -> EvalResult:
    """All metrics for one labelled set; ROC-AUC when there are two classes and probabilities."""
    names = list(class_names)
    k = len(names)
    t, p = _labels(y_true), _labels(y_pred)
    cm = confusion_matrix(t, p, k)
    precision, recall, f1, support = per_class_metrics(cm)
    auc: float | None = None
    if probabilities is not None and k == 2:
        probs = np.asarray(probabilities, dtype=np.float64)
        if probs.shape != (t.size, 2):
            raise ValueError(f"probabilities must have shape ({t.size}, 2), got {probs.shape}")
        # With two classes AUC(class 1 vs P1) == AUC(class 0 vs P0), so the choice is moot.
        if 0 < int(t.sum()) < t.size:
            auc = roc_auc(t, probs[:, 1])
    return EvalResult(
        class_names=names,
        n=int(t.size),
        accuracy=accuracy(t, p),
        macro_f1=float(f1.mean()) if k else 0.0,
        per_class={
            name: ClassMetrics(
                precision=float(precision[i]),
                recall=float(recall[i]),
                f1=float(f1[i]),
                support=int(support[i]),
            )
            for i, name in enumerate(names)
        },
        confusion_matrix=cm.tolist(),
        roc_auc=auc,
    )
