"""Single sign-on over HTTP: DefectLens's relying party (core/auth/oidc.py, the routes in
core/auth/web.py) against a real OpenID Connect provider on localhost (tests/oidc_provider.py),
with a real migrated database. A good sign-on becomes an ordinary session on the page asked
for; every forged, replayed, mis-addressed or refused answer starts none and says why."""

from __future__ import annotations

import dataclasses
import os
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from core.auth import accounts, oidc, permissions, sessions, web
from core.config import Settings, load_settings
from core.errors import ValidationError
from db.engine import Database
from db.models import AuditEntry, Role
from db.queries import audit as audit_queries
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider

HTML = {"accept": "text/html"}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


@pytest.fixture
def client(db: Database, settings: Settings, oidc_provider: Provider) -> TestClient:
    sso_settings = dataclasses.replace(settings, sso_metadata_url=oidc_provider.metadata_url,
                                       sso_client_id=CLIENT_ID,
                                       sso_client_secret=CLIENT_SECRET)  # fmt: skip
    auth = web.WebAuth(sso_settings)

    async def page(request: Request) -> PlainTextResponse:
        user = sessions.resolve_session(db, sso_settings, request.cookies.get(sessions.COOKIE_NAME))
        return PlainTextResponse(f"{request.url.path} as {user.username if user else '-'}")

    app = Starlette(routes=[*auth.routes(), Route("/{path:path}", page)],
                    middleware=[Middleware(auth.gate)])  # fmt: skip
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def rita(db: Database) -> None:
    accounts.create_user(db, permissions.SYSTEM, "rita", Role.REVIEWER, email="rita@plant.example")


def _at_provider(client: TestClient, next_path: str, email: str) -> str:
    """Start a sign-on and sign in at the provider as `email`; the callback it sends back to."""
    start = client.get(web.SSO_PATH, params={"next": next_path})
    assert start.status_code == 303, start.text
    parts = urlsplit(_redirect_of(f"{start.headers['location']}&login_hint={email}"))
    assert parts.path == oidc.CALLBACK_PATH
    return f"{parts.path}?{parts.query}"


def _redirect_of(url: str) -> str:
    """Where the provider's answer to a browser at this URL redirects (not followed)."""
    try:
        urllib.request.build_opener(_NoRedirect).open(url, timeout=5)
    except urllib.error.HTTPError as e:
        assert e.code == 302, e.read()
        return str(e.headers["Location"])
    raise AssertionError("the provider did not redirect")


def _audit(db: Database, action: str) -> list[AuditEntry]:
    with db.read() as session:
        return list(audit_queries.list_audit(session, action=action))


def test_a_sign_on_starts_an_ordinary_session_on_the_page_asked_for(
    client: TestClient, db: Database, oidc_provider: Provider, rita: None
) -> None:
    first = client.get("/review?line=L1", headers=HTML)  # a deep link, logged out
    assert first.headers["location"] == "/session/login?next=%2Freview%3Fline%3DL1"
    form = client.get(first.headers["location"])
    assert 'href="/session/sso?next=%2Freview%3Fline%3DL1"' in form.text  # the SSO link
    start = client.get(web.SSO_PATH, params={"next": "/review?line=L1"})
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"] and query["scope"] == [oidc.SCOPES]
    state_cookie = start.headers["set-cookie"]
    assert "HttpOnly" in state_cookie and "SameSite=lax" in state_cookie
    callback = urlsplit(_redirect_of(f"{start.headers['location']}&login_hint=rita@plant.example"))
    done = client.get(f"{callback.path}?{callback.query}")
    assert done.status_code == 303 and done.headers["location"] == "/review?line=L1"
    cookie = next(c for c in done.headers.get_list("set-cookie")
                  if c.startswith(sessions.COOKIE_NAME))  # fmt: skip
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "reviewer" not in cookie
    again = client.get("/review?line=L1", headers=HTML)
    assert again.status_code == 200 and again.text == "/review as rita"
    assert [e.username for e in _audit(db, "sso_linked")] == ["rita"]
    # An ordinary session: deactivating the account ends it at once.
    admin, _ = accounts.create_user(db, permissions.SYSTEM, "boss", Role.ADMIN)
    boss = permissions.CurrentUser(id=admin.id, username="boss", role=Role.ADMIN)
    rita_id = next(u.id for u in accounts.list_users(db, boss) if u.username == "rita")
    accounts.set_active(db, boss, rita_id, False)
    assert client.get("/review", headers=HTML).status_code == 303


def test_the_second_sign_on_matches_the_binding_and_a_replayed_answer_is_refused(
    client: TestClient, db: Database, rita: None
) -> None:
    callback = _at_provider(client, "/", "rita@plant.example")
    assert client.get(callback).status_code == 303
    replay = client.get(callback)  # the same code and state again
    assert replay.status_code == 400 and "expired or was started in another browser" in replay.text
    again = client.get(_at_provider(client, "/trends", "rita@plant.example"))
    assert again.headers["location"] == "/trends"
    assert len(_audit(db, "sso_linked")) == 1 and len(_audit(db, "login")) == 2


