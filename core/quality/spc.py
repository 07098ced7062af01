"""SPC for defect rates: p and Laney p′ charts, the chooser, Western Electric rules, Pareto.

Pure functions over per-bucket counts (x_i defective of n_i inspected per hour, shift or lot).
A bucket with n_i = 0 is empty: no rate, limits or flags, and the rules and Laney's moving ranges
step over it. The baseline (phase I) gives p̄ and σ_z: every bucket by default, or a frozen
window, minus buckets excluded for an assignable cause.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

from core.errors import ValidationError

P_CHART = "p"
LANEY_P_CHART = "laney_p"
# d2 for ranges of two: E|X1 − X2| = 1.128 σ for independent normal X1, X2.
_D2_MOVING_RANGE = 1.128
# Upper 1 % point of the standard normal, for the chi-square quantile in choose_chart.
_Z_UPPER_1PCT = 2.3263478740408408

RULE_DESCRIPTIONS: Mapping[int, str] = MappingProxyType(
    {
        1: "Rule 1: 1 point beyond 3σ",
        2: "Rule 2: 2 of 3 points in a row beyond 2σ on the same side",
        3: "Rule 3: 4 of 5 points in a row beyond 1σ on the same side",
        4: "Rule 4: 8 points in a row on the same side of the centre line",
    }
)

Baseline = range | Sequence[bool] | None


@dataclass(frozen=True)
class ChartPoint:
    """One bucket; rate, limits and z are None when it is empty. z is (p − p̄)/σ_i on a p-chart,
    (p − p̄)/(σ_i·σ_z) on Laney p′: the chart's own σ units, ±3 at the unclamped limits."""

    index: int
    defects: int
    size: int
    rate: float | None
    lcl: float | None
    ucl: float | None
    z: float | None
    in_baseline: bool


@dataclass(frozen=True)
class ControlChart:
    """A p or Laney p′ chart: its name, centre line p̄, σ_z (1 for a p-chart) and its points."""

    chart: str
    centre: float
    sigma_z: float
    points: tuple[ChartPoint, ...]

    @property
    def z_scores(self) -> list[float | None]:
        """The standardised points, ready for western_electric."""
        return [point.z for point in self.points]


@dataclass(frozen=True)
class ChartChoice:
    """Which chart to draw ("p" or "laney_p"), the σ_z it was judged by, and why in words."""

    chart: str
    sigma_z: float | None
    reason: str


@dataclass(frozen=True)
class RuleCheck:
    """Western Electric rule numbers per point (empty for a quiet or empty bucket)."""

    flags: tuple[tuple[int, ...], ...]
    descriptions: ClassVar[Mapping[int, str]] = RULE_DESCRIPTIONS

    @property
    def flagged(self) -> tuple[int, ...]:
        """Indices of the points that trigger at least one rule."""
        return tuple(i for i, rules in enumerate(self.flags) if rules)


@dataclass(frozen=True)
class ParetoRow:
    """One defect class: its count and the share of all defects up to and including it."""

    name: str
    count: int
    cumulative_share: float


@dataclass(frozen=True)
class Pareto:
    """Classes by count, largest first, and the few that make up the first `cutoff` of defects."""

    rows: tuple[ParetoRow, ...]
    vital_few: tuple[str, ...]
    cutoff: float


def baseline_mask(
    n_buckets: int, baseline: Baseline = None, excluded: Iterable[int] = ()
) -> list[bool]:
    """Which buckets feed the centre line and σ_z: the window (default all) minus the excluded."""
    if baseline is None:
        mask = [True] * n_buckets
    elif isinstance(baseline, range):
        window = set(baseline)
        mask = [i in window for i in range(n_buckets)]
    else:
        if len(baseline) != n_buckets:
            raise ValidationError(f"A baseline mask of {len(baseline)} for {n_buckets} buckets.")
        mask = [bool(b) for b in baseline]
    for i in excluded:
        if not 0 <= i < n_buckets:
            raise ValidationError(f"Excluded bucket {i} is outside 0..{n_buckets - 1}.")
        mask[i] = False
    return mask


def centre_line(
    defects: Sequence[int],
    sizes: Sequence[int],
    baseline: Baseline = None,
    excluded: Iterable[int] = (),
) -> float:
    """p̄ = Σx / Σn over the baseline buckets (empty buckets add nothing to either sum)."""
    _check_counts(defects, sizes)
    mask = baseline_mask(len(sizes), baseline, excluded)
    inspected = sum(n for n, keep in zip(sizes, mask, strict=True) if keep)
    if inspected == 0:
        raise ValidationError("The baseline has no inspected parts, so it has no defect rate.")
    return sum(x for x, keep in zip(defects, mask, strict=True) if keep) / inspected


def p_chart(
    defects: Sequence[int],
    sizes: Sequence[int],
    *,
    baseline: Baseline = None,
    excluded: Iterable[int] = (),
    p_bar: float | None = None,
) -> ControlChart:
    """Shewhart p-chart: limits p̄ ± 3·sqrt(p̄(1−p̄)/n_i) per bucket, clamped to [0, 1].

    p̄ comes from the baseline unless a frozen p_bar is given.
    """
    excluded = tuple(excluded)
    centre = _centre(defects, sizes, baseline, excluded, p_bar)
    mask = baseline_mask(len(sizes), baseline, excluded)
    return _build(P_CHART, defects, sizes, mask, centre, 1.0)


