"""The demo month's story on its true defect counts: the part stream of core.demo.seed replayed
without drawing images, bucketed as the Trends page buckets it (calendar days of the capture
time, and shifts), and judged as the demo's engineer judges it: limits frozen on the days
before the model change (phase I), then the Western Electric rules over the whole month. Used by
tests/core/demo/test_story.py (the story holds) and bench/demo_story.py (how often it would by
chance)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

from core.demo.seed import LINES, SHIFT_HOURS, DemoPlan, shifts
from core.quality import spc

BUCKETS = ("day", "shift")
Counts = tuple[list[int], list[int]]  # (defects, parts) per bucket, in time order


def true_counts(plan: DemoPlan) -> dict[tuple[str, str], Counts]:
    """(line, 'day' or 'shift') -> the true defects and parts of each bucket. A night shift's
    parts after midnight count on the next day, as on the Trends page."""
    start = datetime(2026, 1, 1, tzinfo=UTC)  # any midnight: the buckets are relative to it
    counts: dict[tuple[str, str], Counts] = defaultdict(lambda: ([0] * plan.days, [0] * plan.days))
    for line in LINES:
        counts[(line, "shift")] = ([], [])
    for shift in shifts(plan, start, render=False):
        defects = sum(c != "ok" for c in shift.classes.values())
        x, n = counts[(shift.line, "shift")]
        x.append(defects)
        n.append(len(shift.classes))
        day = min((shift.trace.captured_at - start).days, plan.days - 1)  # type: ignore[operator]
        x, n = counts[(shift.line, "day")]
        x[day] += defects
        n[day] += len(shift.classes)
    return dict(counts)


def frozen_chart(defects: Sequence[int], sizes: Sequence[int], phase_one: int) -> spc.ControlChart:
    """The chart core.quality.baselines freezes on the first ``phase_one`` buckets (p, or Laney
    p′ when they call for it), drawn over all of them."""
    window = range(phase_one)
    if spc.choose_chart(defects, sizes, baseline=window).chart == spc.P_CHART:
        return spc.p_chart(defects, sizes, baseline=window)
    return spc.laney_p_chart(defects, sizes, baseline=window)


def phase_one_buckets(plan: DemoPlan, by: str) -> int:
    """How many buckets of this kind come before the model change."""
    return plan.switch_day * (1 if by == "day" else len(SHIFT_HOURS))


def signals(plan: DemoPlan) -> dict[str, dict[str, list[int]]]:
    """line -> 'day' / 'shift' -> the buckets with a signal against the frozen limits."""
    counts = true_counts(plan)
    found: dict[str, dict[str, list[int]]] = {line: {} for line in LINES}
    for line in LINES:
        for by in BUCKETS:
            chart = frozen_chart(*counts[(line, by)], phase_one_buckets(plan, by))
            flags = spc.western_electric(chart.z_scores).flags
            found[line][by] = [i for i, f in enumerate(flags) if f]
    return found
