"""Drift charts: the individuals chart against Montgomery's worked example, and drift over
real buckets (a model losing confidence and calling more parts unsure is signalled)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import ValidationError
from core.quality import drift
from core.quality.buckets import Bucket

# Montgomery, Introduction to Statistical Quality Control (6th ed.), Example 6.5: the cost of
# processing mortgage loan applications over 20 weeks. x̄ = 300.5, MR̄ = 7.79,
# UCL = 321.22, LCL = 279.78.
MORTGAGE_COSTS = [310, 288, 297, 298, 307, 303, 294, 297, 308, 306,
                  294, 299, 297, 299, 314, 295, 293, 306, 301, 304]  # fmt: skip


def test_individuals_chart_matches_montgomerys_example() -> None:
    chart = drift.individuals_chart([float(v) for v in MORTGAGE_COSTS])
    assert chart.centre == pytest.approx(300.5)
    assert chart.mean_moving_range == pytest.approx(7.79, abs=0.005)
    assert chart.ucl == pytest.approx(321.22, abs=0.01)
    assert chart.lcl == pytest.approx(279.78, abs=0.01)
    assert all(abs(z) < 3 for z in chart.z if z is not None)  # the example is in control


def test_empty_buckets_are_skipped_and_too_little_is_refused() -> None:
    chart = drift.individuals_chart([1.0, None, 3.0, 2.0])
    assert chart.mean_moving_range == pytest.approx(1.5)  # |3-1| and |2-3|: the gap is bridged
    assert chart.z[1] is None
    with pytest.raises(ValidationError, match="at least two"):
        drift.individuals_chart([1.0, None])


def test_a_model_losing_confidence_is_signalled() -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    buckets = []
    for d in range(30):
        late = d >= 24
        mean = 0.80 if late else 0.95 + 0.004 * ((d * 7) % 5 - 2)  # steady, then a drop
        unsure = 30 if late else 4 + d % 3
        buckets.append(Bucket(start=t0 + timedelta(days=d), parts=100, unsure=unsure,
                              confidence_sum=100 * mean))  # fmt: skip
    report = drift.drift(buckets)
    assert report.confidence is not None and report.unsure is not None
    assert all(1 in report.confidence_signals[d] for d in range(24, 30))
    late = report.confidence.z[24:]
    assert all(z is not None and z < -3 for z in late)  # below the lower limit, not above
    assert 1 in report.unsure_signals[24]


def test_no_buckets_gives_no_charts() -> None:
    report = drift.drift([])
    assert report.confidence is None and report.unsure is None and report.unsure_signals == []