def laney_sigma_z(
    defects: Sequence[int],
    sizes: Sequence[int],
    *,
    baseline: Baseline = None,
    excluded: Iterable[int] = (),
    p_bar: float | None = None,
) -> float:
    """Laney's σ_z: mean |z_i − z_(i−1)| over consecutive non-empty baseline buckets / 1.128."""
    excluded = tuple(excluded)
    centre = _centre(defects, sizes, baseline, excluded, p_bar)
    mask = baseline_mask(len(sizes), baseline, excluded)
    z = _baseline_z(defects, sizes, mask, centre)
    if len(z) < 2:
        raise ValidationError("σ_z needs at least two non-empty baseline buckets.")
    return _moving_range_sigma(z)


def laney_p_chart(
    defects: Sequence[int],
    sizes: Sequence[int],
    *,
    baseline: Baseline = None,
    excluded: Iterable[int] = (),
    p_bar: float | None = None,
    sigma_z: float | None = None,
) -> ControlChart:
    """Laney p′ chart (Laney 2002): limits p̄ ± 3·σ_i·σ_z, clamped to [0, 1].

    p̄ and σ_z come from the baseline unless frozen values are given.
    """
    excluded = tuple(excluded)
    centre = _centre(defects, sizes, baseline, excluded, p_bar)
    if sigma_z is None:
        sigma_z = laney_sigma_z(defects, sizes, baseline=baseline, excluded=excluded, p_bar=centre)
    elif sigma_z < 0:
        raise ValidationError(f"σ_z must not be negative, got {sigma_z}.")
    mask = baseline_mask(len(sizes), baseline, excluded)
    return _build(LANEY_P_CHART, defects, sizes, mask, centre, sigma_z)


def choose_chart(
    defects: Sequence[int],
    sizes: Sequence[int],
    *,
    baseline: Baseline = None,
    excluded: Iterable[int] = (),
) -> ChartChoice:
    """Say whether the plain p-chart or Laney p′ fits the baseline, and why, in plain words.

    Rule: Laney p′ when σ_z > 1 and Pearson's dispersion statistic X² = Σ z_i² over the k
    non-empty baseline buckets exceeds the upper 1 % point of χ²(k − 1); else the p-chart.
    Why: σ_z alone is noisy (a purely binomial process with 20 buckets gives σ_z > 1.35 about
    one time in twenty), so a bare threshold misses real overdispersion or switches on noise.
    X² has a known law under the binomial model, so the test says the extra spread is real;
    σ_z > 1 says it is routine bucket-to-bucket spread that Laney's limits absorb. Under-
    dispersion keeps the p-chart (its limits are then merely conservative).
    """
    excluded = tuple(excluded)
    centre = centre_line(defects, sizes, baseline, excluded)
    mask = baseline_mask(len(sizes), baseline, excluded)
    z = _baseline_z(defects, sizes, mask, centre)
    if len(z) < 2:
        return ChartChoice(
            P_CHART, None, "Fewer than two baseline buckets have parts; σ_z needs two."
        )
    sigma_z, dof, x2 = _moving_range_sigma(z), len(z) - 1, sum(v * v for v in z)
    critical = _chi2_upper(dof, _Z_UPPER_1PCT)
    test = f"chi-square {x2:.1f} vs {critical:.1f} at the 1 % level on {dof} df"
    if sigma_z <= 1:
        why = "buckets vary no more than binomial sampling predicts, so the p-chart's limits fit."
        return ChartChoice(P_CHART, sigma_z, f"σ_z = {sigma_z:.2f} ≤ 1: {why}")
    if x2 <= critical:
        why = f"is above 1 but within chance for {len(z)} buckets ({test}); keep the p-chart."
        return ChartChoice(P_CHART, sigma_z, f"σ_z = {sigma_z:.2f} {why}")
    why = (
        f"buckets vary more than binomial sampling explains ({test}); the p-chart's limits "
        "would be too narrow and flag routine variation, so use Laney p′ (once points beyond "
        "the p-chart's limits are ruled out as special causes: they inflate σ_z too)."
    )
    return ChartChoice(LANEY_P_CHART, sigma_z, f"σ_z = {sigma_z:.2f}: {why}")


