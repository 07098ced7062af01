"""Admin: user accounts and the audit log."""

import pandas as pd
import streamlit as st

from core.auth import accounts, audit
from core.auth.permissions import ROLES, Action
from core.demo import remove as demo_remove
from core.errors import DefectLensError
from pages._ui import get_db, get_settings, literal, require_page

user = require_page(Action.MANAGE_USERS)
db = get_db()
st.title("Administration")
users_tab, audit_tab, demo_tab = st.tabs(["Users", "Audit log", "Demo data"])

with users_tab:
    users = accounts.list_users(db, user)
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "id": u.id,
                    "username": u.username,
                    "role": u.role.value,
                    "active": u.active,
                    "e-mail": u.email or "",
                    "last login (UTC)": u.last_login_at,
                }
                for u in users
            ]
        ),
        hide_index=True,
        width="stretch",
    )

    st.subheader("Add a user")
    with st.form("add_user", clear_on_submit=True):
        name = st.text_input("Username")
        role = st.selectbox("Role", [r.value for r in ROLES], key="add_role")
        email = st.text_input("E-mail (optional, for single sign-on)")
        if st.form_submit_button("Add user", type="primary"):
            try:
                info, password = accounts.create_user(db, user, name, role, email=email or None)
                st.success(
                    f"Added {literal(info.username)}. Their password (shown once): {password}"
                )
            except DefectLensError as e:
                st.error(literal(e))

    st.subheader("Change a user")
    by_name = {u.username: u for u in users}
    target_name = st.selectbox("User", list(by_name), key="edit_user")
    if target_name:
        target = by_name[target_name]
        c1, c2, c3 = st.columns(3)
        new_role = c1.selectbox(
            "New role", [r.value for r in ROLES], index=ROLES.index(target.role), key="new_role"
        )
        try:
            if c1.button("Change role"):
                accounts.set_role(db, user, target.id, new_role)
                st.rerun()
            if c2.button("Deactivate" if target.active else "Activate"):
                accounts.set_active(db, user, target.id, not target.active)
                st.rerun()
            if c3.button("Reset password"):
                password = accounts.reset_password(db, user, target.id)
                st.success(f"New password for {literal(target.username)} (shown once): {password}")
        except DefectLensError as e:
            st.error(literal(e))
        with st.form("set_email"):
            new_email = st.text_input(
                "E-mail for single sign-on (empty: none)", value=target.email or ""
            )
            st.caption("A changed address also unlinks the account's single sign-on identity.")
            if st.form_submit_button("Change e-mail"):
                try:
                    accounts.set_email(db, user, target.id, new_email)
                    st.rerun()
                except DefectLensError as e:
                    st.error(literal(e))

with audit_tab:
    c1, c2 = st.columns(2)
    action = c1.text_input("Action (e.g. login_failed)", key="audit_action")
    who = c2.text_input("User", key="audit_user")
    rows = audit.audit_log(db, user, limit=500, action=action.strip(), username=who.strip())
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")

with demo_tab:
    counts = demo_remove.demo_counts(db, user)
    if not any(counts.values()):
        st.info("There is no demo data. `defectlens demo` seeds it (a fresh `make run` does).")
    else:
        st.write("Demo data: " + ", ".join(f"{n:,} {k}" for k, n in counts.items() if n) + ".")
        st.caption("Removing it deletes every row and file the demo created, in one step; "
                   "real data is untouched. The audit log keeps its entries.")  # fmt: skip
        sure = st.checkbox("Yes, remove all demo data")
        if st.button("Remove demo data", type="primary", disabled=not sure):
            done = demo_remove.remove_demo(db, get_settings(), user)
            rows = sum(done.removed.values())
            st.success(f"Removed {rows:,} demo rows and {done.files:,} files.")
            if done.kept:
                st.warning(f"Kept because real data uses them: {literal(done.kept)}")
