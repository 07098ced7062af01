"""Small helpers every page shares: settings, database, the logged-in user, permission gates."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from core import setup
from core.auth import accounts, permissions
from core.auth.permissions import Action, CurrentUser
from core.config import Settings, load_settings
from core.errors import PermissionDenied
from core.registry import catalog, compare
from db.engine import Database
from db.queries.catalog import ModelRecord

if TYPE_CHECKING:
    from core.vision.classifier import Classifier

USER_KEY = "defectlens_user"


@st.cache_resource
def get_settings() -> Settings:
    """Settings, read from the environment once per server process."""
    return load_settings()


@st.cache_resource
def get_db() -> Database:
    """The shared Database (engine and pool) for this server process; migrated on first use."""
    settings = get_settings()
    setup.migrate(settings)
    return setup.open_database(settings)


def current_user() -> CurrentUser | None:
    """The logged-in user, re-read from the database so deactivation applies at once."""
    user = st.session_state.get(USER_KEY)
    if user is None:
        return None
    fresh = accounts.refresh(get_db(), user)
    if fresh is None:
        st.session_state.pop(USER_KEY, None)
        return None
    st.session_state[USER_KEY] = fresh
    return fresh


def sign_in(user: CurrentUser) -> None:
    """Remember the user for this browser session."""
    st.session_state[USER_KEY] = user


def sign_out() -> None:
    """Forget the user and write the logout to the audit log."""
    user = st.session_state.pop(USER_KEY, None)
    if user is not None:
        accounts.record_logout(get_db(), user)


def require_page(action: Action) -> CurrentUser:
    """The current user if their role allows the action; otherwise an error and stop."""
    user = current_user()
    if user is None:
        st.warning("Please log in.")
        st.stop()
    try:
        permissions.require(user, action)
    except PermissionDenied as e:
        st.error(str(e))
        st.stop()
    return user


@st.cache_resource(max_entries=2, show_spinner="Loading the model…")
def _load_classifier(model_id: int, artifact_sha256: str) -> Classifier:
    # compare.load_classifier imports torch only when it runs (pages never load it at import).
    return compare.load_classifier(get_settings(), catalog.get_model(get_db(), model_id))


def get_classifier(model: ModelRecord) -> Classifier:
    """The loaded classifier for a model, shared by every session (never mutated).

    Keyed by id and artifact hash, so promoting another model switches inference at once.
    """
    return _load_classifier(model.id, model.artifact_sha256)