def western_electric(z: Sequence[float | None]) -> RuleCheck:
    """Western Electric rules 1–4 on standardised points (None = empty bucket, skipped).

    Flagged is the point that completes a pattern, and only if it is itself part of it.
    Rule 1: |z| > 3. Rule 2: z > 2 (or < −2) and at least 2 of the last 3 points, this one
    included, beyond 2σ on that side. Rule 3: likewise z beyond 1σ and 4 of the last 5. Rule 4:
    this point and the 7 before it strictly on one side (z = 0 breaks a run). "Beyond" is
    strict; near the chart's start rules 2–3 use the points there are; a pattern that goes on
    flags each new point. "Last" counts plotted points: empty buckets are skipped over.
    """
    positions = [i for i, v in enumerate(z) if v is not None and not math.isnan(v)]
    values = [float(v) for v in z if v is not None and not math.isnan(v)]
    flags: list[tuple[int, ...]] = [()] * len(z)
    for j, (position, value) in enumerate(zip(positions, values, strict=True)):
        rules: list[int] = []
        if abs(value) > 3:
            rules.append(1)
        for rule, zone, span, needed in ((2, 2.0, 3, 2), (3, 1.0, 5, 4)):
            window = values[max(0, j - span + 1) : j + 1]
            for side in (1.0, -1.0):
                if side * value > zone and sum(side * w > zone for w in window) >= needed:
                    rules.append(rule)
        run = values[j - 7 : j + 1] if j >= 7 else []
        if run and (all(w > 0 for w in run) or all(w < 0 for w in run)):
            rules.append(4)
        flags[position] = tuple(rules)
    return RuleCheck(tuple(flags))


def pareto(counts: Mapping[str, int], cutoff: float = 0.8) -> Pareto:
    """Defect classes by count (ties by name) with cumulative shares, and the vital few.

    The vital few are the classes from the top down to and including the first one whose
    cumulative share reaches `cutoff` (80 % by default); none when there are no defects.
    """
    if not 0 < cutoff <= 1:
        raise ValidationError(f"The Pareto cutoff must be in (0, 1], got {cutoff}.")
    if any(count < 0 for count in counts.values()):
        raise ValidationError("Defect counts must not be negative.")
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    total = sum(count for _, count in ordered)
    rows: list[ParetoRow] = []
    vital: list[str] = []
    running = 0
    for name, count in ordered:
        # A hair of slack so a share of exactly 80 % counts as reaching the cutoff.
        if total and running < cutoff * total - 1e-9:
            vital.append(name)
        running += count
        rows.append(ParetoRow(name, count, running / total if total else 0.0))
    return Pareto(tuple(rows), tuple(vital), cutoff)


def _check_counts(defects: Sequence[int], sizes: Sequence[int]) -> None:
    if len(defects) != len(sizes):
        raise ValidationError(f"{len(defects)} defect counts but {len(sizes)} sample sizes.")
    for i, (x, n) in enumerate(zip(defects, sizes, strict=True)):
        if n < 0 or x < 0 or x > n:
            raise ValidationError(f"Bucket {i}: {x} defective out of {n} inspected is impossible.")


def _centre(
    defects: Sequence[int],
    sizes: Sequence[int],
    baseline: Baseline,
    excluded: tuple[int, ...],
    p_bar: float | None,
) -> float:
    if p_bar is None:
        return centre_line(defects, sizes, baseline, excluded)
    _check_counts(defects, sizes)
    if not 0 <= p_bar <= 1:
        raise ValidationError(f"A defect rate must be between 0 and 1, got {p_bar}.")
    return p_bar


def _standardise(rate: float, centre: float, sigma: float) -> float:
    if sigma > 0:
        return (rate - centre) / sigma
    # No spread (p̄ of 0 or 1, or σ_z = 0): any other rate is infinitely far out.
    return 0.0 if rate == centre else math.copysign(math.inf, rate - centre)


def _baseline_z(
    defects: Sequence[int], sizes: Sequence[int], mask: Sequence[bool], centre: float
) -> list[float]:
    return [
        _standardise(x / n, centre, math.sqrt(centre * (1 - centre) / n))
        for x, n, keep in zip(defects, sizes, mask, strict=True)
        if keep and n > 0
    ]


def _build(
    chart: str,
    defects: Sequence[int],
    sizes: Sequence[int],
    mask: Sequence[bool],
    centre: float,
    sigma_z: float,
) -> ControlChart:
    points = []
    for i, (x, n, keep) in enumerate(zip(defects, sizes, mask, strict=True)):
        if n == 0:
            points.append(ChartPoint(i, x, n, None, None, None, None, keep))
            continue
        sigma = math.sqrt(centre * (1 - centre) / n) * sigma_z
        rate = x / n
        lcl, ucl = max(0.0, centre - 3 * sigma), min(1.0, centre + 3 * sigma)
        points.append(ChartPoint(i, x, n, rate, lcl, ucl, _standardise(rate, centre, sigma), keep))
    return ControlChart(chart, centre, sigma_z, tuple(points))


def _moving_range_sigma(z: Sequence[float]) -> float:
    # Excluded and empty buckets are already dropped, so a range spans the gap they leave.
    ranges = [abs(b - a) for a, b in zip(z, z[1:], strict=False)]
    return sum(ranges) / len(ranges) / _D2_MOVING_RANGE


def _chi2_upper(dof: int, z: float) -> float:
    # Wilson–Hilferty: (X²/k)^(1/3) is close to normal; within ~0.05 of the tables from 1 df up.
    a = 2 / (9 * dof)
    return dof * (1 - a + z * math.sqrt(a)) ** 3
