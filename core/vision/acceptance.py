"""When a part may be called good: the acceptance threshold fitted on the validation split.

On a line most parts are good, and a defect called "ok" passes unseen: the costliest error.
Calling the most probable class (argmax) treats both errors alike. After temperature scaling,
training fits one more number on the validation split: the calibrated probability of "good"
(the sum over the good classes) that a good part reaches. The threshold is a split-conformal
quantile (Vovk et al. 2005; Angelopoulos & Bates 2021, section 1): the k-th smallest P(good)
of the n good validation parts, k = max(1, floor(alpha * (n + 1))), so a new good part from
the same line falls below it with probability at most max(alpha, 1 / (n + 1)). Every path
(torch, ONNX, Grad-CAM, evaluate, ingest) then calls a part good only when the most probable
class is good AND P(good) reaches the threshold; otherwise it names the most probable defect
class, with that class's own (low) probability as the confidence, so the flagging rule sends
the part to review. The threshold never turns a defect call into a good one, and models
without a good class or a threshold (NEU, older models) decide by argmax as before.

Numpy only: pages and the CLI read the stored report without torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from core.errors import ValidationError

# The share of good parts the threshold may send to review: 1 in 200. A line with 97 % good
# parts then flags about 0.5 % more of them; the defects it catches would otherwise pass unseen.
DEFAULT_FALSE_REJECT = 0.005
# Above this the threshold would send a fifth of the good parts to review: not a safety margin.
MAX_FALSE_REJECT = 0.2
# Below this many good validation images the quantile says too little (1 / (n + 1) > 9 %).
MIN_GOOD_IMAGES = 10

# Class names that mean "no defect" in the datasets people bring (ok, ok_front, good, pass, ...).
_GOOD_WORDS = frozenset({"ok", "okay", "good", "pass", "passed", "normal", "nominal"})
_NEGATIONS = frozenset({"not", "no", "non", "un"})
_GOOD_PHRASES = frozenset({"no_defect", "no_defects", "nodefect", "defect_free", "non_defective"})


def looks_good(class_name: str) -> bool:
    """Whether a class name reads as "no defect" (ok, ok_front, good, pass, normal, no_defect)."""
    norm = re.sub(r"[^a-z0-9]+", "_", class_name.lower()).strip("_")
    if norm in _GOOD_PHRASES:
        return True
    tokens = set(norm.split("_"))
    return bool(tokens & _GOOD_WORDS) and not tokens & _NEGATIONS


def check_false_reject(value: float) -> float:
    """The false reject share as a float; ValidationError unless 0 (off) to MAX_FALSE_REJECT."""
    try:
        share = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"false reject share {value!r} is not a number") from None
    if not 0.0 <= share <= MAX_FALSE_REJECT:
        raise ValidationError(
            f"false reject share must be from 0 (off) to {MAX_FALSE_REJECT}, not {share} "
            f"(e.g. 0.005: at most 1 in 200 good parts sent to review)"
        )
    return share


def good_indices(class_names: Sequence[str]) -> list[int]:
    """Indices of the classes whose names read as good."""
    return [i for i, c in enumerate(class_names) if looks_good(c)]


def decide(
    probs: npt.ArrayLike, good: Sequence[int], threshold: float | None
) -> npt.NDArray[np.int64]:
    """The class index of each row: argmax, except that a good call below the threshold
    becomes the most probable defect class. No threshold, or no good or no defect class:
    argmax."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim == 1:
        p = p[None, :]
    top = p.argmax(axis=1).astype(np.int64)
    k = p.shape[1]
    good_set = sorted(set(int(g) for g in good if 0 <= int(g) < k))
    if threshold is None or not good_set or len(good_set) == k or p.shape[0] == 0:
        return top
    is_good = np.zeros(k, dtype=bool)
    is_good[good_set] = True
    p_good = p[:, is_good].sum(axis=1)
    reject = is_good[top] & (p_good < threshold)
    if reject.any():
        defect_only = np.where(is_good[None, :], -np.inf, p[reject])
        top[reject] = defect_only.argmax(axis=1)
    return top


