"""DefectLens entry point: page config, login gate, role-filtered navigation."""

import streamlit as st

from core.auth import permissions
from core.auth.permissions import Action
from pages._ui import current_user, demo_banner, literal, sign_out

st.set_page_config(page_title="DefectLens", page_icon=":material/biotech:", layout="wide")

user = current_user()
if user is None:
    # Page loads without a session never get here (core/auth/web.py sends them to the login
    # form); this is a tab whose session ended. Hidden navigation: any path shows this page.
    st.navigation(
        [st.Page("pages/login.py", title="Log in", icon=":material/login:")], position="hidden"
    ).run()
    st.stop()

# Each page also checks its own permission: hiding a page is not a permission.
PAGES = [
    (
        st.Page("pages/home.py", title="Overview", icon=":material/factory:", default=True),
        Action.VIEW_TRENDS,
    ),
    (
        st.Page("pages/trends.py", title="Trends", icon=":material/monitoring:"),
        Action.VIEW_TRENDS,
    ),
    (
        st.Page("pages/inspect.py", title="Inspect", icon=":material/photo_camera:"),
        Action.INSPECT,
    ),
    (
        st.Page("pages/review.py", title="Review", icon=":material/fact_check:"),
        Action.REVIEW,
    ),
    (
        st.Page("pages/training.py", title="Training", icon=":material/school:"),
        Action.TRAIN,
    ),
    (
        st.Page("pages/models.py", title="Models", icon=":material/model_training:"),
        Action.MANAGE_MODELS,
    ),
    (
        st.Page("pages/flag_rules.py", title="Flagging rules", icon=":material/tune:"),
        Action.EDIT_FLAG_RULES,
    ),
    (
        st.Page("pages/admin.py", title="Administration", icon=":material/admin_panel_settings:"),
        Action.MANAGE_USERS,
    ),
]
nav = st.navigation([page for page, action in PAGES if permissions.can(user, action)])

with st.sidebar:
    st.markdown(f"**{literal(user.username)}** · {user.role.value}")
    if st.button("Log out", icon=":material/logout:"):
        sign_out()
        st.rerun()

demo_banner()
nav.run()
