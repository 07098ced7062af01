"""Trends: defect rate over time with its control chart, per line, mix, Pareto, drift, forecast
and KPIs (viewer+); engineers freeze control limits and annotate process changes.

The filters live in the URL's query string, so a view can be bookmarked and sent on.
"""

from datetime import UTC, date, datetime, time, timedelta

import pandas as pd
import streamlit as st

from core.auth.permissions import Action, can
from core.errors import DefectLensError
from core.quality import buckets, forecast, inspections, pdf_report, reports, spc, trends
from pages import _trend_charts as charts
from pages._trend_admin import annotations_panel, limits_panel
from pages._ui import get_db, get_settings, literal, require_page

PERIODS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30),
           "90d": timedelta(days=90), "custom": None}  # fmt: skip
ANY = "(any)"

user = require_page(Action.VIEW_TRENDS)
settings = get_settings()
db = get_db()
st.title("Trends")
try:
    tz = buckets.plant_zone(settings)
except DefectLensError as e:
    st.error(literal(e))
    st.stop()
q = st.query_params


def _pick(label: str, options: list[str], key: str, column) -> str:  # type: ignore[no-untyped-def]
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
models = {f"#{i} {name}": i for i, name in trends.model_values(db, user)}
c1, c2, c3, c4 = st.columns(4)
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
c5, c6, c7, _ = st.columns(4)
model = _pick("Model", [ANY, *models], "model", c5)
shift = _pick("Shift (starts)", [ANY, *settings.shift_starts], "shift", c6)
by = _pick("Bucket", ["auto", *buckets.BUCKETS], "by", c7)
where = trends.checked_filter(
    *(None if v == ANY else v for v in (line, station, product)),
    model_id=models.get(model), shift=None if shift == ANY else shift,
)  # fmt: skip
try:
    report = trends.trend_report(db, settings, user, since, until, where,
                                 None if by == "auto" else by)  # fmt: skip
except DefectLensError as e:
    st.error(literal(e))
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
    annotations_panel(db, user, tz, since, until, line=where.line)
    st.stop()

if can(user, Action.DOWNLOAD_REPORTS):
    d1, d2, _ = st.columns([1, 1, 3])
    # Both read more than the page shows, so they are made on request, not on every rerun.
    if d1.button("Prepare CSV", icon=":material/table:", help="The filtered inspections"):
        csv_text = "".join(reports.inspections_csv(db, settings, user, since, until, where))
        d1.download_button("Download CSV", csv_text.encode("utf-8"), type="primary",
                           file_name=f"defectlens_{since:%Y%m%d}_{until:%Y%m%d}.csv",
                           mime="text/csv")  # fmt: skip
    if d2.button("Prepare PDF report", icon=":material/picture_as_pdf:"):
        pdf = pdf_report.trend_pdf(db, settings, user, report)
        name = f"defectlens_trends_{since:%Y%m%d}_{until:%Y%m%d}.pdf"
        d2.download_button("Download PDF", pdf, type="primary", mime="application/pdf",
                           file_name=name)  # fmt: skip

st.plotly_chart(charts.rate_figure(report, tz), width="stretch")
if report.choice is not None:
    base = "" if report.baseline else " Baseline: the displayed period (no limits frozen)."
    st.caption(f"{charts.chart_name(report)}: {report.choice.reason}{base}")
flagged = [(b, p, s) for b, p, s in zip(report.buckets, report.chart.points, report.signals,
                                        strict=True) if s]  # fmt: skip
if flagged:
    st.dataframe(
        pd.DataFrame(
            {
                "bucket": b.start.strftime("%Y-%m-%d %H:%M"),
                "rate": f"{p.rate:.2%}",
                "rules": "; ".join(spc.RULE_DESCRIPTIONS[r] for r in s),
            }
            for b, p, s in flagged
        ),  # fmt: skip
        width="stretch",
        hide_index=True,
    )
if report.events:
    st.caption("Markers: M model promotion, R flagging-rule change, A annotation (hover for text).")
limits_panel(db, settings, user, report, tz)

left, right = st.columns(2)
per_line = trends.rate_by_line(db, settings, user, since, until, where, report.by)
left.plotly_chart(charts.lines_figure(per_line, report, tz), width="stretch")
if report.pareto.rows:
    right.plotly_chart(charts.pareto_figure(report), width="stretch")
    left.plotly_chart(charts.mix_figure(report, tz), width="stretch")
else:
    right.info("No defective parts in this period.")
right.plotly_chart(charts.drift_figure(report, tz), width="stretch")
st.caption(
    "Drift: the mean calibrated confidence per bucket on an individuals chart (limits x̄ ± "
    "2.66·MR̄) and the share of unsure parts on its own p-chart; a model meeting unfamiliar "
    "parts loses confidence before its defect rate moves."
)

if report.forecast is not None:
    st.plotly_chart(charts.forecast_figure(report.daily, report.forecast), width="stretch")
    st.caption(f"Forecast, not a measurement: {report.forecast.reason}")
else:
    st.caption(f"No forecast: it needs at least {forecast.MIN_HISTORY_DAYS} days with parts "
               "in the displayed period (choose 30 d or more).")  # fmt: skip

annotations_panel(db, user, tz, since, until, line=where.line)

st.subheader("Recent flagged parts")
recent = inspections.list_inspections(db, user, limit=10, flagged_only=True, line=where.line,
                                      product=where.product, since=since, until=until)  # fmt: skip
if recent:
    st.dataframe(
        pd.DataFrame(
            {
                "captured": r.captured_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"),
                "line": r.line,
                "station": r.station,
                "product": r.product,
                "serial": r.serial,
                "class": r.predicted_class,
                "confidence": r.confidence,
                "reason": r.flag_reason,
                "reviewed as": r.true_class,
            }
            for r in recent
        ),  # fmt: skip
        width="stretch",
        hide_index=True,
    )
else:
    st.caption("None in this period.")
