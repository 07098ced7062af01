"""The demo month's story, on its true defect counts (core.demo.story): against the phase I
limits of the first two weeks, as the demo's engineer freezes them, Line 2 is signalled on every
day of its drift and never before, and Lines 1 and 3 show no signal at all, by day or by shift,
with room to spare for the model's few unreviewed mistakes."""

from __future__ import annotations

import itertools
from datetime import datetime

import pytest

from core.demo import story
from core.demo.seed import DRIFT_LINE, LINES, DemoPlan, shifts

PLAN = DemoPlan()


def _longest_run(z: list[float]) -> int:
    best = run = 0
    previous = 0.0
    for value in z:
        run = run + 1 if value * previous > 0 else 1
        previous = value
        best = max(best, run)
    return best


def test_replaying_the_stream_gives_the_classes_the_seeding_renders() -> None:
    two_days = 2 * 9  # three lines, three shifts
    drawn = itertools.islice(shifts(PLAN, datetime(2026, 1, 1)), two_days)
    replayed = itertools.islice(shifts(PLAN, datetime(2026, 1, 1), render=False), two_days)
    for shift, again in zip(drawn, replayed, strict=True):
        assert shift.classes == again.classes and shift.trace == again.trace
        assert [name for name, _ in shift.files] == list(shift.classes) and again.files == []


@pytest.mark.parametrize("line", [line for line in LINES if line != DRIFT_LINE])
def test_the_stable_lines_stay_in_control_all_month(line: str) -> None:
    found = story.signals(PLAN)[line]
    assert found == {"day": [], "shift": []}, f"{line}: signals at {found}"
    chart = story.frozen_chart(*story.true_counts(PLAN)[(line, "day")], PLAN.switch_day)
    z = [v for v in chart.z_scores if v]
    # Room for the model: no day near a limit, no run near rule 4's eight.
    assert max(abs(v) for v in z) <= 2.5 and _longest_run(z) <= 6


def test_the_drifting_line_is_signalled_on_each_day_of_its_drift_and_never_before() -> None:
    flagged = story.signals(PLAN)[DRIFT_LINE]["day"]
    # The drift starts with the morning shift of drift_day: that day is half drifted.
    assert min(flagged) >= PLAN.drift_day
    assert set(range(PLAN.drift_day + 1, PLAN.days)) <= set(flagged)
