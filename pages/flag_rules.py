"""Flagging rules: per product, which classes are good and the confidence below which a part is
flagged as unsure; with a helper that shows what each threshold costs."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.auth.permissions import Action
from core.errors import DefectLensError, NotFound
from core.quality import flag_rules
from core.registry import catalog
from pages._ui import get_db, get_settings, literal, require_page

user = require_page(Action.EDIT_FLAG_RULES)
db, settings = get_db(), get_settings()
st.title("Flagging rules")
st.caption(
    "A part is flagged when its predicted class is not a good class, or when the model's "
    f"confidence is below the threshold. Product `{flag_rules.DEFAULT_PRODUCT}` is the rule "
    "for every product without its own. Every change is a new version, kept and audited."
)

try:
    active = catalog.get_model(db, user, "active")
except NotFound:
    st.warning("No active model yet: promote one on the Models page first.")
    st.stop()

product = st.text_input("Product", value=flag_rules.DEFAULT_PRODUCT).strip()
current = flag_rules.active_rule(db, user, product or flag_rules.DEFAULT_PRODUCT)
st.write(
    f"In force for **{literal(product or flag_rules.DEFAULT_PRODUCT)}**: good classes "
    f"{literal(', '.join(current.good_classes)) or '(none)'}; "
    f"threshold {current.min_confidence:.0%}"
    + (
        f" (version {current.version} of {literal(current.product)})"
        if current.id
        else " (built-in)"
    )
)

good = st.multiselect(
    "Good classes",
    active.class_names,
    default=[c for c in current.good_classes if c in active.class_names],
)
threshold = st.slider("Confidence threshold", 0.0, 1.0, float(current.min_confidence), 0.01)

if good:
    try:
        curve = flag_rules.threshold_curve(db, settings, user, active, good)
    except DefectLensError as e:
        st.info(f"Threshold helper unavailable: {literal(e)}")
    else:
        df = pd.DataFrame([vars(p) for p in curve])
        fig = go.Figure()
        fig.add_scatter(x=df.threshold, y=df.flagged_share, name="share of parts flagged")
        fig.add_scatter(
            x=df.threshold, y=df.slipped_share, name="share of defects slipping through"
        )
        fig.add_vline(x=threshold, line_dash="dash")
        st.caption(
            "Confidences here are the ones inspection applies the threshold to: calibrated on "
            "the model's validation split when it has one (temperature scaling, see the Models "
            "page), so a part shown at 90 % is classed right about 9 times in 10."
        )
        fig.update_layout(
            height=320,
            xaxis_title="threshold",
            yaxis_tickformat=".0%",
            margin={"l": 0, "r": 0, "t": 30, "b": 0},
            title=f"On the validation images of model #{active.id}",
        )
        st.plotly_chart(fig, width="stretch")
        nearest = min(curve, key=lambda p: abs(p.threshold - threshold))
        st.write(
            f"At {nearest.threshold:.0%}: {nearest.flagged_share:.1%} of parts go to review, "
            f"{nearest.slipped_defects} defect(s) slip through, {nearest.false_alarms} good "
            "part(s) flagged."
        )

if st.button("Save as a new version", type="primary", disabled=not good):
    try:
        rule = flag_rules.set_rule(db, user, product or flag_rules.DEFAULT_PRODUCT, good, threshold)
        st.success(f"Saved version {rule.version} for {literal(rule.product)}.")
    except DefectLensError as e:
        st.error(literal(e))

history = flag_rules.rule_history(db, user, product or flag_rules.DEFAULT_PRODUCT)
if history:
    st.subheader("History")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "version": r.version,
                    "good classes": ", ".join(r.good_classes),
                    "threshold": r.min_confidence,
                    "by": r.created_by,
                    "when (UTC)": r.created_at,
                }
                for r in history
            ]
        ),
        hide_index=True,
        width="stretch",
    )
