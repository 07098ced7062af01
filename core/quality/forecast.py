"""Forecast of the daily defect rate for the next 7 plant-local days, with 80 % and 95 % intervals.

The intervals are for the rate a day will *show*, x of n parts with n the recent median of that
weekday, so binomial noise, day-to-day overdispersion and the level's uncertainty all widen
them. Days without parts are missing, not zero. Methods (the backtest's pick is the default;
one that fails on the data, ETS on a constant series say, hands over to the next in
FALLBACK_ORDER and the reason says so):

* ``local_level``: a random-walk logit level seen through binomial days with extra day-to-day
  variance; an extended Kalman filter, the two variances by maximum likelihood on a grid, and a
  CUSUM that reopens the level after a step. Intervals mix binomials over the predicted rate.
* ``ets``: statsmodels ETS (additive error, damped trend) on the empirical logit, intervals
  back-transformed; observed days count as consecutive steps.
* ``beta_binomial``: an exponentially weighted rate, overdispersion by moments.
* ``naive``: the pooled rate of the last 28 days, binomial (the baseline).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from core.errors import DefectLensError

MIN_HISTORY_DAYS = 28
HORIZON_DAYS = 7
RECENT_DAYS = 28  # calendar days behind the parts per forecast day and the naive rate
MAX_HISTORY_DAYS = 365  # older days barely move a level that adapts in weeks; keeps it fast
HALFLIFE_DAYS = 14.0  # beta-binomial weights: a step is mostly absorbed after a month
DEFAULT_METHOD = "local_level"  # the backtest's pick: bench/out/forecast_backtest.json
FALLBACK_ORDER = ("local_level", "ets", "beta_binomial", "naive")
PROBS = np.array([0.025, 0.10, 0.90, 0.975])  # lo95, lo80, hi80, hi95
_Q_GRID = np.logspace(-7, -1, 19)  # level variance per day, logit scale
_CUSUM_K, _CUSUM_H = 0.5, 5.0  # the textbook CUSUM for a one-sigma shift
_CUSUM_CAP = 4.0  # per-day cap on a standardised error: two odd days make a step, one does not
_RESET_VAR = 1.0  # level variance (logit²) after a detected step: the same as at the start
_ODD_SHARE = 0.01  # share of days the fit allows to be 10x as wide (bad lots, a step's first day)
_TAU2_GRID = np.concatenate([[0.0], np.logspace(-4, 0, 13)])  # extra day-to-day variance


class ForecastInputError(DefectLensError, ValueError):
    """The daily counts are malformed: a naive time, days out of order, defects above parts."""


class DayCounts(Protocol):
    """One plant-local day: its aware start, parts inspected and defective (a trends.Bucket)."""

    @property
    def start(self) -> datetime: ...
    @property
    def parts(self) -> int: ...
    @property
    def defects(self) -> int: ...


@dataclass(frozen=True)
class Day:
    """A plain DayCounts for callers without a trends.Bucket."""

    start: datetime
    parts: int
    defects: int


@dataclass(frozen=True)
class ForecastDay:
    """One forecast day: its local start, the point rate and the 80 % and 95 % intervals."""

    start: datetime
    parts: int  # the parts the intervals assume: the weekday's recent median
    rate: float
    lo80: float
    hi80: float
    lo95: float
    hi95: float


@dataclass(frozen=True)
class Forecast:
    """The next days' defect rate; every value is a forecast, not an observation."""

    method: str
    reason: str
    history_days: int
    days: list[ForecastDay]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ISO day starts, rates as floats."""
        days = [{**asdict(d), "start": d.start.isoformat()} for d in self.days]
        return {**asdict(self), "days": days}


@dataclass(frozen=True)
class _Series:
    """The history as arrays (day: local calendar day, 0 the last) and the days to forecast."""

    day: np.ndarray
    n: np.ndarray
    x: np.ndarray
    ahead: np.ndarray  # calendar days after the last, 1..HORIZON_DAYS
    n_ahead: np.ndarray  # the parts each forecast day's interval is for


# Each method returns rows (point, lo95, lo80, hi80, hi95), one per forecast day.
Method = Callable[[_Series], np.ndarray]


def forecast(days: Sequence[DayCounts], method: str | None = None) -> Forecast | None:
    """The next 7 days' rate and intervals; None under MIN_HISTORY_DAYS days with parts."""
    asked = method or DEFAULT_METHOD
    if asked not in METHODS:
        raise ForecastInputError(f"method must be one of {', '.join(METHODS)}, not {asked!r}")
    observed = _checked(days)
    if len(observed) < MIN_HISTORY_DAYS:
        return None
    series = _series(observed[-MAX_HISTORY_DAYS:])
    used, rows, failures = _first_that_works(asked, series)
    points = [
        ForecastDay(_local_day(observed[-1].start, int(h)), int(n),
                    rate=r[0], lo95=r[1], lo80=r[2], hi80=r[3], hi95=r[4])
        for h, n, r in zip(series.ahead, series.n_ahead, rows.tolist(), strict=True)
    ]  # fmt: skip
    if used != asked:
        reason = f"{LABELS[used]}: used because " + "; ".join(failures)
    elif method is None:
        reason = f"{LABELS[used]}: the default, chosen by backtest (bench/forecast_backtest.py)"
    else:
        reason = f"{LABELS[used]}: as requested"
    return Forecast(used, reason, len(observed), points)


