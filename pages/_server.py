"""The ASGI server that `defectlens run` serves: Streamlit's app.py behind DefectLens's login
form and session gate (core/auth/web.py). Not a page; Streamlit never lists it."""

from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from core.auth.web import WebAuth
from core.config import load_settings

auth = WebAuth(load_settings())
app = st.App(
    str(Path(__file__).resolve().parents[1] / "app.py"),
    routes=auth.routes(),
    middleware=[Middleware(auth.gate)],
)
