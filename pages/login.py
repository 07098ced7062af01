"""The page a browser without a login sees (a session ended while the tab was open, or after
logout): a link to the login form that returns here, and single sign-on when it is on."""

import html

import streamlit as st

from core.auth import sso
from core.errors import AuthenticationError
from pages._ui import get_db, get_settings, literal, login_url, sign_in

settings = get_settings()
st.title("DefectLens")
st.caption("Visual quality inspection.")

if settings.sso_enabled and getattr(st.user, "is_logged_in", False):
    try:
        sign_in(
            sso.user_for_claims(
                get_db(),
                st.user.to_dict(),
                require_email_verified=settings.sso_require_email_verified,
            )
        )
        st.rerun()
    except AuthenticationError as e:
        st.error(literal(e))
        if st.button("Sign out of single sign-on"):
            st.logout()
    st.stop()
if settings.sso_enabled and "sso" in st.query_params:
    st.login()

st.info("You are not logged in (or your session has ended).")
# target _self: the login form replaces this page instead of opening a new tab.
# login_url() percent-encodes the page's path; escaping it again keeps any text out of the markup.
st.html(f'<a href="{html.escape(login_url())}" target="_self" class="defectlens-login">Log in</a>')
if settings.sso_enabled and st.button("Log in with single sign-on"):
    st.login()
