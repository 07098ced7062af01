"""Training: datasets and their health, import, launch a job, the queue, and a live job view."""

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from core.auth.permissions import Action
from core.datasets import from_reviews, service
from core.errors import DefectLensError, PermissionDenied
from core.jobs import backend, queue
from core.registry import catalog
from core.training.balance import BALANCE_MODES
from core.training.config import ARCHITECTURE_NAMES, DEFAULT_IMG_SIZES, TrainConfig
from core.training.plan import DEFAULT_BUDGET_MINUTES
from pages._ui import acting_user, get_db, get_settings, literal, plot_text, require_page

user = require_page(Action.TRAIN)
db, settings = get_db(), get_settings()
st.title("Training")
defaults = TrainConfig()

data_tab, launch_tab, jobs_tab = st.tabs(["Datasets", "Launch a job", "Jobs"])

with data_tab:
    datasets = catalog.list_datasets(db, user)
    if not datasets:
        st.info(
            "No datasets yet. Import a zip or a server folder below (one sub-folder per class)."
        )
    for ds in datasets:
        health = ds.health
        warn = len(health.get("warnings", [])) + len(health.get("unreadable", []))
        label = (
            f"#{ds.id} {literal(ds.name)} · {ds.num_images} images · {len(ds.class_names)} classes"
        )
        label += " · demo" if ds.is_demo else ""
        with st.expander(label + (f" · {warn} warning(s)" if warn else "")):
            st.caption(
                f"Source: {literal(ds.source)} · imported {ds.created_at:%Y-%m-%d %H:%M} UTC"
            )
            st.bar_chart(pd.Series(ds.counts, name="images"))
            st.write(
                f"Imbalance (largest / smallest class): {health.get('imbalance_ratio', 1):.2f}"
                f" · grayscale: {'yes' if health.get('grayscale') else 'no'}"
            )
            for w in health.get("warnings", []):
                st.warning(literal(w))  # warnings quote class and file names
            if health.get("unreadable"):
                st.dataframe(
                    pd.DataFrame(health["unreadable"], columns=["file", "reason"]), hide_index=True
                )

    st.subheader("Import a dataset")
    upload_tab, folder_tab = st.tabs(["Upload a zip", "Folder on the server"])
    with upload_tab, st.form("upload_dataset", clear_on_submit=True):
        upload = st.file_uploader("Zip with one folder per class", type=["zip"])
        up_name = st.text_input("Dataset name", key="upload_name")
        if st.form_submit_button("Import zip", type="primary"):
            if upload is None or not up_name.strip():
                st.error("Choose a zip and give the dataset a name.")
            else:
                try:
                    with st.spinner("Validating and importing…"):
                        rec, _snap, created = service.import_upload(
                            db, settings, user, upload.getvalue(), upload.name, up_name
                        )
                    st.success(f"Dataset #{rec.id} {'imported' if created else 'already existed'}.")
                except DefectLensError as e:
                    st.error(literal(e))
    with folder_tab, st.form("folder_dataset"):
        # The administrator's setting, not user text.
        roots = ", ".join(f"`{r}`" for r in settings.import_dirs)
        st.caption(f"A folder inside {roots} (DEFECTLENS_IMPORT_ROOTS), one sub-folder per class.")
        folder = st.text_input("Folder path on the server")
        folder_name = st.text_input("Dataset name", key="folder_name")
        if st.form_submit_button("Import folder", type="primary"):
            try:
                with st.spinner("Validating and importing…"):
                    rec, _snap, created = service.import_server_folder(
                        db, settings, user, folder, folder_name
                    )
                st.success(f"Dataset #{rec.id} {'imported' if created else 'already existed'}.")
            except DefectLensError as e:
                st.error(literal(e))

    st.subheader("Make a dataset from reviewed parts")
    st.caption(
        "Every reviewed part, labelled with its reviewer's true class (the newest review "
        "wins), optionally merged with an existing dataset. It appears in the list above."
    )
    with st.form("from_reviews"):
        loop_name = st.text_input("Dataset name", key="loop_name")
        merge_choices = [None] + [d.id for d in datasets]
        merge_id = st.selectbox(
            "Merge with",
            merge_choices,
            format_func=lambda i: (
                "nothing" if i is None else next(f"#{d.id} {d.name}" for d in datasets if d.id == i)
            ),
        )
        if st.form_submit_button("Make dataset"):
            try:
                with st.spinner("Collecting reviewed parts…"):
                    rec = from_reviews.snapshot_from_reviews(
                        db, settings, user, loop_name, merge_dataset_id=merge_id
                    )
                st.success(f"Dataset #{rec.id} {literal(rec.name)}: {rec.num_images} images.")
            except DefectLensError as e:
                st.error(literal(e))

