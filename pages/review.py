"""Review: work the queue of flagged parts; confirm or correct the class, record a disposition."""

import pandas as pd
import streamlit as st

from core.auth.permissions import Action
from core.errors import Conflict, DefectLensError
from core.quality import inspections, review
from pages._ui import acting_user, get_db, get_settings, literal, require_page

user = require_page(Action.REVIEW)
db, settings = get_db(), get_settings()
st.title("Review queue")
flash = st.session_state.pop("review_flash", None)
if flash is not None:
    getattr(st, flash[0])(flash[1])

stats = review.reviewer_stats(db, user, timezone=settings.timezone)
s1, s2, s3 = st.columns(3)
s1.metric("Reviewed by you today", stats.reviewed_today)
s2.metric("Agreement with the model", "–" if stats.agreement is None else f"{stats.agreement:.0%}")
s3.metric("Reviewed by you in total", stats.total)

f1, f2, f3 = st.columns(3)
order = f1.radio(
    "Order",
    ["oldest", "least_confident"],
    horizontal=True,
    format_func=lambda o: "oldest first" if o == "oldest" else "least confident first",
)
line = f2.text_input("Line filter").strip() or None
product = f3.text_input("Product filter").strip() or None

items = review.queue(db, user, order=order, line=line, product=product, limit=100)
if not items:
    st.success("Nothing waiting for review.")
    st.stop()
st.caption(f"{len(items)} part(s) waiting (showing up to 100).")

item = items[0]
# Remember which part and version this browser saw, so a concurrent save is detected.
if st.session_state.get("review_item") != (item.id, item.review_version):
    st.session_state["review_item"] = (item.id, item.review_version)
    st.session_state["review_true_class"] = item.predicted_class
class_names = list(item.probabilities)

st.subheader(f"Part #{item.id}")
st.text(
    f"File: {item.source_name}   Line: {item.line or '–'}   Station: {item.station or '–'}   "
    f"Product: {item.product or '–'}   Lot: {item.lot or '–'}   Serial: {item.serial or '–'}"
)
img_col, heat_col, prob_col = st.columns([2, 2, 1.4])
caption = "Image (demo part)" if item.is_demo else "Image"
img_col.image(inspections.image_bytes(settings, user, item), caption=caption, width="stretch")
heat = inspections.heatmap_png(settings, user, item)
if heat is not None:
    heat_col.image(heat, caption="Heatmap (stored at inspection)", width="stretch")
else:
    heat_col.info("No heatmap was stored for this part.")
prob_col.bar_chart(pd.Series(item.probabilities, name="probability"), horizontal=True)
prob_col.text(
    f"Model: {item.predicted_class} ({item.confidence:.1%})\nFlagged: {item.flag_reason or ''}"
)


def _choose(name: str) -> None:
    st.session_state["review_true_class"] = name


st.write("True class (keys 1–9):")
cols = st.columns(min(len(class_names), 9))
for i, name in enumerate(class_names[:9]):
    cols[i].button(
        f"{i + 1} · {literal(name)}",
        key=f"cls_{i}",
        on_click=_choose,
        args=(name,),
        shortcut=str(i + 1),
        width="stretch",
    )
st.radio(
    "True class",
    class_names,
    format_func=literal,
    key="review_true_class",
    horizontal=True,
    label_visibility="collapsed",
)
note = st.text_input("Note (optional)", key=f"note_{item.id}")


def _save(disposition: str) -> None:
    """Runs before the rerun, so it saves the part this browser showed, whatever the queue
    holds now; a part someone else saved meanwhile gives a Conflict, never a silent overwrite."""
    seen_id, seen_version = st.session_state["review_item"]
    chosen = st.session_state["review_true_class"]
    try:
        review.record_review(
            db,
            acting_user(Action.REVIEW),
            seen_id,
            true_class=chosen,
            disposition=disposition,
            note=st.session_state.get(f"note_{seen_id}") or None,
            expected_version=seen_version,
        )
    except Conflict as e:
        st.session_state["review_flash"] = ("warning", literal(e))
    except DefectLensError as e:
        st.session_state["review_flash"] = ("error", literal(e))
    else:
        st.session_state["review_flash"] = (
            "success",
            f"Part #{seen_id} saved: {literal(chosen)}, {disposition}.",
        )
    st.session_state.pop("review_item", None)


d1, d2, d3 = st.columns(3)
d1.button(
    "Accept (A)", type="primary", shortcut="A", width="stretch", on_click=_save, args=("accept",)
)
d2.button("Rework (W)", shortcut="W", width="stretch", on_click=_save, args=("rework",))
d3.button("Scrap (S)", shortcut="S", width="stretch", on_click=_save, args=("scrap",))

past = review.history(db, user, item.id)
if past:
    with st.expander("History of this part"):
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "when (UTC)": h.created_at,
                        "reviewer": h.reviewer,
                        "true class": h.true_class,
                        "disposition": h.disposition,
                        "note": h.note or "",
                    }
                    for h in past
                ]
            ),
            hide_index=True,
            width="stretch",
        )
