"""AppTest: every page checks its own permission. Each page script is opened directly, without
app.py's role-filtered navigation, so only the page's own `require_page(...)` stands between the
user and its content: hiding a page is not a permission."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Block

from core.auth import accounts, permissions
from core.auth.permissions import MIN_ROLE, Action
from core.config import Settings
from tests.pages.conftest import APP

PAGES = Path(APP).parent / "pages"

# page script -> (its action, a role below the action's minimum). Written out so that a page
# that changes its action, or stops checking one, fails here.
GUARDED: dict[str, tuple[Action, str]] = {
    "inspect.py": (Action.INSPECT, "viewer"),
    "review.py": (Action.REVIEW, "viewer"),
    "training.py": (Action.TRAIN, "reviewer"),
    "models.py": (Action.MANAGE_MODELS, "reviewer"),
    "flag_rules.py": (Action.EDIT_FLAG_RULES, "reviewer"),
    "admin.py": (Action.MANAGE_USERS, "engineer"),
}
# Every role may view trends, so the overview can only refuse someone who is not logged in.
OPEN_TO_ALL = {"home.py": Action.VIEW_TRENDS, "trends.py": Action.VIEW_TRENDS}


def _open_directly(page: str, user: object = None) -> AppTest:
    at = AppTest.from_file(str(PAGES / page), default_timeout=60)
    if user is not None:
        at.session_state["defectlens_user"] = user
    return at.run()


def _main_elements(at: AppTest) -> list[str]:
    """The type of every element the page put in its main area."""
    return [node.type for node in at.main if not isinstance(node, Block)]


def test_every_page_with_a_guard_is_covered() -> None:
    scripts = [p for p in PAGES.glob("*.py") if not p.name.startswith("_")]
    guarded = {p.name for p in scripts if "require_page(" in p.read_text()}
    assert guarded == set(GUARDED) | set(OPEN_TO_ALL)
    for page, (action, _role) in GUARDED.items():
        assert f"require_page(Action.{action.name})" in (PAGES / page).read_text(), page
    assert "require_page(Action.VIEW_TRENDS)" in (PAGES / "home.py").read_text()
    assert MIN_ROLE[Action.VIEW_TRENDS].value == "viewer"


@pytest.mark.parametrize("page", sorted(GUARDED))
def test_page_refuses_a_role_without_its_action(
    app_env: Settings,
    make_user,  # type: ignore[no-untyped-def]
    page: str,
) -> None:
    action, role = GUARDED[page]
    user, _ = make_user("lacks", role)

    at = _open_directly(page, user)

    assert not at.exception, [e.value for e in at.exception]
    assert [e.value for e in at.error] == [
        f"lacks ({role}) may not {action.value.replace('_', ' ')}; "
        f"needs {MIN_ROLE[action].value} or above"
    ]
    assert _main_elements(at) == ["error"], "the page showed content after refusing"


@pytest.mark.parametrize("page", sorted(GUARDED | OPEN_TO_ALL))
def test_page_refuses_a_visitor_who_is_not_logged_in(app_env: Settings, page: str) -> None:
    at = _open_directly(page)

    assert not at.exception, [e.value for e in at.exception]
    assert [w.value for w in at.warning] == ["Please log in."]
    assert _main_elements(at) == ["warning"], "the page showed content to a visitor"


def test_overview_refuses_a_user_deactivated_after_login(
    app_env: Settings,
    make_user,  # type: ignore[no-untyped-def]
    db,  # type: ignore[no-untyped-def]
) -> None:
    viewer, _ = make_user("vera", "viewer")
    accounts.set_active(db, permissions.SYSTEM, viewer.id, False)

    at = _open_directly("home.py", viewer)

    assert [w.value for w in at.warning] == ["Please log in."]
    assert _main_elements(at) == ["warning"]
    assert "defectlens_user" not in at.session_state
