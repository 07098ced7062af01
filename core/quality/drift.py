"""Model drift over time: the mean calibrated confidence per bucket on an individuals chart, and
the share of unsure parts on a p or Laney p′ chart, each with its own limits and signals.

Why an individuals (X-mR) chart for the confidence: the rollup keeps each bucket's confidence
sum, not its spread, so there is no within-bucket σ; the moving range of consecutive bucket means
estimates the routine bucket-to-bucket spread directly (the same idea as Laney's σ_z). A model
that meets images it was not trained on loses confidence before its defect rate moves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import ValidationError
from core.quality import spc
from core.quality.buckets import Bucket

# 3 / d2 for moving ranges of two: x̄ ± 2.66·MR̄ (Montgomery, Introduction to SQC, 6.4).
_D2_MOVING_RANGE = 1.128


@dataclass(frozen=True)
class IndividualsChart:
    """X chart of an X-mR pair: centre x̄, MR̄, limits x̄ ± 3·MR̄/1.128, and each point's z."""

    centre: float
    mean_moving_range: float
    lcl: float
    ucl: float
    values: tuple[float | None, ...]
    z: tuple[float | None, ...]


@dataclass(frozen=True)
class Drift:
    """Mean confidence (individuals chart) and unsure share (p or Laney p′) per bucket."""

    confidence: IndividualsChart | None  # None: fewer than two buckets with parts
    confidence_signals: list[list[int]]
    unsure: spc.ControlChart | None
    unsure_choice: spc.ChartChoice | None
    unsure_signals: list[list[int]]


def individuals_chart(values: Sequence[float | None]) -> IndividualsChart:
    """The X chart of an X-mR pair; None values are empty buckets, skipped by the moving ranges."""
    present = [v for v in values if v is not None]
    if len(present) < 2:
        raise ValidationError("An individuals chart needs at least two values.")
    centre = sum(present) / len(present)
    ranges = [abs(b - a) for a, b in zip(present, present[1:], strict=False)]
    mr_bar = sum(ranges) / len(ranges)
    sigma = mr_bar / _D2_MOVING_RANGE
    z: list[float | None] = []
    for v in values:
        if v is None:
            z.append(None)
        elif sigma > 0:
            z.append((v - centre) / sigma)
        else:  # no spread at all: anything off the centre is infinitely far out
            z.append(0.0 if v == centre else math.copysign(math.inf, v - centre))
    return IndividualsChart(
        centre=centre, mean_moving_range=mr_bar, lcl=centre - 3 * sigma, ucl=centre + 3 * sigma,
        values=tuple(values), z=tuple(z),
    )  # fmt: skip


def drift(buckets: Sequence[Bucket]) -> Drift:
    """Both drift charts over the buckets, with their Western Electric signals."""
    means = [b.confidence_sum / b.parts if b.parts else None for b in buckets]
    confidence: IndividualsChart | None = None
    confidence_signals: list[list[int]] = [[] for _ in buckets]
    if sum(m is not None for m in means) >= 2:
        confidence = individuals_chart(means)
        confidence_signals = [list(f) for f in spc.western_electric(list(confidence.z)).flags]
    unsure: spc.ControlChart | None = None
    choice: spc.ChartChoice | None = None
    unsure_signals: list[list[int]] = [[] for _ in buckets]
    if buckets:
        counts, sizes = [b.unsure for b in buckets], [b.parts for b in buckets]
        choice = spc.choose_chart(counts, sizes)
        if choice.chart == spc.LANEY_P_CHART:
            unsure = spc.laney_p_chart(counts, sizes)
        else:
            unsure = spc.p_chart(counts, sizes)
        unsure_signals = [list(f) for f in spc.western_electric(unsure.z_scores).flags]
    return Drift(confidence, confidence_signals, unsure, choice, unsure_signals)