with launch_tab:
    datasets = catalog.list_datasets(db, user)
    gpu = backend.detected_gpu()
    st.caption(f"GPU: {gpu}" if gpu else "No GPU detected: jobs train on the CPU.")
    with st.form("launch"):
        ds_id = st.selectbox(
            "Dataset",
            [d.id for d in datasets],
            format_func=lambda i: next(f"#{d.id} {d.name}" for d in datasets if d.id == i),
        )
        c1, c2, c3 = st.columns(3)
        arch = c1.selectbox("Architecture", ARCHITECTURE_NAMES, help="defectnet: fast default")
        epochs = c2.number_input(
            "Epochs",
            0,
            500,
            defaults.epochs or 0,
            key="launch_epochs",
            help="0: chosen from the dataset's size (30 on the CPU, 40 on a GPU, more for a "
            "few hundred images) and cut to fit the time budget.",
        )
        img_size = c3.number_input(
            "Image size (px)",
            0,
            1024,
            defaults.img_size or 0,
            key="launch_img_size",
            help="0: chosen from the dataset's image sizes (the architecture's default, "
            f"{DEFAULT_IMG_SIZES[defaults.arch]} px, for square images); images are "
            "letterboxed, never stretched.",
        )
        c4, c5, c6 = st.columns(3)
        lr = c4.number_input("Learning rate", 1e-6, 1.0, defaults.lr, format="%.5f")
        batch = c5.number_input("Batch size", 1, 4096, defaults.batch_size)
        device_labels = {
            "auto": f"auto ({gpu or 'CPU'})",
            "cpu": "CPU",
            "cuda": f"GPU ({gpu})" if gpu else "GPU (none detected)",
        }
        device = c6.selectbox(
            "Device", list(device_labels), format_func=device_labels.get, key="launch_device"
        )
        budget = st.number_input(
            "Time budget (minutes)",
            0.0,
            10080.0,
            0.0,
            step=5.0,
            key="launch_budget",
            help=f"0: {DEFAULT_BUDGET_MINUTES['cpu']:g} min on the CPU, "
            f"{DEFAULT_BUDGET_MINUTES['cuda']:g} on a GPU. Chosen epochs are cut to fit it; a "
            "run past it stops after the epoch and keeps its best epoch.",
        )
        rot90 = st.checkbox(
            "Parts look the same turned by 90° (adds 90° turns to augmentation)",
            help="On for round, top-view parts such as impellers; off for textures with a "
            "direction, such as rolled steel.",
        )
        balance = st.selectbox(
            "Class balancing",
            BALANCE_MODES,
            key="launch_balance",
            help="auto: balance only when the largest class has more than 3x the images of "
            "the smallest; sampler: draw every class equally often; weights: weigh rare "
            "classes up in the loss; none: train on the images as they come.",
        )
        false_reject = st.number_input(
            "Good parts the acceptance threshold may send to review (%)",
            0.0,
            20.0,
            defaults.false_reject * 100,
            step=0.1,
            format="%.1f",
            key="launch_false_reject",
            help="A part is called good only when its calibrated P(good) reaches what all but "
            "this share of the good validation parts reach; short of it the model names its "
            "most probable defect and the part is flagged. 0 turns it off (the most probable "
            "class decides). Needs a class named like ok, good or pass.",
        )
        if st.form_submit_button("Queue training job", type="primary"):
            if ds_id is None:
                st.error("Import a dataset first.")
            else:
                config = TrainConfig(
                    arch=arch,
                    epochs=int(epochs) or None,
                    budget_minutes=float(budget) or None,
                    img_size=int(img_size) or None,
                    lr=float(lr),
                    batch_size=int(batch),
                    device=device,
                    rot90=rot90,
                    balance=balance,
                    false_reject=float(false_reject) / 100,
                )
                try:
                    job = queue.submit_job(db, settings, user, int(ds_id), config)
                    st.success(f"Job #{job.id} queued; a worker picks it up shortly.")
                    st.session_state["training_job"] = job.id
                except DefectLensError as e:
                    st.error(literal(e))

