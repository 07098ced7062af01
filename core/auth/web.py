"""The HTTP side of logging in, in front of Streamlit (served by pages/_server.py).

Streamlit talks to the browser over a websocket and cannot set an HttpOnly cookie, so the login
form is a plain HTML page at /session/login: it checks the password (core/auth/accounts),
starts a server-side session (core/auth/sessions) and sets the cookie, HttpOnly and
SameSite=Lax (Secure with DEFECTLENS_SECURE_COOKIES), then sends the browser back to the page
it asked for. The gate in front of every page sends a browser without a valid session there
first, keeping the page it wanted in ``next``, so a bookmark or a shared link opened while
logged out lands on its page after login. Streamlit itself reads the cookie on every run.
"""

from __future__ import annotations

import asyncio
import html
import secrets
from functools import cached_property
from urllib.parse import quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from core import setup
from core.auth import accounts, oidc, sessions, sso
from core.auth.permissions import CurrentUser
from core.auth.throttle import CONCURRENT_HASHES, HASH_QUEUE_WAIT_S, LoginThrottle, Refusal
from core.config import Settings
from core.errors import AuthenticationError
from db.engine import Database
from db.queries.audit import add_audit

LOGIN_PATH = "/session/login"
SSO_PATH = "/session/sso"
CSRF_COOKIE = "defectlens_login_csrf"
SSO_STATE_COOKIE = "defectlens_sso_state"
# Paths the gate never stops: Streamlit's own endpoints and assets, the login and SSO routes.
OPEN_PREFIXES = ("/_stcore/", "/static/", "/media/", "/component/", "/app/static/",
                 "/session/", "/favicon")  # fmt: skip


