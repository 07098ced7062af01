"""AppTest: the login flow and role-filtered navigation, against a real migrated database."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings
from tests.pages.conftest import APP


def _login(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click()
    return at.run()


def test_login_then_home(app_env: Settings, make_user) -> None:  # type: ignore[no-untyped-def]
    make_user("alice", "engineer")
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == "DefectLens"
    at = _login(at, "alice", "correct-horse-1")
    assert not at.exception
    assert any(t.value == "Plant overview" for t in at.title)


def test_wrong_password_shows_neutral_error(app_env: Settings, make_user) -> None:  # type: ignore[no-untyped-def]
    make_user("alice", "engineer")
    at = AppTest.from_file(APP, default_timeout=30).run()
    at = _login(at, "alice", "wrong-password")
    assert [e.value for e in at.error] == ["Wrong username or password."]
    assert not any(t.value == "Plant overview" for t in at.title)


def test_viewer_navigation_lacks_admin(app_env: Settings, make_user) -> None:  # type: ignore[no-untyped-def]
    viewer, _ = make_user("vera", "viewer")
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["defectlens_user"] = viewer
    at.run()
    assert not at.exception
    # st.navigation's pages are not elements; switching to a page the role lacks must fail.
    with pytest.raises(ValueError, match="admin"):
        at.switch_page("pages/admin.py")


def test_admin_navigation_has_admin_page(app_env: Settings, make_user) -> None:  # type: ignore[no-untyped-def]
    admin, _ = make_user("root", "admin")
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["defectlens_user"] = admin
    at.run()
    at.switch_page("pages/admin.py").run()
    assert not at.exception
    assert any(t.value == "Administration" for t in at.title)


def test_admin_page_refuses_viewer_even_when_opened_directly(app_env: Settings, make_user) -> None:  # type: ignore[no-untyped-def]
    viewer, _ = make_user("vera", "viewer")
    page = str(Path(APP).parent / "pages" / "admin.py")
    at = AppTest.from_file(page, default_timeout=30)
    at.session_state["defectlens_user"] = viewer
    at.run()
    assert any("may not manage users" in e.value for e in at.error)
    assert not any(t.value == "Administration" for t in at.title)


def test_logout_returns_to_login_and_is_audited(app_env: Settings, make_user, db) -> None:  # type: ignore[no-untyped-def]
    from core.auth import audit

    admin, _ = make_user("root", "admin")
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["defectlens_user"] = admin
    at.run()
    at.sidebar.button[0].click().run()
    assert at.title[0].value == "DefectLens"
    assert "defectlens_user" not in at.session_state
    assert audit.audit_log(db, admin, action="logout")[0]["user"] == "root"
