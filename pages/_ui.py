"""Small helpers every page shares: settings, database, the logged-in user, permission gates."""

from __future__ import annotations

import html
import re
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import streamlit as st

from core import setup
from core.auth import accounts, permissions, sessions, web
from core.auth.permissions import Action, CurrentUser
from core.config import Settings, load_settings
from core.demo import status as demo_status
from core.errors import PermissionDenied
from core.registry import compare
from db.engine import Database
from db.queries.catalog import ModelRecord

if TYPE_CHECKING:
    from core.vision.classifier import Classifier

USER_KEY = "defectlens_user"
# What can make Markdown of plain text in Streamlit: emphasis, code, links and images, HTML,
# headings, tables, strikethrough, LaTeX, and a colon that starts an emoji, an icon, a colour
# directive or a URL scheme (":smile:", ":red[...]", "https://"), and the dot of "www." (GFM
# links it). Plain punctuation stays.
_MARKDOWN_SPECIAL = re.compile(r"[\\`*_\[\]<>#!|~$]|:(?=\S)|(?<=www)\.", re.IGNORECASE)


def literal(text: object) -> str:
    """User text (a dataset, class, model, line or file name, a username) as typed wherever
    Streamlit renders Markdown (messages, captions, labels, expanders, buttons, radio options,
    metric values and image captions):
    every character that could start Markdown or HTML is escaped, so a name never becomes a
    link, an image, markup or an emoji. Plain-text places (st.text, tables, select boxes) need
    no escaping."""
    return _MARKDOWN_SPECIAL.sub(lambda m: "\\" + m.group(0), str(text))


def plot_text(text: object) -> str:
    """User text for Plotly labels, ticks and hover text, which render a subset of HTML
    (links included): escaped so it shows as typed."""
    return html.escape(str(text), quote=False)


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
    """The logged-in user, re-read from the database on every run (so a role change or a
    deactivation applies at once): the browser's session cookie, else single sign-on."""
    token = st.context.cookies.get(sessions.COOKIE_NAME)
    if token:
        user = sessions.resolve_session(get_db(), get_settings(), token)
        if user is not None:
            return user
    # Page tests (streamlit.testing, which has no cookies) hold the user in session_state.
    held = st.session_state.get(USER_KEY)
    if held is None:
        return None
    fresh = accounts.refresh(get_db(), held)
    if fresh is None:
        st.session_state.pop(USER_KEY, None)
        return None
    st.session_state[USER_KEY] = fresh
    return fresh


def sign_out() -> None:
    """End the browser's session (every tab of it), audit the logout, forget all UI state."""
    user = current_user()
    sessions.end_session(get_db(), st.context.cookies.get(sessions.COOKIE_NAME))
    if user is not None:
        accounts.record_logout(get_db(), user)
    st.session_state.clear()


def login_url() -> str:
    """The login form, returning to the page this browser is on."""
    return f"{web.LOGIN_PATH}?next={quote(_here(), safe='')}"


def sso_url() -> str:
    """Single sign-on, returning to the page this browser is on."""
    return f"{web.SSO_PATH}?next={quote(_here(), safe='')}"


def _here() -> str:
    parts = urlsplit(st.context.url or "/")
    return parts.path + (f"?{parts.query}" if parts.query else "")


def require_page(action: Action) -> CurrentUser:
    """The current user if their role allows the action; otherwise an error and stop."""
    user = current_user()
    if user is None:
        st.warning("Please log in.")
        st.stop()
    try:
        permissions.require(user, action)
    except PermissionDenied as e:
        st.error(literal(e))
        st.stop()
    return user


def acting_user(action: Action) -> CurrentUser:
    """The user as of this moment, for a button callback or a fragment rerun (which run without
    the page's own check at the top): re-read from the session and re-checked, so a user who was
    logged out, deactivated or lost the role meanwhile cannot act from a tab still open.
    Raises PermissionDenied."""
    user = current_user()
    if user is None:
        raise PermissionDenied("your session has ended: log in again")
    permissions.require(user, action)
    return user


@st.cache_resource(max_entries=2, show_spinner="Loading the model…")
def _load_classifier(model_id: int, artifact_sha256: str, _model: ModelRecord) -> Classifier:
    # Keyed by id and hash only (a leading underscore is not hashed): _model is the record the
    # page already read with its user's check. compare.load_classifier imports torch only when
    # it runs (pages never load it at import).
    return compare.load_classifier(get_settings(), _model)


def get_classifier(model: ModelRecord) -> Classifier:
    """The loaded classifier for a model, shared by every session (never mutated).

    Keyed by id and artifact hash, so promoting another model switches inference at once.
    """
    return _load_classifier(model.id, model.artifact_sha256, model)


def demo_banner() -> None:
    """Say on every page that the demo is being prepared, or that demo data is shown."""
    state = demo_status.read(get_settings())
    if state is None:
        return
    if demo_status.unfinished(state):  # the state already read: no second read
        st.warning(f"The demo was not finished ({state.get('step')}). The next "
                   "`defectlens run` rebuilds it; an admin can also remove it "
                   "(Administration, Demo data).")  # fmt: skip
    elif state.get("state") == "preparing":
        st.info(f"The demo is being prepared: {state.get('step')} "
                f"({state.get('progress', 0):.0%}). Pages fill in as it goes.",
                icon=":material/hourglass_top:")  # fmt: skip
    elif state.get("state") == "ready":
        st.caption(":material/science: Demo data: generated parts on three lines over 30 days. "
                   "An admin removes it in one step (Administration, Demo data).")  # fmt: skip
    elif state.get("state") == "failed":
        st.warning(f"The demo could not be prepared: {state.get('step')}")