class WebAuth:
    """The login routes and the gate for one server process, with its database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.throttle = LoginThrottle()
        # At most this many argon2 checks at once (each holds 64 MiB); the rest queue briefly.
        self._hash_slots = asyncio.Semaphore(CONCURRENT_HASHES)
        self.oidc = oidc.OidcClient(settings)
        self.pending = oidc.PendingLogins()

    @cached_property
    def db(self) -> Database:
        setup.migrate(self.settings)
        return setup.open_database(self.settings)

    def routes(self) -> list[Route]:
        """The login form (GET) and its submission (POST); single sign-on's start and return."""
        return [
            Route(LOGIN_PATH, self.login, methods=["GET", "POST"]),
            Route(SSO_PATH, self.sso_start, methods=["GET"]),
            Route(oidc.CALLBACK_PATH, self.sso_callback, methods=["GET"]),
        ]

    async def login(self, request: Request) -> Response:
        """Show the form, or check it and start a session."""
        target = safe_next(request.query_params.get("next"))
        if request.method == "GET":
            return self._form(target)
        form = await request.form()
        target = safe_next(str(form.get("next") or target))
        sent, expected = str(form.get("csrf") or ""), request.cookies.get(CSRF_COOKIE, "")
        if not expected or not secrets.compare_digest(sent, expected):
            return self._form(target, "The login form expired. Please try again.", 400)
        username, password = str(form.get("username") or ""), str(form.get("password") or "")
        address = client_address(request, self.settings.trusted_proxies)
        refusal = self.throttle.check(username, address, password)
        if refusal is not None:
            return self._refused(target, refusal, username)
        try:
            await asyncio.wait_for(self._hash_slots.acquire(), HASH_QUEUE_WAIT_S)
        except TimeoutError:
            return self._refused(target, Refusal("busy", 5), username)
        try:
            try:
                user = await run_in_threadpool(accounts.authenticate, self.db, username,
                                               password, delay_s=0)  # fmt: skip
            finally:
                self._hash_slots.release()
        except AuthenticationError as e:
            locked = self.throttle.failed(username, address)
            if locked:
                await run_in_threadpool(self._audit_lockout, username, address, locked)
            # Slow down guessing, without holding a hashing slot or a thread meanwhile.
            await asyncio.sleep(self.settings.login_delay_s)
            return self._form(target, str(e), 401, username)
        self.throttle.succeeded(username, address)
        response = await self._session_for(user, target)
        response.delete_cookie(CSRF_COOKIE, path=LOGIN_PATH)
        return response

    async def sso_start(self, request: Request) -> Response:
        """Send the browser to the identity provider, remembering where it wanted to go."""
        if not self.settings.sso_enabled:
            return self._form("/", "Single sign-on is not configured on this server.", 404)
        target = safe_next(request.query_params.get("next"))
        redirect_uri = self.settings.sso_redirect_uri or (
            str(request.base_url).rstrip("/") + oidc.CALLBACK_PATH
        )
        pending = self.pending.start(target, redirect_uri)
        try:
            url = await run_in_threadpool(self.oidc.authorization_url, pending)
        except AuthenticationError as e:
            return self._form(target, str(e), 502)
        response = RedirectResponse(url, status_code=303)
        # Lax: the provider's redirect back is a top-level GET from another site.
        response.set_cookie(SSO_STATE_COOKIE, pending.state, max_age=int(oidc.PENDING_TTL_S),
                            httponly=True, samesite="lax", path=SSO_PATH,
                            secure=self.settings.secure_cookies)  # fmt: skip
        return response

    async def sso_callback(self, request: Request) -> Response:
        """The provider's answer: check it, find the account, start an ordinary session."""
        if not self.settings.sso_enabled:
            return self._form("/", "Single sign-on is not configured on this server.", 404)
        state = request.query_params.get("state", "")
        expected = request.cookies.get(SSO_STATE_COOKIE, "")
        pending = None
        # The state must be the one this browser was given (no login forced on it by a link).
        if expected and secrets.compare_digest(state, expected):
            pending = self.pending.take(state)
        if pending is None:
            response = self._form("/", "The sign-on expired or was started in another "
                                  "browser. Please try again.", 400)  # fmt: skip
        elif error := request.query_params.get("error"):
            said = request.query_params.get("error_description") or error
            response = self._form(pending.next_path, f"The sign-on provider did not sign you "
                                  f"in: {said[:200]}", 401)  # fmt: skip
        else:
            try:
                claims = await run_in_threadpool(
                    self.oidc.finish, pending, request.query_params.get("code", "")
                )
                user = await run_in_threadpool(
                    sso.user_for_claims, self.db, claims,
                    require_email_verified=self.settings.sso_require_email_verified,
                )  # fmt: skip
            except AuthenticationError as e:
                response = self._form(pending.next_path, str(e), 401)
            else:
                response = await self._session_for(user, pending.next_path)
        response.delete_cookie(SSO_STATE_COOKIE, path=SSO_PATH)
        return response

    async def _session_for(self, user: CurrentUser, target: str) -> Response:
        """Start a session for a user who proved who they are; back to the page they wanted."""
        token = await run_in_threadpool(sessions.start_session, self.db, self.settings, user)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            sessions.COOKIE_NAME, token, max_age=int(self.settings.session_max_days * 86400),
            httponly=True, samesite="lax", secure=self.settings.secure_cookies, path="/",
        )  # fmt: skip
        return response

    def _refused(self, target: str, refusal: Refusal, name: str) -> Response:
        status = {"too long": 400, "busy": 503}.get(refusal.reason, 429)
        response = self._form(target, refusal.message, status, name)
        if refusal.retry_after_s:
            response.headers["Retry-After"] = str(refusal.retry_after_s)
        return response

    def _audit_lockout(self, username: str, address: str, locked: list[str]) -> None:
        with self.db.write() as session:
            add_audit(session, user_id=None, username=username.strip()[:64],
                      action="login_locked", entity="user",
                      details={"address": address, "locked": locked})  # fmt: skip

    def _form(self, target: str, error: str = "", status: int = 200, name: str = "") -> Response:
        csrf = secrets.token_urlsafe(24)
        page = LOGIN_PAGE.format(
            next=html.escape(target), csrf=csrf, username=html.escape(name),
            error=f'<p class="error" role="alert">{html.escape(error)}</p>' if error else "",
            sso=SSO_LINK.format(next=quote(target, safe="")) if self.settings.sso_enabled else "",
        )  # fmt: skip
        response = HTMLResponse(page, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", path=LOGIN_PATH,
                            secure=self.settings.secure_cookies)  # fmt: skip
        return response

    def gate(self, app: ASGIApp) -> ASGIApp:
        """ASGI middleware: a page request without a valid session goes to the login form."""

        async def gated(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and await self._turned_away(scope):
                request = Request(scope)
                wanted = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = RedirectResponse(f"{LOGIN_PATH}?next={quote(wanted, safe='')}", 303)
                if request.cookies.get(sessions.COOKIE_NAME):
                    response.delete_cookie(sessions.COOKIE_NAME, path="/")  # ended or expired
                await response(scope, receive, send)
                return
            await app(scope, receive, send)

        return gated

    async def _turned_away(self, scope: Scope) -> bool:
        request = Request(scope)
        if request.method not in ("GET", "HEAD") or request.url.path.startswith(OPEN_PREFIXES):
            return False
        if "text/html" not in request.headers.get("accept", ""):
            return False  # not a page load (assets, API calls): Streamlit answers those
        token = request.cookies.get(sessions.COOKIE_NAME)
        user = await run_in_threadpool(sessions.resolve_session, self.db, self.settings, token)
        return user is None


def client_address(request: Request, trusted_proxies: tuple[str, ...]) -> str:
    """The browser's address: the peer, or behind a trusted proxy the address that proxy saw
    (the last X-Forwarded-For entry, which the proxy itself appends)."""
    peer = request.client.host if request.client else "unknown"
    if peer in trusted_proxies:
        forwarded = [a.strip() for a in request.headers.get("x-forwarded-for", "").split(",")]
        if forwarded and forwarded[-1]:
            return forwarded[-1][:64]
    return peer


def safe_next(value: str | None) -> str:
    """A same-site path to return to after login; '/' for anything else (no open redirect)."""
    if not value or len(value) > 2000 or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(c) < 32 for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path.startswith("/session/"):
        return "/"
    return str(URL(value))


SSO_LINK = '<p class="sso"><a href="/session/sso?next={next}">Log in with single sign-on</a></p>'
LOGIN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport"
content="width=device-width, initial-scale=1"><title>DefectLens · Log in</title>
<style>
body {{ font-family: "Source Sans Pro", system-ui, sans-serif; background: #f8f9fb;
       color: #262730; display: flex; justify-content: center; padding-top: 10vh; }}
main {{ background: white; padding: 2rem 2.5rem; border-radius: 0.5rem; width: 22rem;
       box-shadow: 0 1px 4px rgba(0,0,0,0.12); }}
h1 {{ margin: 0 0 0.2rem 0; }} p.lead {{ color: #6b6f76; margin-top: 0; }}
label {{ display: block; margin: 1rem 0 0.3rem; }}
input {{ width: 100%; box-sizing: border-box; padding: 0.5rem; font-size: 1rem;
        border: 1px solid #c9ccd1; border-radius: 0.3rem; }}
button {{ margin-top: 1.4rem; width: 100%; padding: 0.6rem; font-size: 1rem; color: white;
         background: #ff4b4b; border: 0; border-radius: 0.3rem; cursor: pointer; }}
.error {{ color: #b00020; }} .sso {{ margin-top: 1.2rem; text-align: center; }}
</style></head><body><main>
<h1>DefectLens</h1><p class="lead">Visual quality inspection. Please log in.</p>
{error}
<form method="post" action="/session/login">
<input type="hidden" name="next" value="{next}"><input type="hidden" name="csrf" value="{csrf}">
<label for="username">Username</label>
<input id="username" name="username" autocomplete="username" value="{username}" required autofocus>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Log in</button>
</form>{sso}</main></body></html>
"""
