"""Models: metrics of every model, candidate vs. active on the same data, promote, roll back."""

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from core.auth.permissions import Action, CurrentUser
from core.errors import DefectLensError
from core.registry import catalog, compare
from pages._ui import get_db, get_settings, literal, plot_text, require_page

user = require_page(Action.MANAGE_MODELS)
db, settings = get_db(), get_settings()
st.title("Models")

models = catalog.list_models(db, user)
if not models:
    st.info("No models yet. Train one on the Training page or with `defectlens train`.")
    st.stop()
datasets = {d.id: d for d in catalog.list_datasets(db, user)}
active = next((m for m in models if m.status.value == "active"), None)


def _pct(value: object) -> str:
    return "–" if value is None else f"{float(value):.2%}"  # type: ignore[arg-type]


st.dataframe(
    pd.DataFrame(
        [
            {
                "id": m.id,
                "status": m.status.value,
                "name": m.name + (" (demo)" if m.is_demo else ""),
                "architecture": m.architecture,
                "accuracy": _pct(m.metrics.get("accuracy")),
                "measured on": m.metrics.get("evaluated_on", "val"),
                "macro-F1": m.metrics.get("macro_f1"),
                "dataset": datasets[m.dataset_id].name if m.dataset_id in datasets else "–",
                "created (UTC)": m.created_at,
            }
            for m in models
        ]
    ),
    hide_index=True,
    width="stretch",
)

c1, c2 = st.columns([3, 1])
chosen_id = c1.selectbox(
    "Model",
    [m.id for m in models],
    format_func=lambda i: next(f"#{m.id} {m.name} ({m.status.value})" for m in models if m.id == i),
)
model = next(m for m in models if m.id == chosen_id)
with c2:
    st.write("")
    if st.button("Roll back to previous active", disabled=active is None):
        try:
            back = catalog.rollback_model(db, user)
            st.success(f"Model #{back.id} is active again.")
            st.rerun()
        except DefectLensError as e:
            st.warning(literal(e))

left, right = st.columns(2)
with left:
    st.subheader(f"#{model.id} · {model.status.value}")
    ds = datasets.get(model.dataset_id or -1)
    spec = model.input_spec
    st.write(
        f"Architecture **{model.architecture}**, input {spec.get('img_size')} px "
        f"({spec.get('resize', 'stretch')}), {spec.get('in_channels')} channel(s)"
    )
    if spec.get("img_size_reason"):
        st.caption(f"Input size {spec['img_size_reason']}")
    st.write(
        f"Trained on dataset **{literal(ds.name) if ds else 'unknown'}**"
        + (f" (#{ds.id}, {ds.num_images} images)" if ds else "")
    )
    st.caption(f"Artifact SHA-256 {model.artifact_sha256}")
    per_class = model.metrics.get("per_class") or {}
    if per_class:
        st.dataframe(pd.DataFrame(per_class).T, width="stretch")
with right:
    cm = model.metrics.get("confusion_matrix")
    if cm:
        fig = px.imshow(
            cm,
            x=[plot_text(c) for c in model.class_names],
            y=[plot_text(c) for c in model.class_names],
            text_auto=True,
            labels={"x": "predicted", "y": "true"},
            color_continuous_scale="Blues",
        )
        fig.update_layout(
            height=380,
            margin={"l": 0, "r": 0, "t": 30, "b": 0},
            title="Validation confusion matrix",
        )
        st.plotly_chart(fig, width="stretch")


def _reliability_figure(report: dict[str, object]) -> go.Figure:
    """Accuracy against mean confidence per bin, before and after scaling, with the diagonal."""
    fig = go.Figure()
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": "grey"},
        name="perfectly calibrated",
    )  # fmt: skip
    for key, label in (("reliability_before", "before scaling"), ("reliability_after", "after")):
        rows = [r for r in report.get(key) or [] if r["count"]]  # type: ignore[attr-defined]
        fig.add_scatter(
            x=[r["confidence"] for r in rows], y=[r["accuracy"] for r in rows],
            mode="lines+markers", name=label, text=[f"{r['count']} images" for r in rows],
        )  # fmt: skip
    fig.update_layout(
        height=340, xaxis_title="confidence", yaxis_title="accuracy",
        xaxis_range=[0, 1.02], yaxis_range=[0, 1.02], xaxis_tickformat=".0%",
        yaxis_tickformat=".0%", margin={"l": 0, "r": 0, "t": 30, "b": 0},
        title="Reliability on the validation split",
    )  # fmt: skip
    return fig


st.subheader("Confidence calibration")
try:
    stored = compare.stored_calibration(model)
except (OSError, ValueError) as e:
    st.caption(f"Calibration unavailable: the model's metadata cannot be read ({e}).")
else:
    report = stored.report
    if stored.calibrated:
        st.write(
            f"Temperature **{stored.temperature:.3f}**, fitted on {report.get('images')} "
            f"{report.get('fitted_on')} images: expected calibration error "
            f"**{_pct(report.get('ece_after'))}** (before scaling {_pct(report.get('ece_before'))}"
            f", {report.get('bins')} bins). The confidences shown everywhere, and the Flagging "
            "rules page's threshold curve, are these calibrated ones."
        )
        st.plotly_chart(_reliability_figure(report), width="stretch")
    else:
        st.caption(
            "Not calibrated (temperature 1): "
            + str(report.get("reason", "this model was trained before calibration existed."))
        )
    st.write("**When a part is called good:** " + literal(compare.acceptance_summary(stored)))

b1, b2 = st.columns(2)
if model.status.value != "active" and b1.button("Promote to active", type="primary"):
    try:
        catalog.promote_model(db, user, model.id)
        st.success(f"Model #{model.id} is now active; inspection uses it from the next image.")
        st.rerun()
    except DefectLensError as e:
        st.error(literal(e))


@st.cache_data(max_entries=8, show_spinner="Exporting to ONNX…")
def _onnx(model_id: int, _actor: CurrentUser) -> bytes:
    # The user is not part of the cache key (leading underscore): only the model is.
    return compare.onnx_export_bytes(catalog.get_model(get_db(), _actor, model_id))


if b2.toggle("Prepare ONNX download"):
    b2.download_button(
        "Download ONNX",
        _onnx(model.id, user),
        file_name=f"defectlens-model-{model.id}.onnx",
        mime="application/octet-stream",
    )

if active is not None and active.id != model.id and model.dataset_id is not None:
    st.subheader(f"Compared with the active model #{active.id}")
    st.caption(f"Both models classify the validation split of dataset #{model.dataset_id}.")
    if st.button("Run comparison"):
        try:
            with st.spinner("Classifying the validation images with both models…"):
                scores = [
                    compare.score_model(db, settings, user, m, model.dataset_id)
                    for m in (model, active)
                ]
        except DefectLensError as e:
            st.warning(literal(e))
        else:
            rows = []
            for label, score in zip(("this model", "active"), scores, strict=True):
                row = {
                    "model": f"#{score.model_id} ({label})",
                    "accuracy": _pct(score.metrics["accuracy"]),
                    "macro-F1": round(float(score.metrics["macro_f1"]), 4),  # type: ignore[arg-type]
                    "images": score.images,
                }
                for cls, m in score.metrics["per_class"].items():  # type: ignore[attr-defined]
                    row[f"recall {cls}"] = round(m["recall"], 4)
                rows.append(row)
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
