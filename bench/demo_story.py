"""How often does a stable line of the demo month show a chance SPC signal? (issue 11)

Replays the demo's part stream for many seeds (core.demo.story: no images drawn) and judges
each line's true defect counts as the demo engineer's frozen limits do: phase I on the days
before the model change, then the Western Electric rules 1-4 over the whole month, on the daily
chart and on the chart by shift. For the stable lines (1 and 3) the share of months with
any signal is the four rules' false-alarm rate on this process; for Line 2 the share whose
drift is signalled from its first whole day on and not before. The demo's own stream
(DemoPlan().story_seed) is reported too.

Prints one JSON object (bench/run_all.sh keeps it as bench/out/demo_story.json).

Usage: python bench/demo_story.py [--seeds 300]
"""

from __future__ import annotations

import argparse
from typing import Any

from common import emit, machine

from core.demo import story
from core.demo.seed import DRIFT_LINE, LINES, DemoPlan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=300)
    args = parser.parse_args()
    plan = DemoPlan()
    stable = [line for line in LINES if line != DRIFT_LINE]
    day_alarms = shift_alarms = quiet = drift_first_day = 0
    for seed in range(args.seeds):
        found = story.signals(DemoPlan(story_seed=seed))
        alarms = [(bool(found[line]["day"]), bool(found[line]["shift"])) for line in stable]
        day_alarms += sum(d for d, _ in alarms)
        shift_alarms += sum(s for _, s in alarms)
        quiet += not any(d or s for d, s in alarms)
        # Signalled from the first whole day of the drift on, and never before it.
        signalled = found[DRIFT_LINE]["day"]
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
        "demo_story_seed_signals": story.signals(plan),
    }
    emit(out)


if __name__ == "__main__":
    main()
