"""Rolling-origin backtest of the defect-rate forecast methods (core/quality/forecast.py).

Synthetic daily series that look like a plant's: a stable rate, a step change, a slow trend, a
random-walk drift, odd bad-lot days (3 % of days at about 3x the rate), weekly volume (light
Saturdays, no Sundays: missing days), overdispersed day-to-day variation, 50 and 5000 parts a
day. From each origin every method forecasts the next 7 calendar days from the history up to
it; each day with parts is scored against its observed rate x/n: 80 % and 95 % coverage and the
interval score (Gneiting & Raftery 2007; lower is better: the width plus 2/alpha times any
miss). The chosen method has the lowest geometric mean, over scenarios, of its interval score
(80 % and 95 % averaged) relative to the naive baseline's. Also times forecast() on 365 days.
Usage: python bench/forecast_backtest.py [--json] [--reps 4]  (also writes bench/out/...json)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from common import OUT_DIR, emit

from core.quality import forecast as fc

TZ = ZoneInfo("Europe/Berlin")
DAYS = 210
FIRST_ORIGIN = 56  # two months of history before the first forecast
ORIGIN_STEP = 5  # not 7, so origins fall on every weekday
START = datetime(2025, 1, 6)  # a Monday; the series crosses the March DST change


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _flat(n_mean: float) -> Callable[[np.random.Generator, int], int]:
    return lambda rng, t: int(rng.poisson(n_mean))


def _weekly(rng: np.random.Generator, t: int) -> int:
    weekday = (START + timedelta(days=t)).weekday()
    return 0 if weekday == 6 else int(rng.poisson(300 if weekday == 5 else 1200))


# name -> (logit of the true rate on day t, extra daily logit sd, parts on day t)
Scenario = tuple[Callable[[np.random.Generator, np.ndarray], np.ndarray], float, Any]
SCENARIOS: dict[str, Scenario] = {
    "stable": (lambda rng, t: np.full(len(t), _logit(0.03)), 0.0, _flat(800)),
    "step": (lambda rng, t: np.where(t < 130, _logit(0.02), _logit(0.06)), 0.05, _flat(800)),
    "trend": (lambda rng, t: np.linspace(_logit(0.02), _logit(0.06), len(t)), 0.05, _flat(800)),
    "drift": (lambda rng, t: _logit(0.03) + np.cumsum(rng.normal(0, 0.04, len(t))), 0.0,
              _flat(800)),
    "bad_lots": (lambda rng, t: _logit(0.03) + 1.1 * (rng.random(len(t)) < 0.03), 0.05,
                 _flat(800)),
    "weekly_volume": (lambda rng, t: np.full(len(t), _logit(0.03)), 0.05, _weekly),
    "overdispersed": (lambda rng, t: np.full(len(t), _logit(0.04)), 0.35, _flat(800)),
    "small_n": (lambda rng, t: np.full(len(t), _logit(0.04)), 0.2, _flat(50)),
    "large_n": (lambda rng, t: np.full(len(t), _logit(0.01)), 0.15, _flat(5000)),
}  # fmt: skip


def simulate(name: str, seed: int) -> list[fc.Day]:
    """One synthetic series: every calendar day, parts 0 on days the plant did not run."""
    level, extra_sd, parts = SCENARIOS[name]
    rng = np.random.default_rng(seed)
    t = np.arange(DAYS)
    p = 1 / (1 + np.exp(-(level(rng, t) + rng.normal(0, extra_sd, DAYS) * (extra_sd > 0))))
    days = []
    for i in range(DAYS):
        n = parts(rng, i)
        start = (START + timedelta(days=i)).replace(tzinfo=TZ)
        days.append(fc.Day(start, n, int(rng.binomial(n, p[i])) if n else 0))
    return days


def interval_score(lo: float, hi: float, y: float, alpha: float) -> float:
    """Width plus 2/alpha times the miss distance."""
    return (hi - lo) + 2 / alpha * (max(lo - y, 0.0) + max(y - hi, 0.0))


def backtest(name: str, method: str, reps: int) -> dict[str, Any]:
    """Coverage, interval scores, time per forecast and fallbacks for one method on one scenario."""
    hit80, hit95, is80, is95, ms, fallbacks = [], [], [], [], [], 0
    for seed in range(reps):
        days = simulate(name, seed)
        for origin in range(FIRST_ORIGIN, DAYS - fc.HORIZON_DAYS, ORIGIN_STEP):
            while days[origin].parts == 0:  # forecast from the last day the plant ran
                origin -= 1
            t0 = time.perf_counter()
            f = fc.forecast(days[: origin + 1], method=method)
            ms.append((time.perf_counter() - t0) * 1000)
            assert f is not None
            fallbacks += f.method != method
            for h, point in enumerate(f.days, start=1):
                day = days[origin + h]
                assert point.start == day.start
                if day.parts == 0:
                    continue
                y = day.defects / day.parts
                hit80.append(point.lo80 <= y <= point.hi80)
                hit95.append(point.lo95 <= y <= point.hi95)
                is80.append(interval_score(point.lo80, point.hi80, y, 0.2))
                is95.append(interval_score(point.lo95, point.hi95, y, 0.05))
    return {
        "coverage80": round(statistics.fmean(hit80), 3),
        "coverage95": round(statistics.fmean(hit95), 3),
        "interval_score80": round(statistics.fmean(is80), 5),
        "interval_score95": round(statistics.fmean(is95), 5),
        "interval_score": round((statistics.fmean(is80) + statistics.fmean(is95)) / 2, 5),
        "mean_ms": round(statistics.fmean(ms), 2),
        "forecasts": len(ms),
        "scored_days": len(hit80),
        "fallbacks": fallbacks,
    }


def choose(results: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Lowest geometric-mean interval score relative to naive, over scenarios."""
    relative = {
        m: math.exp(statistics.fmean(
            math.log(per[s]["interval_score"] / results["naive"][s]["interval_score"])
            for s in SCENARIOS))
        for m, per in results.items()
    }  # fmt: skip
    best = min(relative, key=relative.__getitem__)
    worst95 = min(results[best][s]["coverage95"] for s in SCENARIOS)
    reason = (
        f"{best}: lowest interval score across the {len(SCENARIOS)} scenarios, "
        f"{relative[best]:.3f}x the naive baseline's (geometric mean); its 95 % coverage is "
        f"at least {worst95:.3f} in every scenario"
    )
    return {"method": best, "reason": reason, "relative_interval_score": {
        m: round(v, 3) for m, v in sorted(relative.items(), key=lambda kv: kv[1])}}  # fmt: skip


