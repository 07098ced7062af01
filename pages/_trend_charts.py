"""Plotly figures for the Trends page, built from a TrendReport (no Streamlit, no queries).

Every time axis carries the same markers: model promotions, flagging-rule changes and
annotations, as dotted vertical lines with a symbol whose hover text says what happened.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import plotly.graph_objects as go

from core.quality import spc
from core.quality.buckets import Bucket
from core.quality.forecast import Forecast
from core.quality.trends import TrendReport
from db.queries.timeline import TimelineEvent
from pages._ui import plot_text

MARKERS = {"model": ("#6a3d9a", "M"), "flag_rule": ("#b15928", "R"), "annotation": ("#1f78b4", "A")}
_MARGIN = {"l": 0, "r": 0, "t": 40, "b": 0}


def chart_name(report: TrendReport) -> str:
    """'Laney p′ chart' or 'p-chart'."""
    if report.chart is not None and report.chart.chart == spc.LANEY_P_CHART:
        return "Laney p′ chart"
    return "p-chart"


def add_events(fig: go.Figure, events: Sequence[TimelineEvent], tz: ZoneInfo) -> None:
    """The timeline markers: a dotted line and a lettered flag per event, label on hover."""
    for e in events:
        colour, letter = MARKERS.get(e.kind, ("#333333", "?"))
        at = e.at.astimezone(tz)
        fig.add_shape(type="line", x0=at, x1=at, yref="paper", y0=0, y1=1,
                      line={"dash": "dot", "width": 1, "color": colour})  # fmt: skip
        where = f" ({plot_text(e.line)})" if e.line else ""
        fig.add_annotation(x=at, yref="paper", y=1.0, text=letter, showarrow=False,
                           font={"color": "white", "size": 10}, bgcolor=colour,
                           hovertext=f"{at:%Y-%m-%d %H:%M} {plot_text(e.label)}{where}",
                           )  # fmt: skip


def rate_figure(report: TrendReport, tz: ZoneInfo) -> go.Figure:
    """Defect rate with centre line, limits that follow each bucket's n, signals and markers."""
    assert report.chart is not None
    starts = [b.start for b in report.buckets]
    points = report.chart.points
    fig = go.Figure()
    if report.baseline is not None:
        fig.add_vrect(x0=report.baseline.window_start.astimezone(tz),
                      x1=report.baseline.window_end.astimezone(tz), fillcolor="#dddddd",
                      opacity=0.3, line_width=0, layer="below")  # fmt: skip
    fig.add_scatter(x=starts, y=[p.rate for p in points], mode="lines+markers", name="defect rate")
    for name, values in (("UCL", [p.ucl for p in points]), ("LCL", [p.lcl for p in points])):
        fig.add_scatter(x=starts, y=values, mode="lines", name=name,
                        line={"dash": "dash", "shape": "hv", "color": "#e31a1c"})  # fmt: skip
    fig.add_hline(y=report.chart.centre, line_dash="dot", annotation_text="centre")
    flagged = [i for i, s in enumerate(report.signals) if s]
    if flagged:
        fig.add_scatter(
            x=[starts[i] for i in flagged], y=[points[i].rate for i in flagged], mode="markers",
            name="signal", marker={"size": 13, "color": "red", "symbol": "circle-open"},
            hovertext=[", ".join(f"rule {r}" for r in report.signals[i]) for i in flagged],
        )  # fmt: skip
    excluded = [i for i, p in enumerate(points) if report.baseline is not None and
                not p.in_baseline and _in_window(report, starts[i])]  # fmt: skip
    if excluded:
        fig.add_scatter(x=[starts[i] for i in excluded], y=[points[i].rate for i in excluded],
                        mode="markers", name="left out of baseline",
                        marker={"symbol": "x", "size": 9, "color": "#555555"})  # fmt: skip
    add_events(fig, report.events, tz)
    fig.update_layout(title=f"Defect rate ({chart_name(report)})", height=380,
                      yaxis_tickformat=".1%", margin=_MARGIN)  # fmt: skip
    return fig


def _in_window(report: TrendReport, start: datetime) -> bool:
    b = report.baseline
    return b is not None and b.window_start <= start < b.window_end


def lines_figure(per_line: dict[str, list[Bucket]], report: TrendReport, tz: ZoneInfo) -> go.Figure:
    """Defect rate per line, one colour each."""
    fig = go.Figure()
    for name, buckets in sorted(per_line.items()):
        fig.add_scatter(x=[b.start for b in buckets],
                        y=[b.defects / b.parts if b.parts else None for b in buckets],
                        mode="lines+markers",
                        name=plot_text(name) if name else "(no line)")  # fmt: skip
    add_events(fig, report.events, tz)
    fig.update_layout(title="Defect rate per line", height=320, yaxis_tickformat=".1%",
                      margin=_MARGIN)  # fmt: skip
    return fig


