"""The demo month's story, on its true defect counts (the generator's part stream replayed
without drawing images): against the phase I limits of the first two weeks, as the demo's
engineer freezes them, Line 2 is signalled on every day of its drift and never before, and
Lines 1 and 3 show no signal at all, by day or by shift, with room to spare for the model's few
unreviewed mistakes."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import numpy as np
import pytest

from core.demo.seed import DRIFT_LINE, LINES, DemoPlan, shifts
from core.quality import spc

PLAN = DemoPlan()


def _counts(plan: DemoPlan) -> dict[tuple[str, str], tuple[list[int], list[int]]]:
    """(line, 'day' or 'shift') -> (true defects, parts) per bucket, in time order. Days are
    calendar days of the capture time, as the Trends page buckets them: a night shift's parts
    after midnight count on the next day."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    buckets: dict[tuple[str, str], tuple[list[int], list[int]]] = defaultdict(
        lambda: ([0] * plan.days, [0] * plan.days)
    )
    for line in LINES:
        buckets[(line, "shift")] = ([], [])
    rng = np.random.default_rng(plan.story_seed)
    for shift in shifts(plan, rng, range(plan.days), start, render=False):
        defects = sum(c != "ok" for c in shift.classes.values())
        x, n = buckets[(shift.line, "shift")]
        x.append(defects)
        n.append(len(shift.classes))
        day = min((shift.trace.captured_at - start).days, plan.days - 1)  # type: ignore[operator]
        x, n = buckets[(shift.line, "day")]
        x[day] += defects
        n[day] += len(shift.classes)
    return buckets


def _phase_two_chart(defects: list[int], sizes: list[int], phase_one: int) -> spc.ControlChart:
    """The chart core.quality.baselines freezes on the first buckets, over all of them."""
    window = range(phase_one)
    if spc.choose_chart(defects, sizes, baseline=window).chart == spc.P_CHART:
        return spc.p_chart(defects, sizes, baseline=window)
    return spc.laney_p_chart(defects, sizes, baseline=window)


def _longest_run(z: list[float]) -> int:
    best = run = 0
    previous = 0.0
    for value in z:
        run = run + 1 if value * previous > 0 else 1
        previous = value
        best = max(best, run)
    return best


def test_replaying_the_stream_gives_the_classes_the_seeding_renders() -> None:
    drawn = shifts(PLAN, np.random.default_rng(PLAN.story_seed), range(2), datetime(2026, 1, 1))
    replayed = shifts(PLAN, np.random.default_rng(PLAN.story_seed), range(2),
                      datetime(2026, 1, 1), render=False)  # fmt: skip
    for shift, again in zip(drawn, replayed, strict=True):
        assert shift.classes == again.classes and shift.trace == again.trace
        assert [name for name, _ in shift.files] == list(shift.classes) and again.files == []


@pytest.mark.parametrize("line", [line for line in LINES if line != DRIFT_LINE])
def test_the_stable_lines_stay_in_control_all_month(line: str) -> None:
    counts = _counts(PLAN)
    for by, per_day in (("day", 1), ("shift", 3)):
        chart = _phase_two_chart(*counts[(line, by)], PLAN.switch_day * per_day)
        flags = spc.western_electric(chart.z_scores).flags
        assert not any(flags), f"{line} by {by}: signals at {[i for i, f in enumerate(flags) if f]}"
    z = [v for v in _phase_two_chart(*counts[(line, "day")], PLAN.switch_day).z_scores if v]
    # Room for the model: no day near a limit, no run near rule 4's eight.
    assert max(abs(v) for v in z) <= 2.5 and _longest_run(z) <= 6


def test_the_drifting_line_is_signalled_on_each_day_of_its_drift_and_never_before() -> None:
    chart = _phase_two_chart(*_counts(PLAN)[(DRIFT_LINE, "day")], PLAN.switch_day)
    flagged = [i for i, f in enumerate(spc.western_electric(chart.z_scores).flags) if f]
    # The drift starts with the morning shift of drift_day: that day is half drifted.
    assert min(flagged) >= PLAN.drift_day
    assert set(range(PLAN.drift_day + 1, PLAN.days)) <= set(flagged)
