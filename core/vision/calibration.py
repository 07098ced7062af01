"""Honest confidence: temperature scaling (Guo et al., ICML 2017) and the calibration error.

A network trained with label smoothing never says much above 90-95 %, even when it is right 99 %
of the time, so a fixed "unsure below X %" threshold means something different for every model.
Temperature scaling divides the logits by one number T > 0 fitted on the validation split
(minimum negative log-likelihood) before the softmax: the ranking of the classes, and so every
predicted class, stays the same; only the confidences move towards what the model's accuracy
supports. The expected calibration error (ECE) says how far they are from it. A validation
split with no errors (or very few) would let the fit make the model certain of everything, so
the fitted T is raised where needed until the mean confidence is no higher than the accuracy
the split supports, (k + 1) / (n + 2) for k right out of n (``cap_temperature``).

Numpy only (pages and the CLI read the stored report without torch); ``Classifier``, the ONNX
graph, Grad-CAM and training apply the fitted T (core.vision.classifier, artifacts, gradcam,
core.training.loop).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

BINS = 15
# The search range for T: beyond it a model is either sure of everything or of nothing, which a
# validation split of a few hundred images cannot justify. A fit that lands on a bound says so.
T_MIN, T_MAX = 0.05, 20.0
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0
_TOL = 1e-7  # on log T: T is found to about 1e-7 relative
MAX_META_BYTES = 4 * 1024 * 1024  # as core.vision.artifacts: refuse to parse anything huge


def _as_logits(logits: npt.ArrayLike) -> npt.NDArray[np.float64]:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"logits must be N x K with K >= 2, got shape {z.shape}")
    return z


def _as_labels(labels: npt.ArrayLike, n: int) -> npt.NDArray[np.int64]:
    y = np.asarray(labels).astype(np.int64, copy=False)
    if y.shape != (n,):
        raise ValueError(f"{n} rows but labels of shape {y.shape}")
    return y


def softmax(logits: npt.ArrayLike, temperature: float = 1.0) -> npt.NDArray[np.float64]:
    """softmax(logits / T) row by row, computed stably."""
    z = _as_logits(logits) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: npt.ArrayLike, labels: npt.ArrayLike, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the labels under softmax(logits / T)."""
    z = _as_logits(logits) / temperature
    y = _as_labels(labels, z.shape[0])
    top = z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z - top).sum(axis=1)) + top[:, 0]
    return float(np.mean(log_norm - z[np.arange(z.shape[0]), y]))