def _first_that_works(asked: str, series: _Series) -> tuple[str, np.ndarray, list[str]]:
    """The asked method's rows, else the next in FALLBACK_ORDER's; naive is the last resort."""
    failures: list[str] = []
    for name in (asked, *[m for m in FALLBACK_ORDER if m not in (asked, "naive")]):
        if name == "naive":
            break
        try:
            return name, _ordered(METHODS[name](series)), failures
        except Exception as e:  # statsmodels and scipy fail on degenerate series in many ways
            failures.append(f"{LABELS[name]} failed ({type(e).__name__}: {e})")
    return "naive", _ordered(naive(series)), failures


def _checked(days: Sequence[DayCounts]) -> list[DayCounts]:
    """The days with parts, after checking times are aware, one per date, and counts sane."""
    out: list[DayCounts] = []
    for d in days:
        if d.start.tzinfo is None or d.start.utcoffset() is None:
            raise ForecastInputError(f"day start {d.start.isoformat()} has no time zone")
        if d.parts < 0 or d.defects < 0 or d.defects > d.parts:
            raise ForecastInputError(
                f"{_wall_date(d.start)}: need 0 <= defects <= parts, got {d.defects} of {d.parts}"
            )
        if out and _wall_date(d.start) <= _wall_date(out[-1].start):
            raise ForecastInputError(
                f"days must be in time order, one per date; {d.start.isoformat()} is not"
            )
        if d.parts > 0:
            out.append(d)
    return out


def _series(days: Sequence[DayCounts]) -> _Series:
    """Arrays over the days, numbered by local date so gaps stay gaps, and each forecast day's
    parts: the median of its weekday over the recent days, else of all recent days."""
    day = np.array([_wall_date(d.start).toordinal() for d in days], dtype=float)
    day -= day[-1]
    n = np.array([d.parts for d in days], dtype=float)
    x = np.array([d.defects for d in days], dtype=float)
    ahead = np.arange(1, HORIZON_DAYS + 1)
    recent = day > -RECENT_DAYS
    n_ahead = []
    for h in ahead:  # volume often has a weekly pattern (a light Saturday): keep it
        same = recent & ((day - h) % 7 == 0)
        n_ahead.append(np.median(n[same]) if same.sum() >= 2 else np.median(n[recent]))
    return _Series(day, n, x, ahead, np.maximum(1, np.round(n_ahead)).astype(int))


def _wall_date(t: datetime) -> date:
    return t.replace(tzinfo=None).date()


def _local_day(last: datetime, ahead: int) -> datetime:
    """Local midnight `ahead` calendar days after `last`, with that day's own UTC offset."""
    wall = last.replace(tzinfo=None, hour=0, minute=0, second=0, microsecond=0)
    return (wall + timedelta(days=ahead)).replace(tzinfo=last.tzinfo)


