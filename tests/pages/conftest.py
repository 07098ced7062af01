"""AppTest fixtures: the app against a real migrated database in a temporary data directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from core.config import Settings

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture(autouse=True)
def _navigation_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make AppTest treat the app as st.navigation-only, as the real server does.

    AppTest resets PagesManager.uses_pages_directory before every run, and because the fixed
    layout has a pages/ folder, its reruns would take Streamlit's legacy pages-folder path and
    run a page script without app.py. The real server sets the flag to False at the first
    st.navigation call and keeps it.
    """
    original = PagesManager.__init__

    def init(self: PagesManager, *args: object, **kwargs: object) -> None:
        original(self, *args, **kwargs)  # type: ignore[arg-type]
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    """Each test has its own data directory, so no cached settings or engine may carry over."""
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def app_env(settings: Settings, db, monkeypatch: pytest.MonkeyPatch) -> Settings:  # type: ignore[no-untyped-def]
    """Point the app at the test's data directory and database."""
    monkeypatch.setenv("DEFECTLENS_HOME", str(settings.home))
    monkeypatch.setenv("DEFECTLENS_DB_URL", settings.db_url)
    monkeypatch.setenv("DEFECTLENS_LOGIN_DELAY_S", "0")
    return settings


@pytest.fixture
def app_as(app_env: Settings) -> Callable[..., AppTest]:
    """An AppTest already logged in as the given CurrentUser (None: logged out)."""

    def _make(user: object = None) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=60)
        if user is not None:
            at.session_state["defectlens_user"] = user
        return at.run()

    return _make
