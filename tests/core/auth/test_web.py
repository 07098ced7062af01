"""The login form and the session gate over HTTP (Starlette's TestClient, a real database):
the cookie is HttpOnly and SameSite, the form needs its CSRF token, a wrong password sets
nothing, the gate sends page loads without a session to the form with the page in ``next``,
and ``next`` never leads off the site."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from core.auth import sessions, web
from core.config import Settings
from db.engine import Database
from db.models import Role

HTML = {"accept": "text/html,application/xhtml+xml"}


@pytest.fixture
def client(db: Database, settings: Settings) -> TestClient:
    auth = web.WebAuth(settings)

    async def page(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"page {request.url.path}")

    app = Starlette(routes=[*auth.routes(), Route("/{path:path}", page)],
                    middleware=[Middleware(auth.gate)])  # fmt: skip
    return TestClient(app, follow_redirects=False)


def _form(client: TestClient, next_: str = "/review") -> str:
    got = client.get(web.LOGIN_PATH, params={"next": next_})
    assert got.status_code == 200 and 'name="csrf"' in got.text
    return got.text.split('name="csrf" value="')[1].split('"')[0]


def test_login_sets_an_httponly_samesite_cookie_and_returns_to_the_page(
    client: TestClient, make_user
) -> None:  # type: ignore[no-untyped-def]
    make_user("rita", Role.REVIEWER, password="correct-horse-1")
    first = client.get("/review?line=L1", headers=HTML)
    assert first.status_code == 303
    assert first.headers["location"] == "/session/login?next=%2Freview%3Fline%3DL1"
    csrf = _form(client, "/review?line=L1")
    done = client.post(web.LOGIN_PATH, data={"username": "rita", "password": "correct-horse-1",
                                             "csrf": csrf, "next": "/review?line=L1"})  # fmt: skip
    assert done.status_code == 303 and done.headers["location"] == "/review?line=L1"
    cookie = next(c for c in done.headers.get_list("set-cookie")
                  if c.startswith(sessions.COOKIE_NAME))  # fmt: skip
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "reviewer" not in cookie  # nothing about the role
    again = client.get("/review?line=L1", headers=HTML)
    assert again.status_code == 200 and again.text == "page /review"


def test_wrong_password_and_missing_csrf_set_no_session(client: TestClient, make_user) -> None:  # type: ignore[no-untyped-def]
    make_user("rita", Role.REVIEWER, password="correct-horse-1")
    csrf = _form(client)
    wrong = client.post(web.LOGIN_PATH, data={"username": "rita", "password": "nope",
                                              "csrf": csrf, "next": "/"})  # fmt: skip
    assert wrong.status_code == 401 and "Wrong username or password." in wrong.text
    assert sessions.COOKIE_NAME not in wrong.headers.get("set-cookie", "")
    assert 'value="rita"' in wrong.text  # the name is kept, escaped
    forged = TestClient(client.app, follow_redirects=False).post(
        web.LOGIN_PATH, data={"username": "rita", "password": "correct-horse-1", "csrf": "x"}
    )
    assert forged.status_code == 400 and "expired" in forged.text


def test_an_ended_session_is_sent_to_the_form_and_its_cookie_dropped(
    client: TestClient, db: Database, settings: Settings, make_user
) -> None:  # type: ignore[no-untyped-def]
    vic, _ = make_user("vic", Role.VIEWER)
    token = sessions.start_session(db, settings, vic)
    client.cookies.set(sessions.COOKIE_NAME, token)
    assert client.get("/trends", headers=HTML).status_code == 200
    sessions.end_session(db, token)
    gone = client.get("/trends", headers=HTML)
    assert gone.status_code == 303 and gone.headers["location"].startswith(web.LOGIN_PATH)
    assert f'{sessions.COOKIE_NAME}=""' in gone.headers["set-cookie"]


def test_assets_and_streamlit_endpoints_pass_the_gate(client: TestClient) -> None:
    for path, headers in (("/_stcore/health", HTML), ("/static/js/main.js", HTML),
                          ("/review", {"accept": "application/json"})):  # fmt: skip
        assert client.get(path, headers=headers).status_code == 200, path


@pytest.mark.parametrize(
    ("value", "safe"),
    [("/review?line=L1", "/review?line=L1"), ("//evil.example/x", "/"),
     ("https://evil.example/", "/"), ("/\\evil.example", "/"), ("javascript:alert(1)", "/"),
     ("/session/login?next=/x", "/"), ("", "/"), (None, "/"), ("/a\r\nSet-Cookie: x", "/")],
)  # fmt: skip
def test_next_never_leaves_the_site(value: str | None, safe: str) -> None:
    assert web.safe_next(value) == safe


def test_the_form_escapes_what_it_echoes(client: TestClient) -> None:
    got = client.get(web.LOGIN_PATH, params={"next": '/x"><script>alert(1)</script>'})
    assert "<script>alert(1)</script>" not in got.text
