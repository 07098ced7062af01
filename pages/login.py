"""Login form; the only page anyone sees before logging in."""

import streamlit as st

from core.auth import accounts
from core.errors import AuthenticationError
from pages._ui import get_db, get_settings, sign_in

settings = get_settings()
st.title("DefectLens")
st.caption("Visual quality inspection. Please log in.")

with st.form("login"):
    username = st.text_input("Username", autocomplete="username")
    password = st.text_input("Password", type="password", autocomplete="current-password")
    submitted = st.form_submit_button("Log in", type="primary")

if submitted:
    try:
        user = accounts.authenticate(get_db(), username, password, delay_s=settings.login_delay_s)
    except AuthenticationError as e:
        st.error(str(e))
    else:
        sign_in(user)
        st.rerun()

if settings.sso_enabled:
    st.divider()
    if getattr(st.user, "is_logged_in", False) and st.user.email:
        try:
            sign_in(accounts.user_for_email(get_db(), str(st.user.email)))
            st.rerun()
        except AuthenticationError as e:
            st.error(str(e))
            if st.button("Sign out of single sign-on"):
                st.logout()
    elif st.button("Log in with single sign-on"):
        st.login()