def fit_temperature(logits: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """The T in [T_MIN, T_MAX] that minimises the NLL of softmax(logits / T); deterministic.

    The NLL is convex in 1/T (a log-sum-exp of functions linear in 1/T, minus a linear term),
    hence unimodal in log T, so a golden-section search over log T finds the minimum without a
    starting point or a learning rate. An empty set gives 1.0.
    """
    z = _as_logits(logits)
    y = _as_labels(labels, z.shape[0])
    if z.shape[0] == 0:
        return 1.0
    lo, hi = math.log(T_MIN), math.log(T_MAX)
    a = hi - _GOLDEN * (hi - lo)
    b = lo + _GOLDEN * (hi - lo)
    fa, fb = nll(z, y, math.exp(a)), nll(z, y, math.exp(b))
    while hi - lo > _TOL:
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - _GOLDEN * (hi - lo)
            fa = nll(z, y, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + _GOLDEN * (hi - lo)
            fb = nll(z, y, math.exp(b))
    return float(math.exp((lo + hi) / 2.0))


def mean_confidence(logits: npt.ArrayLike, temperature: float = 1.0) -> float:
    """Mean top probability of softmax(logits / T); it falls as T grows."""
    return float(softmax(logits, temperature).max(axis=1).mean())


def cap_temperature(
    logits: npt.ArrayLike, labels: npt.ArrayLike, temperature: float
) -> tuple[float, float]:
    """(T, the accuracy the evidence supports): T raised so confidence never claims more.

    With few or no validation errors the likelihood keeps improving as T shrinks (a split the
    model gets all right "proves" 100 % certainty), so the NLL fit runs to T_MIN and every later
    part is called certain. The accuracy such a split supports is Laplace's (k + 1) / (n + 2)
    for k right out of n; when the fitted T makes the mean top confidence exceed it, T is raised
    (bisection on log T) until the two match. A split with errors enough to pin T down is left
    as fitted: its mean confidence already sits at its accuracy.
    """
    z = _as_logits(logits)
    y = _as_labels(labels, z.shape[0])
    n = z.shape[0]
    supported = (int((z.argmax(axis=1) == y).sum()) + 1) / (n + 2)
    if n == 0 or mean_confidence(z, temperature) <= supported:
        return temperature, supported
    lo, hi = math.log(temperature), math.log(T_MAX)
    if mean_confidence(z, T_MAX) > supported:  # even T_MAX is too sure: take the bound
        return T_MAX, supported
    while hi - lo > _TOL:
        mid = (lo + hi) / 2.0
        if mean_confidence(z, math.exp(mid)) > supported:
            lo = mid
        else:
            hi = mid
    return float(math.exp(hi)), supported


def uncalibrated(probs: npt.ArrayLike, temperature: float) -> npt.NDArray[np.float64]:
    """softmax(z) from calibrated softmax(z / T): log p = z / T + c, so softmax(T * log p).

    Lets ``defectlens evaluate`` report the ECE before scaling from the probabilities the
    classifier returns, without a second pass. Probabilities that underflowed to 0 stay 0.
    """
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return softmax(temperature * np.log(p))


def bin_of(confidence: npt.ArrayLike, bins: int = BINS) -> npt.NDArray[np.int64]:
    """Bin index of each confidence: bin b holds (b / bins, (b + 1) / bins].

    Equal-width bins closed on the right, as in Guo et al.'s reference code (a confidence of
    exactly 0.6 with 15 bins falls in (0.5333, 0.6], bin 8); a confidence of 0 joins bin 0.
    Edges are i / bins, so a confidence equal to such a fraction lands on the edge exactly.
    """
    c = np.asarray(confidence, dtype=np.float64)
    inner = np.arange(1, bins, dtype=np.float64) / bins
    return np.searchsorted(inner, c, side="left").astype(np.int64)


def reliability_table(
    probs: npt.ArrayLike, labels: npt.ArrayLike, bins: int = BINS
) -> list[dict[str, Any]]:
    """Per bin: its edges, how many predictions fall in it, their mean top-class confidence and
    the share of them that are right (None for an empty bin): the reliability diagram's data."""
    p = np.asarray(probs, dtype=np.float64)
    y = _as_labels(labels, p.shape[0])
    conf = p.max(axis=1) if p.size else np.zeros(0)
    correct = (p.argmax(axis=1) == y) if p.size else np.zeros(0, dtype=bool)
    idx = bin_of(conf, bins)
    table = []
    for b in range(bins):
        sel = idx == b
        count = int(sel.sum())
        table.append(
            {
                "lower": b / bins,
                "upper": (b + 1) / bins,
                "count": count,
                "confidence": float(conf[sel].mean()) if count else None,
                "accuracy": float(correct[sel].mean()) if count else None,
            }
        )
    return table


def ece_of_table(table: list[dict[str, Any]]) -> float:
    """ECE = sum over bins of |B_b| / n * |accuracy(B_b) - confidence(B_b)| (0.0 when empty)."""
    n = sum(row["count"] for row in table)
    if n == 0:
        return 0.0
    return float(
        sum(
            row["count"] / n * abs(row["accuracy"] - row["confidence"])
            for row in table
            if row["count"]
        )
    )


def expected_calibration_error(
    probs: npt.ArrayLike, labels: npt.ArrayLike, bins: int = BINS
) -> float:
    """Top-class ECE with equal-width bins (see ``bin_of`` for the edges)."""
    return ece_of_table(reliability_table(probs, labels, bins))


def calibrate(
    logits: npt.ArrayLike, labels: npt.ArrayLike, fitted_on: str, bins: int = BINS
) -> tuple[float, dict[str, Any]]:
    """(T, the report stored in the model's metadata) from held-out logits and labels."""
    z = _as_logits(logits)
    y = _as_labels(labels, z.shape[0])
    if z.shape[0] == 0:
        return 1.0, not_calibrated(f"the {fitted_on} split is empty")
    fitted = fit_temperature(z, y)
    t, supported = cap_temperature(z, y, fitted)
    before = reliability_table(softmax(z), y, bins)
    after = reliability_table(softmax(z, t), y, bins)
    return t, {
        "calibrated": True,
        "fitted_on": fitted_on,
        "images": int(z.shape[0]),
        "bins": bins,
        "temperature": t,
        # The NLL fit and, when it claimed more than (k + 1) / (n + 2), the raised T.
        "temperature_nll": fitted,
        "capped": t != fitted,
        "supported_accuracy": supported,
        "at_bound": bool(
            math.isclose(t, T_MIN, rel_tol=1e-4) or math.isclose(t, T_MAX, rel_tol=1e-4)
        ),
        "nll_before": nll(z, y),
        "nll_after": nll(z, y, t),
        "ece_before": ece_of_table(before),
        "ece_after": ece_of_table(after),
        "reliability_before": before,
        "reliability_after": after,
    }


def not_calibrated(reason: str) -> dict[str, Any]:
    """The report of a model left at T = 1, and why."""
    return {"calibrated": False, "reason": reason, "bins": BINS, "temperature": 1.0}


@dataclass(frozen=True)
class StoredCalibration:
    """What a model's metadata says about its confidences (T = 1 and no report: older models)."""

    temperature: float = 1.0
    report: dict[str, Any] = field(default_factory=dict)
    # The good-class acceptance report (core.vision.acceptance); {} for older models.
    acceptance: dict[str, Any] = field(default_factory=dict)

    @property
    def calibrated(self) -> bool:
        """Whether T was fitted on held-out data."""
        return bool(self.report.get("calibrated"))


def read_stored(meta_path: Path) -> StoredCalibration:
    """The temperature, its report and the acceptance report from an artifact's model.json,
    without loading the model.

    Pages call this (through core.registry) and must not import torch, so it reads the JSON
    itself; OSError or ValueError when the file is missing, too large or not JSON.
    """
    path = Path(meta_path)
    if path.stat().st_size > MAX_META_BYTES:
        raise ValueError(f"{path.name}: metadata too large")
    raw = json.loads(path.read_bytes())
    if not isinstance(raw, dict):
        raise ValueError(f"{path.name}: metadata is not a JSON object")
    report = raw.get("calibration")
    accept = raw.get("acceptance")
    return StoredCalibration(
        temperature=float(raw.get("temperature", 1.0)),
        report=report if isinstance(report, dict) else {},
        acceptance=accept if isinstance(accept, dict) else {},
    )
