"""Issue 12, hole 8: a model named with Markdown that would show a fake link and load a remote
image reaches the pages as typed text, never as a link or an image."""

from __future__ import annotations

from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from db.models import Model
from pages._ui import literal
from tests.core.inspection_support import register_active_model
from tests.pages.conftest import APP

HOSTILE = "![](https://x.example/t.gif)[Session expired, sign in](https://x.example/login)"


def _texts(at: AppTest) -> list[str]:
    """Every piece of Markdown source the page rendered (messages, captions, headings)."""
    out: list[str] = []
    for kind in ("markdown", "caption", "info", "warning", "error", "success", "subheader"):
        out += [str(e.value) for e in getattr(at, kind)]
    out += [str(e.label) for e in at.expander] + [str(b.label) for b in at.button]
    return out


@pytest.mark.parametrize("page", ["pages/inspect.py", "pages/models.py"])
def test_a_hostile_model_name_is_shown_escaped(
    app_env: Any, make_user: Any, db: Any, settings: Any, page: str
) -> None:
    model = register_active_model(db, settings)
    with db.write() as session:
        session.get(Model, model.id).name = HOSTILE
    engineer, _ = make_user("eng", "engineer")
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["defectlens_user"] = engineer
    at.run()
    at.switch_page(page).run()
    assert not at.exception
    texts = _texts(at)
    assert not [t for t in texts if HOSTILE in t]  # never as Markdown source a link could come from
    if page == "pages/inspect.py":  # the active model's caption: Markdown, so escaped
        assert [t for t in texts if literal(HOSTILE) in t]
    else:  # the model picker: plain text, shown exactly as typed
        assert any(HOSTILE in str(o) for box in at.selectbox for o in box.options)
