"""Inspect: upload part images (or a zip), classify them with the active model, see why."""

import base64
from datetime import UTC, datetime, time

import pandas as pd
import streamlit as st

from core.auth.permissions import Action
from core.errors import DefectLensError, NotFound, ValidationError
from core.quality import ingest, inspections, uploads
from core.registry import catalog
from db.queries.inspections import InspectionRecord
from pages._ui import get_classifier, get_db, get_settings, literal, require_page

RESULTS_SHOWN = 200  # rows with thumbnails in the results table

user = require_page(Action.INSPECT)
db, settings = get_db(), get_settings()
st.title("Inspect parts")

try:
    active = catalog.get_model(db, user, "active")
except NotFound:
    st.warning("No active model yet. An engineer promotes one on the Models page.")
    st.stop()
st.caption(
    f"Active model #{active.id}: {literal(active.name)}" + (" (demo)" if active.is_demo else "")
)

with st.form("inspect", clear_on_submit=False):
    c1, c2, c3, c4, c5 = st.columns(5)
    line = c1.text_input("Line")
    station = c2.text_input("Station")
    product = c3.text_input("Product")
    lot = c4.text_input("Lot")
    serial = c5.text_input("Serial")
    d1, d2 = st.columns(2)
    day = d1.date_input("Capture date (UTC)", value=datetime.now(UTC).date())
    at_time = d2.time_input("Capture time (UTC)", value=time(datetime.now(UTC).hour))
    files = st.file_uploader(
        "Part images or a zip of them",
        accept_multiple_files=True,
        type=["png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp", "gif", "zip"],
    )
    submitted = st.form_submit_button("Inspect", type="primary")

if submitted:
    try:
        if not files:
            raise ValidationError("Choose at least one image or zip.")
        uploads.check_request_size([f.size for f in files], settings)
    except ValidationError as e:
        st.error(literal(e))
        files = []
    if files:
        trace = ingest.Traceability(
            line=line or None,
            station=station or None,
            product=product or None,
            lot=lot or None,
            serial=serial or None,
            captured_at=datetime.combine(day, at_time, tzinfo=UTC),
        )
        # Zips are read entry by entry from the upload and inspected a group at a time, so
        # memory holds the uploads themselves and one group, not every image unpacked.
        items = (item for f in files for item in uploads.iter_upload(f.name, f, settings))
        try:
            with st.spinner(f"Inspecting {len(files)} upload(s)…"):
                result = ingest.ingest_many(
                    db, settings, user, items, trace, classifier=(active, get_classifier(active))
                )
        except DefectLensError as e:
            st.error(literal(e))
        else:
            st.session_state["inspect_ids"] = result.processed_ids
            st.session_state["inspect_rejected"] = [(r.file, r.reason) for r in result.rejected]
            st.success(
                f"{len(result.processed_ids)} inspected, {result.flagged} flagged, "
                f"{len(result.rejected)} rejected ({result.images_per_second:.0f} images/s)."
            )

ids = st.session_state.get("inspect_ids", [])
rejected_rows = st.session_state.get("inspect_rejected", [])
if rejected_rows:
    st.subheader("Rejected files")
    st.dataframe(
        pd.DataFrame(rejected_rows, columns=["file", "reason"]), hide_index=True, width="stretch"
    )
if not ids:
    st.stop()

if len(ids) > RESULTS_SHOWN:
    st.caption(
        f"Showing the first {RESULTS_SHOWN} of {len(ids):,} results; every one is stored "
        "(the flagged ones are in the review queue, all of them in Trends)."
    )
records = [inspections.get_inspection(db, user, i) for i in ids[:RESULTS_SHOWN]]


def _thumb(rec: InspectionRecord) -> str:
    png = inspections.thumbnail_png(settings, user, rec, size=72)
    return "data:image/png;base64," + base64.b64encode(png).decode()


st.subheader("Results")
table = pd.DataFrame(
    [
        {
            "id": r.id,
            "image": _thumb(r),
            "file": r.source_name,
            "class": r.predicted_class,
            "confidence": r.confidence,
            "flagged": r.flagged,
            "reason": r.flag_reason or "",
        }
        for r in records
    ]
)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    row_height=80,
    column_config={
        "image": st.column_config.ImageColumn("image", width="small"),
        "confidence": st.column_config.ProgressColumn(
            "confidence", min_value=0, max_value=1, format="percent"
        ),
    },
)

chosen = st.selectbox(
    "Open a result",
    [r.id for r in records],
    format_func=lambda i: next(f"#{r.id} {r.source_name}" for r in records if r.id == i),
)
rec = next(r for r in records if r.id == chosen)
left, mid, right = st.columns(3)
left.image(
    inspections.image_bytes(settings, user, rec),
    caption=f"Image: {literal(rec.source_name)}",  # a caption renders Markdown
    width="stretch",
)
# A flagged part's heatmap is stored; another part's is computed on request and kept for this
# browser session, so the next click elsewhere on the page does not take it away again.
computed = st.session_state.setdefault("computed_heatmaps", {})
heat = inspections.heatmap_png(settings, user, rec) or computed.get(rec.id)
if heat is None and mid.button("Compute heatmap"):
    heat = get_classifier(active).explain(inspections.image_bytes(settings, user, rec)).overlay_png
    computed[rec.id] = heat
if heat is not None:
    mid.image(heat, caption="Grad-CAM heatmap: where the model looked", width="stretch")
right.bar_chart(pd.Series(rec.probabilities, name="probability"), horizontal=True)
right.write(
    f"**{literal(rec.predicted_class)}** at {rec.confidence:.1%}"
    + (f" · flagged ({literal(rec.flag_reason)})" if rec.flagged else " · not flagged")
)
