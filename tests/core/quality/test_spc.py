"""SPC: p and Laney p′ charts against published and hand-derived numbers, the chooser,
Western Electric rules 1–4, frozen baselines, empty buckets and the Pareto helper."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest

from core.errors import ValidationError
from core.quality import spc

# Montgomery, Introduction to Statistical Quality Control (orange-juice cans: 30 trial samples of
# n = 50 at half-hour intervals, then 24 more after the machine was adjusted). The counts are the
# R package qcc's data set, verbatim: github.com/luca-scr/qcc, data/orangejuice.txt (column D;
# size 50 throughout; trial = TRUE for samples 1–30). Samples 15 and 23 have assignable causes.
ORANGE_JUICE = [
    12, 15, 8, 10, 4, 7, 16, 9, 14, 10, 5, 6, 17, 12, 22, 8, 10, 5, 13, 11,
    20, 18, 24, 15, 9, 12, 7, 13, 9, 6,
    9, 6, 12, 5, 6, 4, 6, 3, 7, 6, 2, 4, 3, 6, 5, 4, 8, 5, 6, 7, 5, 6, 3, 5,
]  # fmt: skip
ORANGE_N = [50] * len(ORANGE_JUICE)

# Pyzdek, The Handbook for Quality Management (2nd ed.), Table 9.6 "Raw Data for p Chart":
# bruised peaches in 25 shipments, one crate (250 peaches) or two crates (500) opened per
# shipment; published totals 8000 inspected, 1544 bruised. The page with the book's own limits
# was not retrievable, so the limits below are derived by hand.
PEACHES = [
    47, 42, 55, 51, 46, 61, 39, 44, 41, 51, 88, 101, 101, 40, 48, 47, 50, 48, 57, 45,
    43, 105, 98, 100, 96,
]  # fmt: skip
PEACH_N = [250] * 10 + [500] * 3 + [250] * 8 + [500] * 4

# Drawn once from Binomial(n_i, 0.04) (numpy default_rng(7)) and frozen here: no overdispersion.
BINOMIAL_N = [
    386, 306, 321, 374, 294, 343, 358, 206, 163, 225, 221, 368, 378, 151, 274, 355, 182, 349,
    179, 266, 354, 225, 235, 219, 329, 213, 397, 261, 269, 276, 295, 288, 277, 398, 351, 348,
    325, 305, 235, 397,
]  # fmt: skip
BINOMIAL_X = [
    12, 9, 14, 9, 6, 14, 14, 12, 7, 9, 9, 12, 7, 4, 12, 11, 6, 5, 10, 7, 12, 13, 9, 12, 14,
    10, 11, 11, 11, 15, 10, 12, 6, 15, 12, 10, 16, 11, 16, 17,
]  # fmt: skip


def _limits(chart: spc.ControlChart, i: int) -> tuple[float, float]:
    point = chart.points[i]
    assert point.lcl is not None and point.ucl is not None
    return point.lcl, point.ucl


def test_orange_juice_trial_limits_match_qcc() -> None:
    # Published (qcc summary of qcc(D[trial], sizes=size[trial], type="p"), as quoted in
    # Kenett, Zacks & Gedeck's mistat tests "comparison with R"): centre 0.2313333,
    # LCL 0.05242755, UCL 0.4102391. Montgomery prints them as 0.2313, 0.0524, 0.4102.
    chart = spc.p_chart(ORANGE_JUICE[:30], ORANGE_N[:30])
    assert chart.chart == "p" and chart.sigma_z == 1.0
    assert chart.centre == pytest.approx(0.2313333, abs=5e-8)
    lcl, ucl = _limits(chart, 0)
    assert lcl == pytest.approx(0.05242755, abs=5e-9)
    assert ucl == pytest.approx(0.4102391, abs=5e-8)
    # Samples 15 and 23 are the two beyond the UCL (qcc: beyond limits at 0-based 14 and 22).
    rules = spc.western_electric(chart.z_scores)
    assert [i for i, f in enumerate(rules.flags) if 1 in f] == [14, 22]


def test_orange_juice_revised_limits_exclude_samples_15_and_23() -> None:
    # Published revised limits with samples 15 and 23 removed: centre 0.215, LCL 0.04070284,
    # UCL 0.3892972 (same mistat/qcc source); Montgomery: 0.2150, 0.0407, 0.3893.
    chart = spc.p_chart(ORANGE_JUICE, ORANGE_N, baseline=range(30), excluded=[14, 22])
    assert chart.centre == pytest.approx(0.215, abs=1e-12)
    lcl, ucl = _limits(chart, 0)
    assert lcl == pytest.approx(0.04070284, abs=5e-9)
    assert ucl == pytest.approx(0.3892972, abs=5e-8)
    assert [p.in_baseline for p in chart.points[13:16]] == [True, False, True]
    assert not any(p.in_baseline for p in chart.points[30:])
    # The revised chart leaves sample 21 (p = 20/50 = 0.40) above the UCL, besides 15 and 23.
    rules = spc.western_electric(chart.z_scores)
    assert [i for i, f in enumerate(rules.flags[:30]) if 1 in f] == [14, 20, 22]
    # Phase II, hand-checked: sample 33 (0.24) is the last above 0.215, so samples 34–41 are
    # the first 8 in a row below the centre and rule 4 fires first at sample 41 (index 40).
    assert [i for i, f in enumerate(rules.flags) if 4 in f][0] == 40


def test_frozen_p_bar_reproduces_revised_limits_for_new_samples() -> None:
    chart = spc.p_chart(ORANGE_JUICE[30:], ORANGE_N[30:], p_bar=0.215)
    assert chart.centre == 0.215
    assert _limits(chart, 0) == pytest.approx((0.04070284, 0.3892972), abs=5e-8)


def test_lower_limit_clamps_at_zero_orange_juice_after_adjustment() -> None:
    # Published (qcc data orangejuice2, trial samples 31–54, as quoted in the mistat tests):
    # centre 0.1108333, limits [0, 0.2440207]. Unclamped, the LCL would be about −0.0224.
    chart = spc.p_chart(ORANGE_JUICE[30:], ORANGE_N[30:])
    assert chart.centre == pytest.approx(0.1108333, abs=5e-8)
    assert _limits(chart, 0) == pytest.approx((0.0, 0.2440207), abs=5e-8)


def test_upper_limit_clamps_at_one() -> None:
    # p̄ = 0.9, n = 4: σ = sqrt(0.9·0.1/4) = 0.15, so p̄ + 3σ = 1.35 → 1 and p̄ − 3σ = 0.45.
    chart = spc.p_chart([3, 4], [4, 4], p_bar=0.9)
    assert _limits(chart, 0) == pytest.approx((0.45, 1.0))


def test_varying_sizes_give_narrower_limits_for_larger_buckets() -> None:
    # Pyzdek's peaches (data and totals published; limits hand-derived):
    # p̄ = 1544/8000 = 0.193; n = 250: σ = sqrt(0.193·0.807/250) = 0.0249600, limits
    # 0.193 ± 0.0748801 = [0.118120, 0.267880]; n = 500: σ = 0.0176494, limits
    # 0.193 ± 0.0529483 = [0.140052, 0.245948].
    assert (sum(PEACHES), sum(PEACH_N)) == (1544, 8000)
    chart = spc.p_chart(PEACHES, PEACH_N)
    assert chart.centre == pytest.approx(0.193, abs=1e-12)
    assert _limits(chart, 0) == pytest.approx((0.118120, 0.267880), abs=1e-6)
    assert _limits(chart, 10) == pytest.approx((0.140052, 0.245948), abs=1e-6)
    assert _limits(chart, 13) == _limits(chart, 0)


def test_empty_buckets_get_no_point_and_do_not_move_the_centre() -> None:
    chart = spc.p_chart([5, 0, 15, 0], [100, 0, 100, 0])
    assert chart.centre == pytest.approx(0.1)
    empty = chart.points[1]
    assert (empty.rate, empty.lcl, empty.ucl, empty.z) == (None, None, None, None)
    assert chart.points[2].rate == pytest.approx(0.15)
    assert chart.z_scores[1] is None and chart.z_scores[3] is None


def test_frozen_baseline_does_not_move_when_later_or_excluded_data_change() -> None:
    before = spc.p_chart(ORANGE_JUICE, ORANGE_N, baseline=range(30), excluded=[14, 22])
    changed = list(ORANGE_JUICE)
    changed[14] = 0  # an excluded sample
    changed[30:] = [40] * 24  # every phase-II sample
    after = spc.p_chart(changed, ORANGE_N, baseline=range(30), excluded=[14, 22])
    assert after.centre == before.centre
    assert [_limits(after, i) for i in range(54)] == [_limits(before, i) for i in range(54)]
    assert after.points[40].rate == 0.8
    # The same window given as a mask gives the same chart; Laney's σ_z is frozen the same way.
    mask = [i < 30 for i in range(54)]
    assert spc.p_chart(changed, ORANGE_N, baseline=mask, excluded=[14, 22]) == after
    sz = [
        spc.laney_sigma_z(data, ORANGE_N, baseline=range(30), excluded=[14, 22])
        for data in (ORANGE_JUICE, changed)
    ]
    assert sz[0] == sz[1]


def test_laney_sigma_z_and_limits_by_hand() -> None:
    # x = 10, 30, 20, 40 of n = 100, 100, 200, 200: p̄ = 100/600 = 1/6, σ(100) = √5/60,
    # σ(200) = √5/(60√2). z = −4/√5, 8/√5, −4√2/√5, 2√2/√5. Moving ranges 12/√5, (8 + 4√2)/√5,
    # 6√2/√5, mean (20 + 10√2)/(3√5) = 5.089609, σ_z = 5.089609/1.128 = 4.512065.
    # UCL(100) = 1/6 + 3·(√5/60)·σ_z = 0.671131; UCL(200) = 1/6 + 3·(√5/(60√2))·σ_z = 0.523377;
    # both LCLs clamp to 0.
    defects, sizes = [10, 30, 20, 40], [100, 100, 200, 200]
    expected = (20 + 10 * math.sqrt(2)) / (3 * math.sqrt(5)) / 1.128
    assert expected == pytest.approx(4.512065, abs=1e-6)
    assert spc.laney_sigma_z(defects, sizes) == pytest.approx(expected, rel=1e-12)
    chart = spc.laney_p_chart(defects, sizes)
    assert chart.chart == "laney_p"
    assert chart.sigma_z == pytest.approx(4.512065, abs=1e-6)
    assert _limits(chart, 0) == pytest.approx((0.0, 0.671131), abs=1e-6)
    assert _limits(chart, 2) == pytest.approx((0.0, 0.523377), abs=1e-6)
    # Laney's z is on the widened scale: z/σ_z, e.g. (8/√5)/4.512065 = 0.792921.
    assert chart.points[1].z == pytest.approx(0.792921, abs=1e-6)


def test_laney_moving_ranges_skip_empty_and_excluded_buckets() -> None:
    base = spc.laney_sigma_z([10, 30, 20, 40], [100, 100, 200, 200])
    gappy = spc.laney_sigma_z([10, 0, 30, 99, 20, 40], [100, 0, 100, 100, 200, 200], excluded=[3])
    assert gappy == pytest.approx(base, rel=1e-12)
    with pytest.raises(ValidationError):
        spc.laney_sigma_z([3, 0], [50, 0])


def test_chooser_keeps_p_chart_for_binomial_data() -> None:
    choice = spc.choose_chart(BINOMIAL_X, BINOMIAL_N)
    assert choice.chart == "p"
    assert choice.sigma_z == pytest.approx(1.0863, abs=1e-4)
    assert "within chance" in choice.reason and "62.4" in choice.reason  # χ²(39) 1 %: 62.43
    # The published peaches are binomial too: σ_z = 0.9995, so "≤ 1" keeps the p-chart.
    peaches = spc.choose_chart(PEACHES, PEACH_N)
    assert peaches.chart == "p" and peaches.sigma_z == pytest.approx(0.99946, abs=1e-5)
    assert peaches.reason.startswith("σ_z = 1.00 ≤ 1")


def test_chooser_picks_laney_for_overdispersed_large_buckets() -> None:
    # n = 5000 per bucket, x cycling 150, 170, 130, 190, 110 (6 cycles): p̄ = 0.03 and
    # n·σ = sqrt(5000·0.03·0.97) = 12.06234, so z = k·u with u = 20/12.06234 = 1.658053 and
    # k cycling 0, 1, −1, 2, −2. The 29 moving ranges sum to 6·(1+2+3+4)·u + 5·2u = 70u, so
    # σ_z = 70u/(29·1.128) = 3.548048; X² = 6·(0+1+1+4+4)·u² = 164.95 > χ²(29) 1 % = 49.59.
    defects = [150, 170, 130, 190, 110] * 6
    sizes = [5000] * 30
    choice = spc.choose_chart(defects, sizes)
    assert choice.chart == "laney_p"
    assert choice.sigma_z == pytest.approx(3.548048, abs=1e-6)
    assert "164.9" in choice.reason
    assert "49.6" in choice.reason
    # The p-chart cries wolf at every 190 and 110 (z = ±2u = ±3.316); Laney p′ flags none.
    p_rules = spc.western_electric(spc.p_chart(defects, sizes).z_scores)
    assert p_rules.flagged == tuple(i for i in range(30) if i % 5 in (3, 4))
    assert spc.western_electric(spc.laney_p_chart(defects, sizes).z_scores).flagged == ()


def test_chooser_with_too_few_buckets_says_so() -> None:
    choice = spc.choose_chart([3, 0], [50, 0])
    assert (choice.chart, choice.sigma_z) == ("p", None)
    assert "two" in choice.reason


QUIET = [0.5, -0.5, 2.5, -0.5, 0.5, -1.5, 0.5, -0.5, 1.5, -0.5, 2.9, -2.9]


@pytest.mark.parametrize(
    ("z", "expected"),
    [
        pytest.param(QUIET, {}, id="none"),
        pytest.param([0.5, -0.5, 3.5, -0.5, 0.5], {2: (1,)}, id="rule1"),
        pytest.param([-3.2, 0.5, -0.5], {0: (1,)}, id="rule1-low"),
        # Index 3 completes 2 of 3 beyond +2σ; index 2 (in zone C) is not flagged.
        pytest.param([-0.5, 2.5, 0.5, 2.5, -0.5, 0.5], {3: (2,)}, id="rule2"),
        pytest.param([0.5, -2.5, -2.5, 0.5], {2: (2,)}, id="rule2-low"),
        pytest.param([-0.5, 1.5, 1.5, 0.5, 1.5, 1.5, -0.5], {5: (3,)}, id="rule3"),
        pytest.param([-0.5] + [0.5] * 8 + [-0.5], {8: (4,)}, id="rule4"),
        pytest.param([0.5] + [-0.5] * 9, {8: (4,), 9: (4,)}, id="rule4-continues"),
    ],
)
def test_western_electric_each_rule_alone(z: list[float], expected: dict[int, tuple[int]]) -> None:
    check = spc.western_electric(z)
    assert {i: f for i, f in enumerate(check.flags) if f} == expected
    assert len(check.flags) == len(z)


def test_western_electric_boundaries_are_strict_and_zero_breaks_a_run() -> None:
    assert spc.western_electric([3.0, -3.0, 0.2]).flagged == ()
    assert spc.western_electric([0.5] * 4 + [0.0] + [0.5] * 7).flagged == ()


def test_western_electric_skips_empty_buckets() -> None:
    check = spc.western_electric([2.5, None, 2.5, None])
    assert check.flags == ((), (), (2,), ())
    assert check.descriptions[2] == "Rule 2: 2 of 3 points in a row beyond 2σ on the same side"
    assert sorted(check.descriptions) == [1, 2, 3, 4]


def test_pareto_sorts_by_count_then_name_and_finds_the_vital_few() -> None:
    result = spc.pareto({"stain": 10, "scratch": 50, "burr": 0, "dent": 30, "crack": 10})
    assert [(r.name, r.count) for r in result.rows] == [
        ("scratch", 50),
        ("dent", 30),
        ("crack", 10),
        ("stain", 10),
        ("burr", 0),
    ]
    assert [r.cumulative_share for r in result.rows] == pytest.approx([0.5, 0.8, 0.9, 1.0, 1.0])
    # Exactly 80 % after "dent": that class closes the vital few.
    assert result.vital_few == ("scratch", "dent")
    assert spc.pareto({"a": 5, "b": 3, "c": 2}).vital_few == ("a", "b")  # 50 %, 80 %
    assert spc.pareto({"a": 7, "b": 2, "c": 1}).vital_few == ("a", "b")  # 70 %, 90 %
    assert spc.pareto({"a": 0, "b": 0}).vital_few == ()


@pytest.mark.parametrize(
    "call",
    [
        lambda: spc.p_chart([1, 2], [10]),
        lambda: spc.p_chart([11], [10]),
        lambda: spc.p_chart([-1], [10]),
        lambda: spc.p_chart([1], [10], p_bar=1.5),
        lambda: spc.p_chart([0, 0], [0, 0]),
        lambda: spc.p_chart([1, 2], [10, 10], excluded=[2]),
        lambda: spc.p_chart([1, 2], [10, 10], baseline=[True]),
        lambda: spc.laney_p_chart([1, 2], [10, 10], sigma_z=-1.0),
        lambda: spc.pareto({"a": -1}),
    ],
)
def test_impossible_inputs_are_refused(call: Callable[[], object]) -> None:
    with pytest.raises(ValidationError):
        call()
