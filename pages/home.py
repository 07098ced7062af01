"""Home: the plant overview for any logged-in user."""

import streamlit as st

from core.auth.permissions import Action
from core.quality import overview
from pages._ui import get_db, require_page

user = require_page(Action.VIEW_TRENDS)
st.title("Plant overview")
st.caption(f"Logged in as {user.username} ({user.role.value}). Last 24 hours, times in UTC.")

ov = overview.plant_overview(get_db(), user, hours=24)
c1, c2, c3, c4 = st.columns(4)
c1.metric("Parts inspected", f"{ov.inspected:,}")
c2.metric("Defect rate", "–" if ov.defect_rate is None else f"{ov.defect_rate:.1%}")
c3.metric("Flagged parts", f"{ov.flagged:,}")
c4.metric("Waiting for review", f"{ov.open_reviews:,}")
c5, c6 = st.columns(2)
c5.metric("Active model", ov.active_model or "none yet")
c6.metric("Training jobs queued or running", ov.jobs_waiting_or_running)

if ov.inspected == 0:
    st.info(
        "No inspections in the last 24 hours. Engineers import a dataset and train a model "
        "with `defectlens dataset import` and `defectlens train`; inspection arrives next."
    )
