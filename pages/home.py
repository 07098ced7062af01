"""Home: the plant overview for any logged-in user: headline numbers, then each line today
against the last 30 days, its review backlog and open SPC signals."""

from datetime import UTC, datetime, timedelta

import streamlit as st

from core.auth import permissions
from core.auth.permissions import Action
from core.errors import DefectLensError
from core.quality import overview, trends
from pages._ui import get_db, get_settings, literal, require_page

user = require_page(Action.VIEW_TRENDS)
settings = get_settings()
st.title("Plant overview")
now = datetime.now(UTC)
try:
    tz = trends.plant_zone(settings)
    ov = overview.plant_overview(get_db(), user, hours=24, now=now)
    lines = overview.line_overview(get_db(), settings, user, now=now)
except DefectLensError as e:
    st.error(literal(e))
    st.stop()


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


st.caption(
    f"Logged in as {literal(user.username)} ({user.role.value}). Plant-wide, the last 24 hours: "
    "since "
    f"{ov.since.astimezone(tz):%Y-%m-%d %H:%M} plant-local time ({settings.timezone})."
)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Parts inspected", f"{ov.inspected:,}")
c2.metric("Defect rate", _share(ov.defect_rate))
c3.metric("Flagged parts", f"{ov.flagged:,}")
c4.metric("Waiting for review", f"{ov.open_reviews:,}")
c5, c6 = st.columns(2)
c5.metric("Active model", literal(ov.active_model) if ov.active_model else "none yet")
c6.metric("Training jobs queued or running", ov.jobs_waiting_or_running)

if not lines.any_inspections:
    st.info("No inspections yet. Train a model on a dataset, then inspect part images:")
    may_train = permissions.can(user, Action.TRAIN)
    may_inspect = permissions.can(user, Action.INSPECT)
    if may_train:
        st.page_link("pages/training.py", label="Training: import a dataset and train a model",
                     icon=":material/school:")  # fmt: skip
    if may_inspect:
        st.page_link("pages/inspect.py", label="Inspect: upload part images",
                     icon=":material/photo_camera:")  # fmt: skip
    if not (may_train and may_inspect):
        st.caption("An engineer imports datasets and trains models on the Training page; "
                   "reviewers and engineers upload part images on the Inspect page.")  # fmt: skip
    st.caption(
        "On the server: `defectlens dataset import`, `defectlens train`, `defectlens ingest`."
    )
    st.stop()

st.subheader("Lines")
last_day = lines.today_since.date() - timedelta(days=1)
st.caption(
    f"Today: since {lines.today_since:%Y-%m-%d %H:%M}; the last 30 days: "
    f"{lines.history_since:%Y-%m-%d} to {last_day} (plant-local, {settings.timezone}). "
    "Open signal: a Western Electric rule on the line's control chart of the last 7 days by "
    "shift, in a shift that began in the last 24 hours."
)
if not lines.lines:
    st.info("No inspections in the last 30 days, and nothing waits for review.")
for status in lines.lines:
    name = literal(status.line) if status.line else "(no line)"
    with st.container(border=True):
        if status.signals:
            rules = "; ".join(
                f"shift from {s.start:%Y-%m-%d %H:%M}: {', '.join(s.descriptions)}"
                for s in status.signals
            )
            st.error(f"**{name}**: open SPC signal. {rules}", icon=":material/warning:")
        else:
            st.markdown(f"**{name}**: no open signal")
        m = st.columns(4)
        m[0].metric("Parts today", f"{status.today_parts:,}")
        today, before = status.today_rate, status.history_rate
        delta = None if today is None or before is None else f"{(today - before) * 100:+.1f} pt"
        m[1].metric("Defect rate today", _share(today), delta, delta_color="inverse",
                    help="Change against the last 30 days")  # fmt: skip
        m[2].metric("Defect rate, last 30 days", _share(before))
        m[3].metric("Waiting for review", f"{status.backlog:,}")
        st.page_link("pages/trends.py", label="Open trends: 7 days by shift",
                     icon=":material/monitoring:",
                     query_params={"line": status.line, "period": "7d", "by": "shift"})  # fmt: skip