with jobs_tab:
    history = queue.list_jobs(db, user, limit=200)
    if not history:
        st.info("No training jobs yet.")
        st.stop()
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "job": j.id,
                    "status": j.status.value,
                    "dataset": j.dataset_name,
                    "progress": f"{j.progress:.0%}",
                    "model": j.model_id,
                    "by": j.created_by or "command line",
                    "created (UTC)": j.created_at,
                    "message": j.error or j.message,
                }
                for j in history
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    ids = [j.id for j in history]
    wanted = st.session_state.get("training_job")
    job_id = st.selectbox(
        "Job", ids, index=ids.index(wanted) if wanted in ids else 0, key="training_job"
    )

    def live_view() -> None:
        # Every 2 s rerun of this fragment skips the page's check above: check again.
        try:
            actor = acting_user(Action.TRAIN)
        except PermissionDenied as e:
            st.error(literal(e))
            return
        job = queue.get_job(db, actor, job_id)
        eta = "" if job.eta_seconds is None else f" · about {job.eta_seconds:.0f}s left"
        st.progress(
            min(max(job.progress, 0.0), 1.0), text=f"Job #{job.id}: {job.status.value}{eta}"
        )
        if job.error:
            st.error(literal(job.error))
        elif job.message:
            st.caption(literal(job.message))
        metrics = queue.job_metrics(db, actor, job.id)
        if metrics:
            df = pd.DataFrame([vars(m) for m in metrics])
            loss = go.Figure()
            loss.add_scatter(x=df.epoch, y=df.train_loss, name="train loss")
            loss.add_scatter(x=df.epoch, y=df.val_loss, name="validation loss")
            acc = go.Figure()
            acc.add_scatter(x=df.epoch, y=df.val_accuracy, name="validation accuracy")
            acc.add_scatter(x=df.epoch, y=df.macro_f1, name="macro-F1")
            for fig, title in ((loss, "Loss"), (acc, "Validation")):
                fig.update_layout(
                    title=title,
                    height=300,
                    xaxis_title="epoch",
                    margin={"l": 0, "r": 0, "t": 40, "b": 0},
                )
            c1, c2 = st.columns(2)
            c1.plotly_chart(loss, width="stretch")
            if df.val_accuracy.notna().any():
                c2.plotly_chart(acc, width="stretch")
            else:
                c2.info(
                    "This dataset has no validation split: the last epoch is kept and "
                    "measured once on the test split."
                )
            recall_rows = [
                {"epoch": m.epoch, "class": c, "recall": r}
                for m in metrics
                for c, r in (m.class_recall or {}).items()
            ]
            if recall_rows:
                rec = pd.DataFrame(recall_rows)
                fig = go.Figure()
                for cls, part in rec.groupby("class", sort=True):
                    fig.add_scatter(x=part.epoch, y=part.recall, name=plot_text(cls))
                fig.update_layout(
                    title="Validation recall per class (a rare class that drops shows here)",
                    height=300,
                    xaxis_title="epoch",
                    yaxis_range=[0, 1.02],
                    margin={"l": 0, "r": 0, "t": 40, "b": 0},
                )
                st.plotly_chart(fig, width="stretch")
        if job.model_id is not None:
            per_class = catalog.get_model(db, actor, job.model_id).metrics.get("per_class") or {}
            if per_class:
                st.caption(f"Model #{job.model_id}: per-class results on its evaluation split")
                st.dataframe(pd.DataFrame(per_class).T, width="stretch")
        if not job.is_finished and st.button("Cancel job", key=f"cancel_{job.id}"):
            try:
                queue.cancel_job(db, actor, job.id)
            except DefectLensError as e:
                st.warning(literal(e))
        with st.expander("Log"):
            st.code(queue.log_tail(settings, actor, job, lines=40) or "(empty)", language=None)
        if job.is_finished and st.session_state.get("_live_polling") == job.id:
            st.session_state.pop("_live_polling")
            st.rerun()

    current = queue.get_job(db, user, job_id)
    if not current.is_finished:
        st.session_state["_live_polling"] = current.id
    st.fragment(live_view, run_every=None if current.is_finished else "2s")()
