"""Trends: defect rate over time with its control chart, per line, Pareto and KPIs (viewer+).

The filters live in the URL's query string, so a view can be bookmarked and sent on.
"""

from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.auth.permissions import Action
from core.errors import DefectLensError
from core.quality import buckets, reports, spc, trends
from pages._ui import get_db, get_settings, require_page

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30),
           "90d": timedelta(days=90), "custom": None}  # fmt: skip
ANY = "(any)"

user = require_page(Action.VIEW_TRENDS)
settings = get_settings()
db = get_db()
st.title("Trends")
try:
    tz = trends.plant_zone(settings)
except DefectLensError as e:
    st.error(str(e))
    st.stop()
q = st.query_params


def _pick(
    label: str, options: list[str], key: str, column: st.delta_generator.DeltaGenerator
) -> str:
    """A select box whose value comes from and goes back to the query string."""
    current = q.get(key, options[0])
    index = options.index(current) if current in options else 0
    value = column.selectbox(label, options, index=index, key=f"trends_{key}")
    if value == options[0]:
        q.pop(key, None)
    else:
        q[key] = value
    return value


values = trends.filter_values(db, user)
c1, c2, c3, c4, c5 = st.columns(5)
period = _pick("Period", list(PERIODS), "period", c1)
now = datetime.now(UTC)
if PERIODS[period] is None:
    today = now.astimezone(tz).date()
    try:
        first = date.fromisoformat(q.get("since", str(today - timedelta(days=7))))
        last = date.fromisoformat(q.get("until", str(today)))
    except ValueError:
        first, last = today - timedelta(days=7), today
    picked = c1.date_input("Days", (first, last), key="trends_days")
    if isinstance(picked, tuple) and len(picked) == 2:
        first, last = picked
    q["since"], q["until"] = str(first), str(last)
    since = datetime.combine(first, time(), tz)
    until = datetime.combine(last + timedelta(days=1), time(), tz)
else:
    until = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    since = until - PERIODS[period]  # type: ignore[operator]
line = _pick("Line", [ANY, *values["line"]], "line", c2)
station = _pick("Station", [ANY, *values["station"]], "station", c3)
product = _pick("Product", [ANY, *values["product"]], "product", c4)
by = _pick("Bucket", ["auto", *buckets.BUCKETS], "by", c5)
where = trends.checked_filter(*(None if v == ANY else v for v in (line, station, product)))
bucket = None if by == "auto" else by

try:
    report = trends.trend_report(db, settings, user, since, until, where, bucket)
except DefectLensError as e:
    st.error(str(e))
    st.stop()
st.caption(
    f"{since.astimezone(tz):%Y-%m-%d %H:%M} to {until.astimezone(tz):%Y-%m-%d %H:%M} "
    f"({settings.timezone}), by {report.by}. A part counts as defective by its reviewed class "
    "once an inspector has reviewed it, else by the model's."
)

k, prev = report.kpis, report.previous_kpis


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _delta(name: str) -> str | None:
    a, b = k.get(name), prev.get(name)
    return None if a is None or b is None else f"{(a - b) * 100:+.1f} pt"


m = st.columns(6)
parts_delta = k["parts"] - prev["parts"] if prev.get("parts") else None
m[0].metric("Parts inspected", f"{k['parts']:,}", parts_delta)
m[1].metric("Defect rate", _share(k["defect_rate"]), _delta("defect_rate"), delta_color="inverse")
m[2].metric("Flagged", _share(k["flagged_share"]), _delta("flagged_share"), delta_color="off")
m[3].metric("Reviewed", _share(k["reviewed_share"]), _delta("reviewed_share"), delta_color="off")
m[4].metric("Corrections", f"{k['corrections']:,}")
m[5].metric("Model-inspector agreement", _share(k["agreement"]), _delta("agreement"))
st.caption("Changes are against the previous period of the same length.")

if report.chart is None:
    st.info("No inspections in this period and filter.")
    st.stop()