def fit_threshold(
    probs: npt.ArrayLike,
    labels: npt.ArrayLike,
    class_names: Sequence[str],
    *,
    false_reject: float = DEFAULT_FALSE_REJECT,
    fitted_on: str = "val",
) -> tuple[float | None, dict[str, Any]]:
    """(threshold or None, the report stored in the model's metadata) from calibrated
    validation probabilities and their labels. None, with the reason, when the classes have no
    good or no defect class, or the split too few good images."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels).astype(np.int64, copy=False)
    if p.ndim != 2 or p.shape != (y.shape[0], len(class_names)):
        raise ValueError(f"probabilities of shape {p.shape} for {len(class_names)} classes")
    if not 0.0 <= false_reject < 1.0:
        raise ValueError(f"false_reject must be from 0 to below 1, got {false_reject}")
    if false_reject == 0.0:
        return None, not_fitted("turned off (false reject share 0): the most probable class")
    good = good_indices(class_names)
    if not good:
        return None, not_fitted("no class name reads as good (ok, good, pass, normal, ...)")
    if len(good) == len(class_names):
        return None, not_fitted("every class reads as good: there is no defect class")
    is_good = np.isin(y, good)
    n = int(is_good.sum())
    if n < MIN_GOOD_IMAGES:
        return None, not_fitted(
            f"the {fitted_on} split has {n} good images; at least {MIN_GOOD_IMAGES} are needed"
        )
    scores = np.sort(p[is_good][:, good].sum(axis=1))
    k = max(1, math.floor(false_reject * (n + 1)))
    threshold = float(scores[k - 1])
    before = _errors(p, y, good, None)
    after = _errors(p, y, good, threshold)
    return threshold, {
        "fitted": True,
        "fitted_on": fitted_on,
        "good_classes": [class_names[i] for i in good],
        "threshold": threshold,
        "false_reject": false_reject,
        # What the quantile promises for new good parts: at most this share falls below.
        "false_reject_bound": max(false_reject, 1.0 / (n + 1)),
        "good_images": n,
        "defect_images": int((~is_good).sum()),
        "rank": k,
        "escapes_argmax": before[0],
        "escapes": after[0],
        "false_rejects_argmax": before[1],
        "false_rejects": after[1],
    }


def _errors(
    p: npt.NDArray[np.float64], y: npt.NDArray[np.int64], good: list[int], threshold: float | None
) -> tuple[int, int]:
    """(defects called good, good parts called a defect) under the decision rule."""
    pred = decide(p, good, threshold)
    true_good = np.isin(y, good)
    pred_good = np.isin(pred, good)
    return int((~true_good & pred_good).sum()), int((true_good & ~pred_good).sum())


def not_fitted(reason: str) -> dict[str, Any]:
    """The report of a model that decides by argmax, and why."""
    return {"fitted": False, "reason": reason}


def stored_rule(report: Any, class_names: Sequence[str]) -> tuple[list[int], float | None]:
    """(good class indices, threshold) from a model's metadata; threshold None means argmax
    (older models, or not fitted), with the good classes the names suggest.

    A malformed report raises ValueError: a model must not silently change how it decides.
    """
    if not isinstance(report, dict) or not report.get("fitted"):
        return good_indices(class_names), None
    t = report.get("threshold")
    if isinstance(t, bool) or not isinstance(t, int | float) or not 0.0 <= float(t) <= 1.0:
        raise ValueError(f"acceptance threshold must be a number from 0 to 1, got {t!r}")
    names = report.get("good_classes")
    if not isinstance(names, list) or not names or not all(isinstance(c, str) for c in names):
        raise ValueError("acceptance good_classes must be a list of class names")
    unknown = sorted(set(names) - set(class_names))
    if unknown:
        raise ValueError(f"acceptance names classes the model lacks: {unknown}")
    return [i for i, c in enumerate(class_names) if c in names], float(t)


def acceptance_text(report: Any) -> str:
    """One line on how the model calls a part good, for the CLI, the log and the Models page."""
    if not isinstance(report, dict) or not report:
        return "the most probable class decides (the model predates acceptance thresholds)"
    if not report.get("fitted"):
        return f"the most probable class decides: {report.get('reason', 'not fitted')}"
    names = ", ".join(report.get("good_classes", []))
    return (
        f"{names} only at P(good) >= {report['threshold']:.4f}, reached by "
        f"{report['good_images'] - report['false_rejects']} of {report['good_images']} good "
        f"{report.get('fitted_on', 'val')} images (at most {report['false_reject_bound']:.1%} "
        f"of good parts sent to review); {report.get('fitted_on', 'val')} escapes "
        f"{report['escapes_argmax']} -> {report['escapes']}"
    )
