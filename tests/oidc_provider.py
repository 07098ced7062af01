"""A small but complete OpenID Connect provider for the tests, over real HTTP on localhost:
discovery, an authorization endpoint with a sign-in form, a token endpoint that checks the
client's secret, the code, the redirect URI and the PKCE verifier, RS256 ID tokens signed with a
key published at the JWKS endpoint, and userinfo. What a real provider (Keycloak, Entra ID,
Okta) does on the wire, so DefectLens's relying party (core/auth/oidc.py) is tested against the
protocol, not against itself. Attributes change its behaviour for the refusal tests.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "defectlens-test"
CLIENT_SECRET = "s3cret-for-tests"


@dataclass
class Grant:
    email: str
    client_id: str
    redirect_uri: str
    nonce: str
    challenge: str


@dataclass
class Provider:
    """The running provider; change the attributes to make it misbehave."""

    url: str = ""
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(2048, {"kid": "k1"}))
    # Set to another key to sign tokens the published keys do not verify.
    signing_key: RSAKey | None = None
    email_verified: object = True
    issuer_override: str | None = None
    audience_override: str | None = None
    nonce_override: str | None = None
    expires_in_s: int = 300
    email_in_id_token: bool = True
    extra_claims: dict[str, Any] = field(default_factory=dict)
    subjects: dict[str, str] = field(default_factory=dict)  # e-mail -> sub (default: derived)
    grants: dict[str, Grant] = field(default_factory=dict)
    access: dict[str, dict[str, Any]] = field(default_factory=dict)
    token_requests: int = 0

    @property
    def metadata_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    def subject(self, email: str) -> str:
        return self.subjects.get(email, "sub-" + hashlib.sha256(email.encode()).hexdigest()[:16])

    def claims_for(self, grant: Grant) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer_override or self.url,
            "sub": self.subject(grant.email),
            "aud": self.audience_override or grant.client_id,
            "iat": now, "exp": now + self.expires_in_s,
            "nonce": self.nonce_override or grant.nonce,
            "name": grant.email.split("@")[0].title(),
        }  # fmt: skip
        if self.email_in_id_token:
            claims.update(email=grant.email, email_verified=self.email_verified)
        return {**claims, **self.extra_claims}


def start_provider() -> tuple[Provider, ThreadingHTTPServer]:
    """A provider on a free localhost port, serving in a daemon thread."""
    provider = Provider()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(provider))
    provider.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return provider, server


def _handler(provider: Provider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/.well-known/openid-configuration":
                self._json(_discovery(provider))
            elif parts.path == "/jwks":
                self._json({"keys": [provider.key.as_dict(private=False)]})
            elif parts.path == "/authorize":
                self._authorize(query)
            elif parts.path == "/userinfo":
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                claims = provider.access.get(token)
                self._json(claims or {"error": "invalid_token"}, 200 if claims else 401)
            else:
                self._json({"error": "not found"}, 404)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if self.path == "/authorize":
                self._authorize(form, signed_in=form.get("email", ""))
            elif self.path == "/token":
                self._token(form)
            else:
                self._json({"error": "not found"}, 404)

        def _authorize(self, query: dict[str, str], signed_in: str = "") -> None:
            if query.get("response_type") != "code" or query.get("client_id") != CLIENT_ID:
                self._json({"error": "unauthorized_client"}, 400)
                return
            email = signed_in or query.get("login_hint", "")
            if not email:  # the provider's own sign-in page
                hidden = "".join(
                    f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                    for k, v in query.items()
                )
                self._page(
                    "<h1>Test identity provider</h1><form method='post' action='/authorize'>"
                    f"{hidden}<label for='email'>E-mail</label> <input id='email' name='email'>"
                    "<button type='submit'>Sign in</button></form>"
                )
                return
            answer: dict[str, str] = {"state": query.get("state", "")}
            if email == "deny@plant.example":
                answer.update(error="access_denied", error_description="The user said no")
            else:
                code = secrets.token_urlsafe(16)
                provider.grants[code] = Grant(email, query["client_id"], query["redirect_uri"],
                                              query.get("nonce", ""),
                                              query.get("code_challenge", ""))  # fmt: skip
                answer["code"] = code
            self.send_response(302)
            self.send_header("Location", f"{query['redirect_uri']}?{urlencode(answer)}")
            self.end_headers()

        def _token(self, form: dict[str, str]) -> None:
            provider.token_requests += 1
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            basic = self.headers.get("Authorization", "")
            if basic.startswith("Basic "):
                pair = base64.b64decode(basic[6:]).decode()
                client_id, secret = (unquote(p) for p in pair.partition(":")[::2])
            if client_id != CLIENT_ID or secret != CLIENT_SECRET:
                self._json({"error": "invalid_client"}, 401)
                return
            grant = provider.grants.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
            if (
                grant is None
                or grant.redirect_uri != form.get("redirect_uri")
                or grant.challenge != challenge.rstrip(b"=").decode()
            ):
                self._json({"error": "invalid_grant"}, 400)
                return
            claims = provider.claims_for(grant)
            key = provider.signing_key or provider.key
            id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
            access = secrets.token_urlsafe(16)
            provider.access[access] = {"sub": claims["sub"], "email": grant.email,
                                       "email_verified": provider.email_verified}  # fmt: skip
            self._json({"access_token": access, "token_type": "Bearer", "expires_in": 300,
                        "id_token": id_token})  # fmt: skip

        def _json(self, body: dict[str, Any], status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _page(self, body: str) -> None:
            data = f"<!doctype html><html><body>{body}</body></html>".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _discovery(provider: Provider) -> dict[str, Any]:
    return {
        "issuer": provider.url,
        "authorization_endpoint": f"{provider.url}/authorize",
        "token_endpoint": f"{provider.url}/token",
        "jwks_uri": f"{provider.url}/jwks",
        "userinfo_endpoint": f"{provider.url}/userinfo",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": ["openid", "email", "profile"],
    }
