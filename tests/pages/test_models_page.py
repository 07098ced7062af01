"""AppTest: the models page shows metrics; promote and roll back change the active model and
are audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.auth import audit, permissions
from core.registry import catalog
from tests.pages.conftest import APP

pytestmark = pytest.mark.slow


def _open_models(user: object) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["defectlens_user"] = user
    at.run()
    return at.switch_page("pages/models.py").run()


def test_promote_changes_active_model_and_audits(app_env, make_user, db, train_tiny) -> None:  # type: ignore[no-untyped-def]
    engineer, _ = make_user("eng", "engineer")
    model = train_tiny()
    at = _open_models(engineer)
    assert not at.exception
    assert any(t.value == "Models" for t in at.title)
    # The input the model was trained on: size, resize mode, channels, and why that size.
    assert any("input 32 px (letterbox), 1 channel(s)" in m.value for m in at.markdown)
    assert any(c.value == "Input size 32 px: given" for c in at.caption)
    promote = next(b for b in at.button if b.label == "Promote to active")
    promote.click().run()
    assert not at.exception
    assert catalog.get_model(db, permissions.SYSTEM, "active").id == model.id
    (entry,) = audit.audit_log(db, permissions.SYSTEM, action="model_promoted")
    assert (entry["user"], entry["entity"], entry["entity_id"]) == ("eng", "model", str(model.id))


def test_rollback_restores_previous_active(app_env, make_user, db, train_tiny) -> None:  # type: ignore[no-untyped-def]
    engineer, _ = make_user("eng", "engineer")
    first, second = train_tiny(), train_tiny()
    catalog.promote_model(db, engineer, first.id)
    catalog.promote_model(db, engineer, second.id)
    at = _open_models(engineer)
    next(b for b in at.button if b.label == "Roll back to previous active").click().run()
    assert not at.exception
    assert catalog.get_model(db, permissions.SYSTEM, "active").id == first.id
    (entry,) = audit.audit_log(db, permissions.SYSTEM, action="model_rolled_back")
    assert (entry["user"], entry["entity"], entry["entity_id"]) == ("eng", "model", str(first.id))
    assert entry["details"] == {"from": second.id, "to": first.id}


def test_models_page_shows_calibration(app_env, make_user, db, train_tiny) -> None:  # type: ignore[no-untyped-def]
    engineer, _ = make_user("eng", "engineer")
    model = train_tiny()
    at = _open_models(engineer)
    assert not at.exception
    assert any(h.value == "Confidence calibration" for h in at.subheader)
    text = " ".join(m.value for m in at.markdown)
    assert "Temperature" in text and "expected calibration error" in text
    charts = at.get("plotly_chart")
    reliability = [c for c in charts if "Reliability" in c.proto.spec]
    assert reliability and "perfectly calibrated" in reliability[0].proto.spec
    # The tiny set has too few good validation parts for an acceptance threshold: it says so.
    assert "When a part is called good:** the most probable class decides" in text
    meta_path = Path(model.artifact_path)
    meta = json.loads(meta_path.read_text())
    fitted = {"fitted": True, "threshold": 0.97, "good_classes": ["ok"], "good_images": 40,
              "false_rejects": 1, "false_reject_bound": 0.024, "escapes_argmax": 2,
              "escapes": 0, "fitted_on": "val"}  # fmt: skip
    meta_path.write_text(json.dumps(dict(meta, acceptance=fitted)))
    at = _open_models(engineer)
    text = " ".join(m.value for m in at.markdown).replace("\\", "")  # literal()'s escapes
    assert "ok only at P(good) >= 0.9700, reached by 39 of 40 good val images" in text
    assert "goes to review rather than passing unseen" in text
    # A model saved before calibration existed: the page says so instead of a diagram.
    del meta["temperature"], meta["calibration"]
    meta_path.write_text(json.dumps(meta))
    at = _open_models(engineer)
    assert not at.exception
    assert any("Not calibrated" in c.value for c in at.caption)
    assert not [c for c in at.get("plotly_chart") if "Reliability" in c.proto.spec]


def test_reviewer_cannot_open_models_page(app_env, make_user) -> None:  # type: ignore[no-untyped-def]
    reviewer, _ = make_user("rev", "reviewer")
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["defectlens_user"] = reviewer
    at.run()
    with pytest.raises(ValueError, match="models"):
        at.switch_page("pages/models.py")
