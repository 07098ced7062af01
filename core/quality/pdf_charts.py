# matplotlib's stubs reject datetime sequences and None gaps, which its API accepts and plots.
# mypy: disable-error-code="arg-type"
"""Matplotlib charts for the PDF trend report (PNG bytes): the same series as the page's
Plotly charts, drawn for paper. Imported only when a PDF is made (matplotlib is heavy)."""

from __future__ import annotations

import io
from zoneinfo import ZoneInfo

import matplotlib

matplotlib.use("Agg")  # no display on a server

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

from core.quality.trends import TrendReport  # noqa: E402

_MARKER_COLOURS = {"model": "#6a3d9a", "flag_rule": "#b15928", "annotation": "#1f78b4"}


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _figure(height: float = 2.6) -> tuple[Figure, plt.Axes]:
    fig, ax = plt.subplots(figsize=(8.0, height))
    ax.grid(alpha=0.3)
    return fig, ax


def _events(ax: plt.Axes, report: TrendReport, tz: ZoneInfo) -> None:
    for e in report.events:
        ax.axvline(e.at.astimezone(tz), color=_MARKER_COLOURS.get(e.kind, "#333333"),
                   linestyle=":", linewidth=1)  # fmt: skip


def _time_axis(ax: plt.Axes, tz: ZoneInfo) -> None:
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=tz))
    for label in ax.get_xticklabels():
        label.set_rotation(20)
        label.set_fontsize(7)


def rate(report: TrendReport, tz: ZoneInfo) -> bytes:
    """Defect rate, centre line, limits per bucket, signals circled, markers dotted."""
    assert report.chart is not None
    fig, ax = _figure(3.0)
    x = [b.start for b in report.buckets]
    pts = report.chart.points
    ax.plot(x, [p.rate for p in pts], marker="o", markersize=3, label="defect rate")
    ax.step(x, [p.ucl for p in pts], where="post", color="#e31a1c", linestyle="--", label="UCL")
    ax.step(x, [p.lcl for p in pts], where="post", color="#e31a1c", linestyle="--", label="LCL")
    ax.axhline(report.chart.centre, color="#555555", linestyle=":", label="centre")
    hits = [i for i, s in enumerate(report.signals) if s]
    ax.scatter([x[i] for i in hits], [pts[i].rate for i in hits], s=80, facecolors="none",
               edgecolors="red", label="signal", zorder=3)  # fmt: skip
    if report.baseline is not None:
        ax.axvspan(report.baseline.window_start.astimezone(tz),
                   report.baseline.window_end.astimezone(tz), color="#dddddd", alpha=0.4,
                   label="frozen baseline")  # fmt: skip
    _events(ax, report, tz)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    _time_axis(ax, tz)
    ax.legend(fontsize=7, ncol=6, loc="upper left")
    return _png(fig)


def pareto(report: TrendReport) -> bytes:
    """Defect classes by count with the cumulative share and the 80 % line."""
    fig, ax = _figure()
    rows = report.pareto.rows
    names = [r.name for r in rows]
    ax.bar(names, [r.count for r in rows], color="#1f78b4")
    ax2 = ax.twinx()
    ax2.plot(names, [r.cumulative_share for r in rows], color="#ff7f00", marker="o")
    ax2.axhline(0.8, color="#555555", linestyle=":")
    ax2.set_ylim(0, 1.05)
    ax2.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("defective parts")
    return _png(fig)


def drift(report: TrendReport, tz: ZoneInfo) -> bytes:
    """Mean confidence with its individuals-chart limits, unsure share on the right axis."""
    fig, ax = _figure()
    x = [b.start for b in report.buckets]
    d = report.drift
    if d.confidence is not None:
        ax.plot(x, list(d.confidence.values), marker="o", markersize=3, color="#33a02c",
                label="mean confidence")  # fmt: skip
        ax.axhline(d.confidence.ucl, color="#33a02c", linestyle="--", linewidth=1)
        ax.axhline(d.confidence.lcl, color="#33a02c", linestyle="--", linewidth=1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    if d.unsure is not None:
        ax2 = ax.twinx()
        ax2.plot(x, [p.rate for p in d.unsure.points], color="#6a3d9a", marker=".",
                 label="unsure share")  # fmt: skip
        ax2.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax2.set_ylim(bottom=0)
        ax2.legend(fontsize=7, loc="upper right")
    _events(ax, report, tz)
    _time_axis(ax, tz)
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig)


def forecast(report: TrendReport, tz: ZoneInfo) -> bytes:
    """Daily defect rate, then the 7-day forecast with its 80 % and 95 % bands."""
    assert report.forecast is not None
    fig, ax = _figure()
    ax.plot([b.start for b in report.daily],
            [b.defects / b.parts if b.parts else None for b in report.daily], marker="o",
            markersize=3, label="daily defect rate")  # fmt: skip
    days = report.forecast.days
    xs = [d.start for d in days]
    ax.fill_between(xs, [d.lo95 for d in days], [d.hi95 for d in days], color="#ff7f00",
                    alpha=0.15, label="95 % interval")  # fmt: skip
    ax.fill_between(xs, [d.lo80 for d in days], [d.hi80 for d in days], color="#ff7f00",
                    alpha=0.3, label="80 % interval")  # fmt: skip
    ax.plot(xs, [d.rate for d in days], color="#ff7f00", linestyle="--", label="forecast")
    ax.axvspan(xs[0], xs[-1], color="#fff3e0", alpha=0.5, zorder=0)
    ax.text(xs[0], 1.0, " FORECAST", transform=ax.get_xaxis_transform(), va="top", fontsize=8)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    _time_axis(ax, tz)
    ax.legend(fontsize=7, loc="upper left")
    return _png(fig)
