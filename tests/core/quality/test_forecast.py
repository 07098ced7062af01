"""The defect-rate forecast: history threshold, DST-correct days, accuracy, edge cases, coverage."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from core.quality import forecast as fc

BERLIN = ZoneInfo("Europe/Berlin")


def days_of(
    rates: Sequence[float], parts: Sequence[int] | int, seed: int = 0, last: datetime | None = None
) -> list[fc.Day]:
    """Binomial daily counts at the given true rates, one per calendar day, ending on `last`."""
    rng = np.random.default_rng(seed)
    sizes = [parts] * len(rates) if isinstance(parts, int) else list(parts)
    last = last or datetime(2025, 6, 30)
    first = last - timedelta(days=len(rates) - 1)
    return [
        fc.Day((first + timedelta(days=i)).replace(tzinfo=BERLIN), n, int(rng.binomial(n, p)))
        for i, (p, n) in enumerate(zip(rates, sizes, strict=True))
    ]


def fixed(parts: int, defects: int, count: int = 40) -> list[fc.Day]:
    """The same counts every day."""
    first = datetime(2025, 1, 1)
    return [fc.Day((first + timedelta(days=i)).replace(tzinfo=BERLIN), parts, defects)
            for i in range(count)]  # fmt: skip


def assert_sane(f: fc.Forecast) -> None:
    """Seven days, every value in [0, 1], lo95 <= lo80 <= rate <= hi80 <= hi95."""
    assert len(f.days) == fc.HORIZON_DAYS
    for d in f.days:
        assert 0.0 <= d.lo95 <= d.lo80 <= d.rate <= d.hi80 <= d.hi95 <= 1.0, d


def test_fewer_than_28_days_with_parts_is_no_forecast() -> None:
    assert fc.forecast(days_of([0.05] * 27, 200)) is None
    # 34 calendar days, 7 of them without parts: those do not count towards the history.
    days = [d if i % 5 else fc.Day(d.start, 0, 0) for i, d in enumerate(days_of([0.05] * 34, 200))]
    assert sum(d.parts > 0 for d in days) == 27
    assert fc.forecast(days) is None
    assert fc.forecast([]) is None


def test_28_days_give_seven_days_after_the_last() -> None:
    days = days_of([0.05] * fc.MIN_HISTORY_DAYS, 200)
    f = fc.forecast(days)
    assert f is not None
    assert f.history_days == 28
    assert_sane(f)
    assert [d.start for d in f.days] == [datetime(2025, 7, k, tzinfo=BERLIN) for k in range(1, 8)]


@pytest.mark.parametrize(
    ("last", "short_or_long"),
    [(datetime(2025, 3, 27), timedelta(hours=23)), (datetime(2025, 10, 23), timedelta(hours=25))],
)
def test_forecast_days_are_local_midnights_across_dst(
    last: datetime, short_or_long: timedelta
) -> None:
    f = fc.forecast(days_of([0.03] * 40, 500, last=last))
    assert f is not None
    starts = [d.start for d in f.days]
    assert all(s.tzinfo is BERLIN and (s.hour, s.minute) == (0, 0) for s in starts)
    assert [s.date() for s in starts] == [(last + timedelta(days=k)).date() for k in range(1, 8)]
    utc_lengths = [
        b.astimezone(ZoneInfo("UTC")) - a.astimezone(ZoneInfo("UTC"))
        for a, b in zip(starts, starts[1:], strict=False)
    ]
    assert short_or_long in utc_lengths
    assert sorted(set(utc_lengths)) == sorted({timedelta(hours=24), short_or_long})
    assert len({s.utcoffset() for s in starts}) == 2


def test_constant_rate_is_forecast_tightly() -> None:
    f = fc.forecast(days_of([0.05] * 90, 1000, seed=3))
    assert f is not None
    for d in f.days:
        assert abs(d.rate - 0.05) < 0.005
        assert d.lo95 <= 0.05 <= d.hi95
        assert d.hi95 - d.lo95 < 0.04  # binomial spread at n=1000 is about ±0.014
        assert d.parts == 1000


def test_a_step_thirty_days_ago_is_followed() -> None:
    f = fc.forecast(days_of([0.02] * 90 + [0.08] * 30, 1000, seed=1))
    assert f is not None
    assert all(abs(d.rate - 0.08) < 0.01 for d in f.days)
    assert all(d.lo95 > 0.05 for d in f.days)


@pytest.mark.parametrize("method", list(fc.METHODS))
@pytest.mark.parametrize(
    ("parts", "defects"), [(100, 0), (100, 100), (1, 0), (1, 1), (1000, 50)], ids=str
)
def test_degenerate_series_stay_inside_zero_one(method: str, parts: int, defects: int) -> None:
    f = fc.forecast(fixed(parts, defects), method=method)
    assert f is not None
    assert_sane(f)
    if defects == 0:
        assert all(d.rate < 0.01 and d.lo95 == 0.0 for d in f.days)
    if defects == parts:
        assert all(d.rate > 0.99 and d.hi95 == 1.0 for d in f.days)


@pytest.mark.parametrize("method", list(fc.METHODS))
def test_every_method_orders_its_intervals_on_noisy_data(method: str) -> None:
    rates = 1 / (1 + np.exp(-(-3 + np.random.default_rng(5).normal(0, 0.4, 120))))
    f = fc.forecast(days_of(list(rates), [50, 2000] * 60, seed=5), method=method)
    assert f is not None
    assert f.method == method
    assert "as requested" in f.reason
    assert_sane(f)


def test_ets_failing_falls_back_and_says_why() -> None:
    f = fc.forecast(fixed(1000, 50), method="ets")
    assert f is not None
    assert f.method != "ets"
    assert "ETS" in f.reason and "failed" in f.reason
    assert_sane(f)


def test_days_without_parts_are_missing_not_zero() -> None:
    weekdays = [d for d in days_of([0.04] * 84, 800, seed=7) if d.start.weekday() < 5]
    with_zeros = sorted(
        weekdays + [fc.Day(d.start + timedelta(days=1), 0, 0) for d in weekdays
                    if d.start.weekday() == 4],
        key=lambda d: d.start,
    )  # fmt: skip
    a, b = fc.forecast(weekdays), fc.forecast(with_zeros)
    assert a is not None and b is not None
    assert a == b
    assert a.history_days == len(weekdays) == 60
    assert abs(a.days[0].rate - 0.04) < 0.01
    # Seven calendar days after the last day (a Monday), the weekend included.
    assert weekdays[-1].start.weekday() == 0
    assert [d.start.weekday() for d in a.days] == [1, 2, 3, 4, 5, 6, 0]


def test_intervals_are_for_each_weekdays_usual_parts() -> None:
    last = datetime(2025, 6, 30)  # a Monday
    parts = [200 if (last - timedelta(days=55 - i)).weekday() == 5 else 1000 for i in range(56)]
    f = fc.forecast(days_of([0.05] * 56, parts, seed=4, last=last))
    assert f is not None
    saturday = next(d for d in f.days if d.start.weekday() == 5)
    tuesday = f.days[0]
    assert (saturday.parts, tuesday.parts) == (200, 1000)
    assert saturday.hi95 - saturday.lo95 > 1.5 * (tuesday.hi95 - tuesday.lo95)


def test_default_method_covers_the_next_day_about_nominally() -> None:
    rng = np.random.default_rng(11)
    hit80, hit95 = [], []
    for seed in range(150):
        # A rate per series, drifting a little, with some day-to-day overdispersion.
        logit = np.log(rng.uniform(0.01, 0.1) / 0.95) + np.cumsum(rng.normal(0, 0.02, 61))
        rates = 1 / (1 + np.exp(-(logit + rng.normal(0, 0.1, 61))))
        days = days_of(list(rates), int(rng.integers(50, 3000)), seed=seed)
        f = fc.forecast(days[:-1])
        assert f is not None and f.method == fc.DEFAULT_METHOD
        y = days[-1].defects / days[-1].parts
        hit80.append(f.days[0].lo80 <= y <= f.days[0].hi80)
        hit95.append(f.days[0].lo95 <= y <= f.days[0].hi95)
    assert 0.70 <= np.mean(hit80) <= 0.93
    assert 0.85 <= np.mean(hit95) <= 0.99


def test_to_dict_is_json_with_iso_times() -> None:
    f = fc.forecast(days_of([0.05] * 30, 300, last=datetime(2025, 3, 27)))
    assert f is not None
    out = json.loads(json.dumps(f.to_dict()))
    assert out["method"] == fc.DEFAULT_METHOD
    assert "backtest" in out["reason"]
    assert out["history_days"] == 30
    assert out["days"][0]["start"] == "2025-03-28T00:00:00+01:00"
    assert out["days"][3]["start"] == "2025-03-31T00:00:00+02:00"
    assert set(out["days"][0]) == {"start", "parts", "rate", "lo80", "hi80", "lo95", "hi95"}


@pytest.mark.parametrize(
    "bad",
    [
        [fc.Day(datetime(2025, 1, 1), 10, 1)],  # no time zone
        [fc.Day(datetime(2025, 1, 1, tzinfo=BERLIN), 10, 11)],  # more defects than parts
        [fc.Day(datetime(2025, 1, 2, tzinfo=BERLIN), 10, 1),
         fc.Day(datetime(2025, 1, 1, tzinfo=BERLIN), 10, 1)],  # out of order
        [fc.Day(datetime(2025, 1, 1, tzinfo=BERLIN), 10, 1),
         fc.Day(datetime(2025, 1, 1, 6, tzinfo=BERLIN), 10, 1)],  # the same date twice
    ],
)  # fmt: skip
def test_malformed_days_are_refused(bad: list[fc.Day]) -> None:
    with pytest.raises(fc.ForecastInputError):
        fc.forecast(bad)


def test_unknown_method_is_refused() -> None:
    with pytest.raises(fc.ForecastInputError, match="method must be one of"):
        fc.forecast(fixed(100, 5), method="prophet")