def test_an_answer_for_another_browser_starts_no_session(client: TestClient, rita: None) -> None:
    callback = _at_provider(client, "/", "rita@plant.example")
    client.cookies.clear()  # a link to the callback opened in a browser that never started
    got = client.get(callback)
    assert got.status_code == 400 and sessions.COOKIE_NAME not in got.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"signing_key": RSAKey.generate_key(2048, {"kid": "k1"})}, "did not check out"),
        ({"issuer_override": "https://evil.example"}, "did not check out"),
        ({"audience_override": "another-client"}, "did not check out"),
        ({"nonce_override": "replayed-nonce"}, "did not check out"),
        ({"expires_in_s": -600}, "did not check out"),
        ({"email_verified": False}, "has not verified rita@plant.example"),
    ],
    ids=["signature", "issuer", "audience", "nonce", "expired", "unverified"],
)
def test_a_token_that_does_not_check_out_starts_no_session(
    client: TestClient, oidc_provider: Provider, rita: None, change: dict[str, object], said: str
) -> None:
    for name, value in change.items():
        setattr(oidc_provider, name, value)
    got = client.get(_at_provider(client, "/review", "rita@plant.example"))
    assert got.status_code == 401 and said in got.text
    assert sessions.COOKIE_NAME not in got.headers.get("set-cookie", "")
    assert client.get("/review", headers=HTML).status_code == 303


def test_unknown_accounts_and_refusals_at_the_provider_are_said(
    client: TestClient, db: Database, rita: None
) -> None:
    unknown = client.get(_at_provider(client, "/", "mallory@plant.example"))
    assert unknown.status_code == 401 and "No active DefectLens account for mallory" in unknown.text
    denied = client.get(_at_provider(client, "/", "deny@plant.example"))
    assert denied.status_code == 401 and "did not sign you in: The user said no" in denied.text
    reasons = [e.details["reason"] for e in _audit(db, "login_failed") if e.details]
    assert reasons == ["sso user unknown or inactive"]


def test_the_email_may_come_from_userinfo_and_keys_may_rotate(
    client: TestClient, oidc_provider: Provider, rita: None
) -> None:
    oidc_provider.email_in_id_token = False  # Entra ID and others put it in userinfo only
    assert client.get(_at_provider(client, "/", "rita@plant.example")).status_code == 303
    oidc_provider.key = RSAKey.generate_key(2048, {"kid": "k1"})  # rotated since the last fetch
    assert client.get(_at_provider(client, "/", "rita@plant.example")).status_code == 303


def test_a_wrong_client_secret_or_an_unreachable_provider_is_named(
    client: TestClient, settings: Settings, oidc_provider: Provider, db: Database, rita: None
) -> None:
    wrong_secret = dataclasses.replace(
        settings, sso_metadata_url=oidc_provider.metadata_url, sso_client_id=CLIENT_ID,
        sso_client_secret="wrong",
    )  # fmt: skip
    auth = web.WebAuth(wrong_secret)
    wrong = TestClient(Starlette(routes=auth.routes()), follow_redirects=False)
    got = wrong.get(_at_provider(wrong, "/", "rita@plant.example"))
    assert got.status_code == 401
    assert f"answered 401 at {oidc_provider.url}/token (invalid_client)" in got.text
    gone = web.WebAuth(dataclasses.replace(settings, sso_metadata_url="http://127.0.0.1:9/x",
                                           sso_client_id=CLIENT_ID))  # fmt: skip
    down = TestClient(Starlette(routes=gone.routes()), follow_redirects=False).get(web.SSO_PATH)
    assert down.status_code == 502 and "could not be reached at http://127.0.0.1:9/x" in down.text


def test_next_never_leaves_the_site_and_sso_off_is_a_plain_404(
    client: TestClient, settings: Settings, rita: None
) -> None:
    got = client.get(_at_provider(client, "https://evil.example/x", "rita@plant.example"))
    assert got.headers["location"] == "/"
    off = TestClient(Starlette(routes=web.WebAuth(settings).routes()), follow_redirects=False)
    assert off.get(web.SSO_PATH).status_code == 404
    assert "single sign-on" not in off.get(web.LOGIN_PATH).text


def test_pending_sign_ons_expire_and_are_used_once() -> None:
    pending = oidc.PendingLogins(ttl_s=0.0)
    started = pending.start("/", "http://x/cb")
    assert pending.take(started.state) is None
    kept = oidc.PendingLogins(limit=2)
    first, *_ = [kept.start("/", "http://x/cb") for _ in range(3)]
    assert kept.take(first.state) is None  # the oldest made room
    # RFC 7636 appendix B's worked example.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert oidc.code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_sso_settings_are_checked(tmp_path: Path) -> None:
    base = {"DEFECTLENS_HOME": str(tmp_path)}
    with pytest.raises(ValidationError, match="must be an https:// URL"):
        load_settings({**base, "DEFECTLENS_SSO_METADATA_URL": "http://idp.plant.example/x"})
    with pytest.raises(ValidationError, match="DEFECTLENS_SSO_CLIENT_ID is not"):
        load_settings({**base, "DEFECTLENS_SSO_METADATA_URL": "https://idp.plant.example/x"})
    secret = tmp_path / "secret"
    secret.write_text("abc\n")
    os.chmod(secret, 0o644)
    full = {
        **base, "DEFECTLENS_SSO_METADATA_URL": "https://idp.plant.example/x",
        "DEFECTLENS_SSO_CLIENT_ID": "dl", "DEFECTLENS_SSO_CLIENT_SECRET_FILE": str(secret),
    }  # fmt: skip
    with pytest.raises(ValidationError, match="can be read by other users"):
        load_settings(full)
    os.chmod(secret, 0o600)
    loaded = load_settings(full)
    assert loaded.sso_enabled and loaded.sso_client_secret == "abc"
    assert "abc" not in repr(loaded)
    assert not load_settings(base).sso_enabled