def mix_figure(report: TrendReport, tz: ZoneInfo) -> go.Figure:
    """Defective parts per class and bucket, stacked, as a share of the bucket's parts."""
    starts = [b.start for b in report.buckets]
    fig = go.Figure()
    order = [r.name for r in report.pareto.rows]  # raw names: they key the counts below
    for name in order:
        counts = report.mix.get(name, [])
        shares = [c / b.parts if b.parts else 0 for c, b in zip(counts, report.buckets,
                                                                 strict=True)]  # fmt: skip
        fig.add_bar(x=starts, y=shares, name=plot_text(name), customdata=counts,
                    hovertemplate="%{y:.2%} (%{customdata} parts)")  # fmt: skip
    add_events(fig, report.events, tz)
    fig.update_layout(barmode="stack", title="Defect mix by class", height=320,
                      yaxis_tickformat=".1%", margin=_MARGIN)  # fmt: skip
    return fig


def pareto_figure(report: TrendReport) -> go.Figure:
    """Classes by count with the cumulative share and the 80 % line."""
    rows = report.pareto.rows
    fig = go.Figure()
    names = [plot_text(r.name) for r in rows]
    fig.add_bar(x=names, y=[r.count for r in rows], name="defects")
    fig.add_scatter(x=names, y=[r.cumulative_share for r in rows], yaxis="y2",
                    name="cumulative share", mode="lines+markers")  # fmt: skip
    fig.add_shape(type="line", xref="paper", x0=0, x1=1, yref="y2", y0=0.8, y1=0.8,
                  line={"dash": "dot"})  # fmt: skip
    fig.update_layout(title="Pareto of defect classes", height=320, margin=_MARGIN,
                      yaxis2={"overlaying": "y", "side": "right", "range": [0, 1.05],
                              "tickformat": ".0%"})  # fmt: skip
    return fig


def drift_figure(report: TrendReport, tz: ZoneInfo) -> go.Figure:
    """Mean calibrated confidence (individuals chart) and unsure share (p or Laney p′)."""
    starts = [b.start for b in report.buckets]
    d = report.drift
    fig = go.Figure()
    if d.confidence is not None:
        c = d.confidence
        fig.add_scatter(x=starts, y=list(c.values), mode="lines+markers", name="mean confidence")
        for name, y in (("confidence limits", c.ucl), (None, c.lcl)):
            fig.add_scatter(x=[starts[0], starts[-1]], y=[y, y], mode="lines", name=name,
                            showlegend=name is not None, legendgroup="climits",
                            line={"dash": "dash", "color": "#33a02c"})  # fmt: skip
    if d.unsure is not None:
        pts = d.unsure.points
        fig.add_scatter(x=starts, y=[p.rate for p in pts], mode="lines+markers", yaxis="y2",
                        name="unsure share")  # fmt: skip
        fig.add_scatter(x=starts, y=[p.ucl for p in pts], mode="lines", yaxis="y2",
                        name="unsure UCL", line={"dash": "dash", "shape": "hv"})  # fmt: skip
    signalled = [i for i, s in enumerate(d.confidence_signals) if s]
    if d.confidence is not None and signalled:
        fig.add_scatter(x=[starts[i] for i in signalled],
                        y=[d.confidence.values[i] for i in signalled], mode="markers",
                        name="drift signal", marker={"size": 12, "color": "red",
                                                     "symbol": "circle-open"})  # fmt: skip
    add_events(fig, report.events, tz)
    fig.update_layout(title="Drift: mean confidence and unsure share", height=320,
                      yaxis={"tickformat": ".0%", "title": "confidence"}, margin=_MARGIN,
                      yaxis2={"overlaying": "y", "side": "right", "tickformat": ".0%",
                              "title": "unsure"})  # fmt: skip
    return fig


def forecast_figure(history: Sequence[Bucket], fc: Forecast) -> go.Figure:
    """Daily defect rate, then the forecast with 80 % and 95 % bands, clearly marked."""
    fig = go.Figure()
    fig.add_scatter(x=[b.start for b in history],
                    y=[b.defects / b.parts if b.parts else None for b in history],
                    mode="lines+markers", name="daily defect rate")  # fmt: skip
    xs = [d.start for d in fc.days]
    for level, lo, hi, colour in ((95, "lo95", "hi95", "rgba(255,127,0,0.15)"),
                                  (80, "lo80", "hi80", "rgba(255,127,0,0.30)")):  # fmt: skip
        fig.add_scatter(x=xs + xs[::-1],
                        y=[getattr(d, hi) for d in fc.days] + [getattr(d, lo) for d in
                                                               fc.days[::-1]],
                        fill="toself", fillcolor=colour, line={"width": 0}, mode="lines",
                        name=f"{level} % interval", hoverinfo="skip")  # fmt: skip
    fig.add_scatter(x=xs, y=[d.rate for d in fc.days], mode="lines+markers", name="forecast",
                    line={"dash": "dash", "color": "#ff7f00"})  # fmt: skip
    fig.add_vrect(
        x0=xs[0],
        x1=xs[-1],
        fillcolor="#fff3e0",
        opacity=0.4,
        line_width=0,
        layer="below",
        annotation_text="FORECAST",
        annotation_position="top left",
    )
    fig.update_layout(title="Daily defect rate and the next 7 days (forecast)", height=320,
                      yaxis_tickformat=".1%", margin=_MARGIN)  # fmt: skip
    return fig
