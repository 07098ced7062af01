"""How often does a stable line of the demo month show a chance SPC signal? (issue 11)

Replays the demo's part stream (core.demo.seed.shifts, no images drawn) for many seeds and
judges each line's true defect counts as the demo engineer's frozen limits do: phase I on the
days before the model change, then the Western Electric rules 1-4 over the whole month, on the
daily chart and on the chart by shift. For the stable lines (1 and 3) the share of months with
any signal is the four rules' false-alarm rate on this process; for Line 2 the share whose
drift is signalled from its first whole day on and not before. The demo's own stream
(DemoPlan().story_seed) is reported too.

Prints one JSON object (bench/run_all.sh keeps it as bench/out/demo_story.json).

Usage: python bench/demo_story.py [--seeds 300]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import numpy as np
from common import emit, machine

from core.demo.seed import DRIFT_LINE, LINES, DemoPlan, shifts
from core.quality import spc


def _chart(defects: list[int], sizes: list[int], phase_one: int) -> spc.ControlChart:
    window = range(phase_one)
    if spc.choose_chart(defects, sizes, baseline=window).chart == spc.P_CHART:
        return spc.p_chart(defects, sizes, baseline=window)
    return spc.laney_p_chart(defects, sizes, baseline=window)


def month(seed: int) -> dict[str, dict[str, list[int]]]:
    """Per line, the buckets with a signal on the daily chart and on the chart by shift."""
    plan = DemoPlan(story_seed=seed)
    days: dict[str, tuple[list[int], list[int]]] = defaultdict(
        lambda: ([0] * plan.days, [0] * plan.days)
    )
    by_shift: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    stream = shifts(plan, np.random.default_rng(seed), range(plan.days), start, render=False)
    for shift in stream:
        defects = sum(c != "ok" for c in shift.classes.values())
        # Calendar days of the capture time, as Trends buckets them (night shifts spill over).
        day = min((shift.trace.captured_at - start).days, plan.days - 1)  # type: ignore[operator]
        days[shift.line][0][day] += defects
        days[shift.line][1][day] += len(shift.classes)
        by_shift[shift.line][0].append(defects)
        by_shift[shift.line][1].append(len(shift.classes))
    result = {}
    for line in LINES:
        day_flags = spc.western_electric(_chart(*days[line], plan.switch_day).z_scores).flags
        shift_chart = _chart(*by_shift[line], plan.switch_day * 3)
        shift_flags = spc.western_electric(shift_chart.z_scores).flags
        result[line] = {"days": [i for i, f in enumerate(day_flags) if f],
                        "shifts": [i for i, f in enumerate(shift_flags) if f]}  # fmt: skip
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=300)
    args = parser.parse_args()
    plan = DemoPlan()
    stable = [line for line in LINES if line != DRIFT_LINE]
    day_alarms = shift_alarms = quiet = drift_first_day = 0
    for seed in range(args.seeds):
        found = month(seed)
        alarms = [(bool(found[line]["days"]), bool(found[line]["shifts"])) for line in stable]
        day_alarms += sum(d for d, _ in alarms)
        shift_alarms += sum(s for _, s in alarms)
        quiet += not any(d or s for d, s in alarms)
        # Signalled from the first whole day of the drift on, and never before it.
        signalled = found[DRIFT_LINE]["days"]
        drift_first_day += (
            bool(signalled)
            and min(signalled) >= plan.drift_day
            and (plan.drift_day + 1 in signalled)
        )
    line_months = args.seeds * len(stable)
    out: dict[str, Any] = {
        "benchmark": "demo_story",
        "machine": machine(),
        "seeds": args.seeds,
        "stable_line_months": line_months,
        "daily_chart_false_alarm_share": round(day_alarms / line_months, 3),
        "shift_chart_false_alarm_share": round(shift_alarms / line_months, 3),
        "both_stable_lines_quiet_share": round(quiet / args.seeds, 3),
        "drift_signalled_from_its_first_whole_day_only_share": round(
            drift_first_day / args.seeds, 3
        ),
        "demo_story_seed": plan.story_seed,
        "demo_story_seed_signals": month(plan.story_seed),
    }
    emit(out)


if __name__ == "__main__":
    main()
