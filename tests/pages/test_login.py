"""AppTest: the login flow and role-filtered navigation, against a real migrated database."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.config import Settings
from tests.pages.conftest import APP


def test_without_a_session_the_app_shows_only_the_way_to_the_login_form(app_env: Settings) -> None:
    # Page loads without a session are sent to the form by core/auth/web.py before Streamlit
    # runs (tests/core/auth/test_web.py, tests/e2e); a tab whose session ended lands here.
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == "DefectLens"
    assert any("not logged in" in i.value for i in at.info)
    link = at.get("html")[0].proto.body
    assert 'href="/session/login?next=' in link and 'target="_self"' in link
    assert not any(t.value == "Plant overview" for t in at.title)


def test_with_single_sign_on_the_logged_out_page_also_links_to_it(
    app_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEFECTLENS_SSO_METADATA_URL", "https://idp.plant.example/.well-known/x")
    monkeypatch.setenv("DEFECTLENS_SSO_CLIENT_ID", "defectlens")
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    links = at.get("html")[0].proto.body
    assert 'href="/session/login?next=' in links
    assert 'href="/session/sso?next=' in links and "Log in with single sign-on" in links


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


def test_admin_changes_a_users_sso_email_and_unlinks_it(app_env: Settings, make_user, db) -> None:  # type: ignore[no-untyped-def]
    from core.auth import sso
    from db.queries import users

    admin, _ = make_user("root", "admin")
    bob, _ = make_user("bob", "reviewer")
    claims = {
        "iss": "https://idp",
        "sub": "b1",
        "email": "bob@plant.example",
        "email_verified": True,
    }
    at = AppTest.from_file(APP, default_timeout=30)
    at.session_state["defectlens_user"] = admin
    at.run()
    at.switch_page("pages/admin.py").run()
    at.selectbox(key="edit_user").set_value("bob").run()
    email_box = next(t for t in at.text_input if t.label.startswith("E-mail for single sign-on"))
    email_box.input("bob@plant.example")
    next(b for b in at.button if b.label == "Change e-mail").click().run()
    assert not at.exception and not at.error
    assert sso.user_for_claims(db, claims).id == bob.id  # bound now
    email_box = next(t for t in at.text_input if t.label.startswith("E-mail for single sign-on"))
    assert email_box.value == "bob@plant.example"
    email_box.input("robert@plant.example")
    next(b for b in at.button if b.label == "Change e-mail").click().run()
    assert not at.exception
    with db.read() as session:
        assert users.get_sso_identity_of(session, bob.id) is None
        assert users.get_user(session, bob.id).email == "robert@plant.example"


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


@pytest.mark.parametrize(
    "url",
    [
        'http://plant/review?x="><script>alert(1)</script>',
        "http://plant/trends?period=7d&line=<img src=x onerror=alert(1)>",
        "http://plant/javascript:alert(1)",
        "http://plant/'%22onmouseover=alert(1)",
    ],
)
def test_the_login_link_keeps_a_hostile_page_address_out_of_the_markup(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    # The one st.html in the pages: the address the browser is on goes in only percent-encoded,
    # in both of its links.
    from types import SimpleNamespace

    from pages import _ui

    monkeypatch.setattr(_ui, "st", SimpleNamespace(context=SimpleNamespace(url=url)))
    link = _ui.login_url()
    assert link.startswith("/session/login?next=%2F")
    assert not set(link) & set("\"'<> ")
    sso = _ui.sso_url()  # the page's other link, shown when single sign-on is configured
    assert sso.startswith("/session/sso?next=%2F")
    assert not set(sso) & set("\"'<> ")
