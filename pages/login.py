"""The page a browser without a login sees (a session ended while the tab was open, or after
logout): links to the login form and, when it is configured, to single sign-on, each returning
to this page."""

import html

import streamlit as st

from pages._ui import get_settings, login_url, sso_url

st.title("DefectLens")
st.caption("Visual quality inspection.")
st.info("You are not logged in (or your session has ended).")
# target _self: the login form replaces this page instead of opening a new tab. No user text
# goes in: the only variable is this page's address, which login_url() and sso_url()
# percent-encode (tests/pages/test_login.py tries hostile ones), escaped once more for the markup.
links = [f'<a href="{html.escape(login_url())}" target="_self" class="defectlens-login">Log in</a>']
if get_settings().sso_enabled:
    links.append(f'<a href="{html.escape(sso_url())}" target="_self" class="defectlens-sso">'
                 "Log in with single sign-on</a>")  # fmt: skip
st.html(" · ".join(links))
