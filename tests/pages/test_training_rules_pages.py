"""AppTest: the training page queues a job and shows a finished job's curves; the flagging
rules page saves a new audited version."""

from __future__ import annotations

import json
import re
import threading

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from core.auth import audit, permissions
from core.cli import jobs as jobs_cli
from core.jobs import queue, worker
from core.quality import flag_rules
from core.registry import catalog
from core.training.config import TrainConfig
from tests.pages.conftest import APP

pytestmark = pytest.mark.slow


def _page(user: object, path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["defectlens_user"] = user
    at.run()
    return at.switch_page(path).run()


def test_launch_form_queues_a_job(app_env, make_user, db, tiny_dataset) -> None:  # type: ignore[no-untyped-def]
    engineer, _ = make_user("erin", "engineer")
    at = _page(engineer, "pages/training.py")
    assert not at.exception
    at.number_input(key="launch_epochs").set_value(2)
    at.number_input(key="launch_img_size").set_value(32)
    at.selectbox(key="launch_device").set_value("cpu")
    assert at.selectbox(key="launch_balance").value == "auto"
    at.selectbox(key="launch_balance").set_value("weights")
    assert at.number_input(key="launch_false_reject").value == 0.5  # 1 in 200, in percent
    at.number_input(key="launch_false_reject").set_value(1.0)
    next(b for b in at.button if b.label == "Queue training job").click().run()
    assert not at.exception
    (job,) = queue.list_jobs(db, permissions.SYSTEM)
    assert job.status.value == "queued" and job.dataset_id == tiny_dataset.id
    assert job.config["epochs"] == 2 and job.config["img_size"] == 32
    assert job.config["balance"] == "weights"
    assert job.config["false_reject"] == 0.01
    assert job.created_by == "erin"
    assert any(f"Job #{job.id} queued" in s.value for s in at.success)


def test_launch_size_defaults_to_auto(app_env, make_user, db, tiny_dataset) -> None:  # type: ignore[no-untyped-def]
    engineer, _ = make_user("erin", "engineer")
    at = _page(engineer, "pages/training.py")
    assert at.number_input(key="launch_img_size").value == 0  # 0: chosen from the images
    at.selectbox(key="launch_device").set_value("cpu")
    next(b for b in at.button if b.label == "Queue training job").click().run()
    assert not at.exception
    (job,) = queue.list_jobs(db, permissions.SYSTEM)
    assert job.config["img_size"] is None and job.config["resize"] == "letterbox"


def test_live_view_shows_finished_job_curves(
    app_env, make_user, db, settings, tiny_dataset
) -> None:  # type: ignore[no-untyped-def]
    engineer, _ = make_user("erin", "engineer")
    job = queue.submit_job(
        db, settings, engineer, tiny_dataset.id, TrainConfig(epochs=2, img_size=32, device="cpu")
    )
    runner = threading.Thread(
        target=worker.run_worker, args=(settings,), kwargs={"once": True, "poll_s": 0.2}
    )
    runner.start()
    runner.join(timeout=300)
    assert queue.get_job(db, permissions.SYSTEM, job.id).status.value == "succeeded"
    at = _page(engineer, "pages/training.py")
    assert not at.exception
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # loss, validation, and recall per class per epoch
    assert "Validation recall per class" in charts[2].proto.spec
    assert "succeeded" in at.get("progress")[0].proto.text
    # The job's model, class by class: on the page and in `jobs show --json`.
    assert any("recall" in frame.value.columns for frame in at.dataframe)
    shown = CliRunner().invoke(jobs_cli.app, ["show", str(job.id), "--json"])
    assert shown.exit_code == 0, shown.output
    per_class = json.loads(shown.stdout)["per_class"]
    assert set(per_class) == {"ok", "scratch"}
    assert all(0 <= v["recall"] <= 1 for v in per_class.values())


def test_reviewer_cannot_open_training_page(app_env, make_user) -> None:  # type: ignore[no-untyped-def]
    reviewer, _ = make_user("rev", "reviewer")
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["defectlens_user"] = reviewer
    at.run()
    with pytest.raises(ValueError):
        at.switch_page("pages/training.py")


def test_rules_page_saves_a_new_version(app_env, make_user, db, train_tiny) -> None:  # type: ignore[no-untyped-def]
    engineer, _ = make_user("erin", "engineer")
    model = train_tiny()
    catalog.promote_model(db, engineer, model.id)
    at = _page(engineer, "pages/flag_rules.py")
    assert not at.exception
    at.text_input[0].input("P-9").run()
    at.multiselect[0].set_value(["ok"]).run()
    at.slider[0].set_value(0.75).run()
    next(b for b in at.button if b.label == "Save as a new version").click().run()
    assert not at.exception
    rule = flag_rules.active_rule(db, permissions.SYSTEM, "P-9")
    assert (rule.product, rule.version, rule.good_classes, rule.min_confidence) == (
        "P-9",
        1,
        ["ok"],
        0.75,
    )
    (entry,) = audit.audit_log(db, permissions.SYSTEM, action="threshold_changed")
    assert (entry["user"], entry["entity"], entry["entity_id"]) == (
        "erin",
        "threshold",
        str(rule.id),
    )
    assert entry["details"]["product"] == "P-9" and entry["details"]["version"] == 1


HOSTILE = "![](https://x.test/t.gif)[Session expired, sign in](https://x.test/login) **:red[x]**"


def test_a_hostile_dataset_name_is_shown_as_typed_never_as_markdown(
    app_env, make_user, db, settings, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from core.datasets import service
    from pages._ui import literal
    from tests.conftest import write_tiny_dataset

    engineer, _ = make_user("erin", "engineer")
    service.import_dataset(db, settings, permissions.SYSTEM, write_tiny_dataset(tmp_path / "d"),
                           HOSTILE)  # fmt: skip
    at = _page(engineer, "pages/training.py")
    assert not at.exception
    (label,) = [e.label for e in at.expander if "images" in e.label]
    # Every Markdown metacharacter of the name is escaped: no image, no link, no colour.
    assert literal(HOSTILE) in label
    assert re.search(r"(?<!\\)[\[\]!*]|(?<!\\):\S", label) is None, label
    assert literal("![](https://x) www.x :y: a: b (c)") == (
        "\\!\\[\\](https\\://x) www\\.x \\:y: a: b (c)"
    )