# The CSV reads raw rows, so it is made on request, not on every rerun of the page.
if st.button("Prepare CSV of these inspections", icon=":material/table:"):
    csv_text = "".join(reports.inspections_csv(db, settings, user, since, until, where))
    st.download_button("Download CSV", csv_text.encode("utf-8"), type="primary",
                       file_name=f"defectlens_{since:%Y%m%d}_{until:%Y%m%d}.csv",
                       mime="text/csv")  # fmt: skip

starts = [b.start for b in report.buckets]
points = report.chart.points
fig = go.Figure()
fig.add_scatter(x=starts, y=[p.rate for p in points], mode="lines+markers", name="defect rate")
fig.add_scatter(x=starts, y=[p.ucl for p in points], mode="lines", name="UCL",
                line={"dash": "dash", "shape": "hv"})  # fmt: skip
fig.add_scatter(x=starts, y=[p.lcl for p in points], mode="lines", name="LCL",
                line={"dash": "dash", "shape": "hv"})  # fmt: skip
fig.add_hline(y=report.chart.centre, line_dash="dot", annotation_text="centre")
flagged = [(b, p, s) for b, p, s in zip(report.buckets, points, report.signals, strict=True) if s]
if flagged:
    fig.add_scatter(x=[b.start for b, _, _ in flagged], y=[p.rate for _, p, _ in flagged],
                    mode="markers", name="signal", marker={"size": 12, "color": "red",
                                                           "symbol": "circle-open"})  # fmt: skip
chart_name = "Laney p′ chart" if report.chart.chart == spc.LANEY_P_CHART else "p-chart"
fig.update_layout(title=f"Defect rate ({chart_name})", height=360, yaxis_tickformat=".1%",
                  margin={"l": 0, "r": 0, "t": 40, "b": 0})  # fmt: skip
st.plotly_chart(fig, width="stretch")
if report.choice is not None:
    st.caption(f"{chart_name}: {report.choice.reason} Baseline: the displayed period.")
if flagged:
    st.dataframe(
        pd.DataFrame(
            {
                "bucket": b.start.strftime("%Y-%m-%d %H:%M"),
                "rate": p.rate,
                "rules": "; ".join(spc.RULE_DESCRIPTIONS[r] for r in s),
            }
            for b, p, s in flagged
        ),  # fmt: skip
        width="stretch",
        hide_index=True,
    )

left, right = st.columns(2)
per_line = trends.rate_by_line(db, settings, user, since, until, where, report.by)
lines_fig = go.Figure()
for name, buckets in sorted(per_line.items()):
    lines_fig.add_scatter(x=[b.start for b in buckets],
                          y=[b.defects / b.parts if b.parts else None for b in buckets],
                          mode="lines+markers", name=name or "(no line)")  # fmt: skip
lines_fig.update_layout(title="Defect rate per line", height=320, yaxis_tickformat=".1%",
                        margin={"l": 0, "r": 0, "t": 40, "b": 0})  # fmt: skip
left.plotly_chart(lines_fig, width="stretch")

rows = report.pareto.rows
if rows:
    pareto = go.Figure()
    pareto.add_bar(x=[r.name for r in rows], y=[r.count for r in rows], name="defects")
    pareto.add_scatter(x=[r.name for r in rows], y=[r.cumulative_share for r in rows],
                       yaxis="y2", name="cumulative share", mode="lines+markers")  # fmt: skip
    pareto.add_shape(type="line", xref="paper", x0=0, x1=1, yref="y2", y0=0.8, y1=0.8,
                     line={"dash": "dot"})  # fmt: skip
    pareto.update_layout(title="Pareto of defect classes", height=320,
                         yaxis2={"overlaying": "y", "side": "right", "range": [0, 1.05],
                                 "tickformat": ".0%"},
                         margin={"l": 0, "r": 0, "t": 40, "b": 0})  # fmt: skip
    right.plotly_chart(pareto, width="stretch")
else:
    right.info("No defective parts in this period.")