def _ordered(rows: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and force lo95 <= lo80 <= rate <= hi80 <= hi95; refuse non-finite."""
    if not np.all(np.isfinite(rows)):
        raise ValueError("non-finite forecast")
    rows = np.clip(rows, 0.0, 1.0)
    bands = np.sort(rows[:, 1:], axis=1)
    return np.column_stack([np.clip(rows[:, 0], bands[:, 1], bands[:, 2]), bands])


def _expit(v: np.ndarray) -> np.ndarray:
    """The logistic function; the logit is clipped so a level far below any rate (a line with
    no defect in months) reads as a rate of about 1e-217, not an overflow warning."""
    return 1.0 / (1.0 + np.exp(-np.clip(v, -500.0, 500.0)))


def _pmf_quantiles(pmf: np.ndarray, n: int) -> np.ndarray:
    """The PROBS quantiles of a count distribution on 0..n, as rates."""
    cdf = np.cumsum(pmf)
    return np.array([np.argmax(cdf >= p * cdf[-1] - 1e-12) for p in PROBS]) / n


def _mixture_quantiles(p: np.ndarray, w: np.ndarray, n: np.ndarray) -> np.ndarray:
    """PROBS quantiles (as rates) of Binomial(n_h, p) mixed over rates p (h, k), weights w."""
    from scipy import stats  # deferred: scipy.stats costs ~0.6 s at import; pages start first

    # Bisection on the count: the mixture's cdf is monotone, and no 0..n array is needed,
    # so a plant with 10⁵ parts a day costs the same as one with 50.
    lo = np.full((len(p), len(PROBS)), -1)
    hi = np.repeat(n[:, None], len(PROBS), axis=1)
    while np.any(hi - lo > 1):
        mid = (lo + hi) // 2
        cdf = (stats.binom.cdf(mid[..., None], n[:, None, None], p[:, None, :]) * w).sum(-1)
        above = cdf >= PROBS - 1e-12
        hi, lo = np.where(above, mid, hi), np.where(above, lo, mid)
    return hi / n[:, None]


def _rows(point: float, pmf: Callable[[np.ndarray, int], np.ndarray], s: _Series) -> np.ndarray:
    """The same point every day; each day's quantiles from pmf(0..n, n) at its own n."""
    by_n = {n: _pmf_quantiles(pmf(np.arange(n + 1), n), n) for n in set(s.n_ahead.tolist())}
    return np.array([np.concatenate([[point], by_n[n]]) for n in s.n_ahead.tolist()])


def naive(s: _Series) -> np.ndarray:
    """Pooled rate of the last RECENT_DAYS days; binomial quantiles."""
    from scipy import stats  # deferred, as in _mixture_quantiles

    recent = s.day > -RECENT_DAYS
    p = float(s.x[recent].sum() / s.n[recent].sum())
    return _rows(p, lambda k, n: stats.binom.pmf(k, n, p), s)


def beta_binomial(s: _Series) -> np.ndarray:
    """Exponentially weighted rate, overdispersion by moments, beta-binomial quantiles."""
    from scipy import stats  # deferred, as in _mixture_quantiles

    w = 0.5 ** (-s.day / HALFLIFE_DAYS)
    p = float((w * s.x).sum() / (w * s.n).sum())
    if p <= 0.0 or p >= 1.0:  # every part good (or every one bad): no spread to estimate
        return np.full((len(s.ahead), 1 + len(PROBS)), p)
    chi = (s.x - s.n * p) ** 2 / (s.n * p * (1 - p))
    # E[chi] = 1 + (n - 1) rho for a beta-binomial; fitting p costs about one day's worth,
    # so one effective day's expected chi comes off before solving for rho.
    k_eff = w.sum() ** 2 / (w**2).sum()
    excess = (w * (chi - 1)).sum() - w.sum() / k_eff
    spread = (w * (s.n - 1)).sum()
    rho = min(max(excess / spread, 0.0), 0.5) if spread > 0 else 0.0
    if rho < 1e-9:
        return _rows(p, lambda k, n: stats.binom.pmf(k, n, p), s)
    ab = (1 - rho) / rho
    return _rows(p, lambda k, n: stats.betabinom.pmf(k, n, p * ab, (1 - p) * ab), s)


def ets(s: _Series) -> np.ndarray:
    """statsmodels ETS (A, Ad, N) on the empirical logit; its intervals back-transformed."""
    import pandas as pd  # statsmodels forecasts only from a pandas index
    from statsmodels.tools.sm_exceptions import ConvergenceWarning
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel  # deferred: ~1.4 s import

    y = np.log((s.x + 0.5) / (s.n - s.x + 0.5))  # the empirical logit
    if np.ptp(y) < 1e-9:
        raise ValueError("constant series, nothing to fit")
    with warnings.catch_warnings():  # local: a short or flat series makes the optimiser chatty
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = ETSModel(pd.Series(y), error="add", trend="add", damped_trend=True).fit(disp=False)
        pred = fit.get_prediction(start=len(y), end=len(y) + int(s.ahead.max()) - 1)
        f95, f80 = pred.summary_frame(alpha=0.05), pred.summary_frame(alpha=0.20)
    cols = [f95["mean"], f95["pi_lower"], f80["pi_lower"], f80["pi_upper"], f95["pi_upper"]]
    return _expit(np.column_stack([np.asarray(c)[s.ahead - 1] for c in cols]))


def local_level(s: _Series) -> np.ndarray:
    """Random-walk logit level, binomial plus extra daily noise; Kalman filter, grid MLE."""
    q, tau2 = (g.ravel() for g in np.meshgrid(_Q_GRID, _TAU2_GRID))
    first = s.day < s.day[0] + 7
    start = math.log((s.x[first].sum() + 0.5) / (s.n[first].sum() - s.x[first].sum() + 0.5))
    m, var, loglik = np.full(q.shape, start), np.ones(q.shape), np.zeros(q.shape)
    up, down = np.zeros(q.shape), np.zeros(q.shape)
    gaps = np.diff(s.day, prepend=s.day[0])  # a missing day still lets the level wander
    for i in range(len(s.day)):
        var = var + gaps[i] * q
        # Extended Kalman step: the binomial linearised at the predicted rate (West, Harrison
        # and Migon's dynamic GLM), so a day with no defects pulls down instead of being
        # read as the logit of 0.5 / n, which is biased up when n·p < 1.
        p = _expit(m)
        info = s.n[i] * p * (1 - p)
        e = s.x[i] - s.n[i] * p
        pred_var = info * (1 + info * (var + tau2)) + 1e-300
        if i >= 3:  # the first days only settle the start
            loglik += _robust_loglik(e, pred_var)
        # A step (new supplier, worn tool) is not a random walk: when a CUSUM of the standardised
        # errors fires, the level is opened up again (West & Harrison's intervention), so q need
        # not grow to follow steps and stays small in between. Capped: one odd day is no step.
        u = np.clip(e / np.sqrt(pred_var), -_CUSUM_CAP, _CUSUM_CAP)
        up, down = np.maximum(0, up + u - _CUSUM_K), np.maximum(0, down - u - _CUSUM_K)
        alarm = (up > _CUSUM_H) | (down > _CUSUM_H)
        var = np.where(alarm, var + _RESET_VAR, var)
        up, down = np.where(alarm, 0, up), np.where(alarm, 0, down)
        m, var = _update(m, var, tau2, s.n[i], s.x[i])
    best = int(np.argmax(loglik))
    # The day's own rate: level uncertainty and extra daily spread, then binomial noise.
    z, w = np.polynomial.hermite_e.hermegauss(24)
    sd = np.sqrt(var[best] + s.ahead * q[best] + tau2[best])
    rates = _expit(m[best] + sd[:, None] * z[None, :])
    quantiles = _mixture_quantiles(rates, w / w.sum(), s.n_ahead)
    point = np.full(len(s.ahead), 1.0 / (1.0 + math.exp(-m[best])))
    return np.column_stack([point, quantiles])


def _robust_loglik(e: np.ndarray, var: np.ndarray) -> np.ndarray:
    """Normal log density of e with _ODD_SHARE of days allowed 10x as wide, so a step's first
    day or a bad lot costs a few units instead of inflating the fitted noise to cover it."""
    base = -0.5 * (np.log(var) + e * e / var)
    wide = -0.5 * (np.log(var * 100) + e * e / (var * 100))
    return np.logaddexp(base + math.log(1 - _ODD_SHARE), wide + math.log(_ODD_SHARE))


def _update(
    m: np.ndarray, var: np.ndarray, tau2: np.ndarray, n: float, x: float
) -> tuple[np.ndarray, np.ndarray]:
    """The level after one day: the binomial linearised at the day's posterior logit, found by
    a few scoring steps, since linearising at the prior overshoots after a big jump."""
    v = var + tau2
    day = m
    for _ in range(4):
        p = _expit(day)
        info, e = n * p * (1 - p), x - n * p
        day = m + v * (info * (day - m) + e) / (1 + info * v)  # no division by info, it may be 0
    # The day's logit is level plus day effect; the level takes its share var / v of the move.
    return m + var / v * (day - m), var - var * var * info / (1 + info * v)


METHODS: Mapping[str, Method] = MappingProxyType(
    {"local_level": local_level, "ets": ets, "beta_binomial": beta_binomial, "naive": naive}
)
LABELS: Mapping[str, str] = MappingProxyType(
    {
        "local_level": "local-level model on the logit rate (Kalman filter, binomial noise)",
        "ets": "ETS (damped trend) on the logit rate",
        "beta_binomial": "exponentially weighted beta-binomial",
        "naive": f"pooled rate of the last {RECENT_DAYS} days, binomial",
    }
)