def timing(runs: int = 20) -> dict[str, Any]:
    """forecast() on 365 days of history: first call (imports scipy) and the median of warm ones."""
    start = datetime(2024, 1, 1)
    rng = np.random.default_rng(0)
    days = [fc.Day((start + timedelta(days=i)).replace(tzinfo=TZ), 1000,
                   int(rng.binomial(1000, 0.04))) for i in range(365)]  # fmt: skip
    t0 = time.perf_counter()
    fc.forecast(days)
    out: dict[str, Any] = {"first_call_default_ms": round((time.perf_counter() - t0) * 1000, 1)}
    for method in fc.METHODS:
        fc.forecast(days, method=method)  # warm: imports done
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fc.forecast(days, method=method)
            times.append((time.perf_counter() - t0) * 1000)
        out[f"{method}_median_ms"] = round(statistics.median(times), 2)
    return out


def main() -> None:
    """Run the backtest, print one JSON object and write it to bench/out."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", action="store_true", help="accepted; the output is JSON")
    parser.add_argument("--reps", type=int, default=4, help="seeded series per scenario")
    args = parser.parse_args()
    speed = timing()  # first, so its first call is the process's first
    results = {m: {s: backtest(s, m, args.reps) for s in SCENARIOS} for m in fc.METHODS}
    report = {
        "bench": "forecast_backtest",
        "setup": {
            "days": DAYS,
            "first_origin": FIRST_ORIGIN,
            "origin_step": ORIGIN_STEP,
            "horizon_days": fc.HORIZON_DAYS,
            "reps": args.reps,
            "time_zone": str(TZ),
            "default_in_module": fc.DEFAULT_METHOD,
        },  # fmt: skip
        "results": results,
        "chosen": choose(results),
        "timing_365_days": speed,
    }
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    emit(report)  # adds the machine facts
    (OUT_DIR / "forecast_backtest.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
