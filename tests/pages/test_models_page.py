"""AppTest: the models page shows metrics; promote and roll back change the active model and
are audited."""

from __future__ import annotations

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
    promote = next(b for b in at.button if b.label == "Promote to active")
    promote.click().run()
    assert not at.exception
    assert catalog.get_model(db, "active").id == model.id
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
    assert catalog.get_model(db, "active").id == first.id
    (entry,) = audit.audit_log(db, permissions.SYSTEM, action="model_rolled_back")
    assert (entry["user"], entry["entity"], entry["entity_id"]) == ("eng", "model", str(first.id))
    assert entry["details"] == {"from": second.id, "to": first.id}


def test_reviewer_cannot_open_models_page(app_env, make_user) -> None:  # type: ignore[no-untyped-def]
    reviewer, _ = make_user("rev", "reviewer")
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["defectlens_user"] = reviewer
    at.run()
    with pytest.raises(ValueError, match="models"):
        at.switch_page("pages/models.py")
