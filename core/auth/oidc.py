"""Single sign-on over OpenID Connect: DefectLens as the relying party (authorization code flow
with PKCE and a nonce), served in front of Streamlit by core/auth/web.py.

The browser goes to the provider's authorization endpoint with a random ``state``, ``nonce``
and PKCE challenge that this process keeps (``PendingLogins``, ten minutes) and that a cookie
binds to the browser that started; the provider sends it back with a code; the code is
exchanged over the back channel for an ID token, whose signature (the provider's published
keys, joserfc), issuer, audience, expiry and nonce are checked before any claim is read. The
claims then go to core.auth.sso, which finds the account, and the login becomes an ordinary
DefectLens session (core.auth.sessions): the same cookie, idle timeout, lifetime and logout as
a password login, and a deactivation or role change applies at once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from core.config import Settings
from core.errors import AuthenticationError

CALLBACK_PATH = "/session/sso/callback"
SCOPES = "openid email profile"
PENDING_TTL_S = 600.0
# Logins started and not finished are kept at most this many (each GET of the start page adds one).
MAX_PENDING = 10_000
METADATA_TTL_S = 3600.0
HTTP_TIMEOUT_S = 10.0
CLOCK_LEEWAY_S = 60
# Asymmetric signatures only: "none" and HMAC (keyed with the client secret) are refused.
SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                      "ES512", "EdDSA")  # fmt: skip
TRY_AGAIN = "try again, or ask an administrator."


@dataclass(frozen=True)
class Pending:
    """One sign-on started by a browser and not yet finished."""

    state: str
    nonce: str
    verifier: str  # PKCE code verifier (RFC 7636)
    next_path: str
    redirect_uri: str
    started: float  # time.monotonic()


class PendingLogins:
    """The sign-ons in flight in this server process, each usable once, for ten minutes."""

    def __init__(self, ttl_s: float = PENDING_TTL_S, limit: int = MAX_PENDING) -> None:
        self._ttl_s, self._limit = ttl_s, limit
        self._items: OrderedDict[str, Pending] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, next_path: str, redirect_uri: str) -> Pending:
        pending = Pending(
            state=secrets.token_urlsafe(24), nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48), next_path=next_path,
            redirect_uri=redirect_uri, started=time.monotonic(),
        )  # fmt: skip
        with self._lock:
            self._items[pending.state] = pending
            while len(self._items) > self._limit:
                self._items.popitem(last=False)
        return pending

    def take(self, state: str) -> Pending | None:
        """The sign-on this state belongs to, removed; None when unknown or too old."""
        with self._lock:
            pending = self._items.pop(state, None)
        if pending is None or time.monotonic() - pending.started > self._ttl_s:
            return None
        return pending


def code_challenge(verifier: str) -> str:
    """The S256 PKCE challenge of a verifier: base64url(SHA-256), unpadded (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class OidcClient:
    """The provider named by DEFECTLENS_SSO_METADATA_URL, as this relying party sees it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None

    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (cached for an hour)."""
        if self._metadata is None or time.monotonic() - self._metadata_at > METADATA_TTL_S:
            document = _get_json(self.settings.sso_metadata_url)
            missing = [k for k in ("issuer", "authorization_endpoint", "token_endpoint",
                                   "jwks_uri") if not document.get(k)]  # fmt: skip
            if missing:
                raise AuthenticationError(
                    f"The sign-on provider's discovery document "
                    f"({self.settings.sso_metadata_url}) has no {', '.join(missing)}; {TRY_AGAIN}"
                )
            self._metadata, self._metadata_at, self._keys = document, time.monotonic(), None
        return self._metadata

    def authorization_url(self, pending: Pending) -> str:
        """Where to send the browser to sign in."""
        endpoint = str(self.metadata()["authorization_endpoint"])
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": self.settings.sso_client_id,
            "redirect_uri": pending.redirect_uri, "scope": SCOPES, "state": pending.state,
            "nonce": pending.nonce, "code_challenge": code_challenge(pending.verifier),
            "code_challenge_method": "S256",
        })  # fmt: skip
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def finish(self, pending: Pending, code: str) -> dict[str, Any]:
        """Exchange the code and return the checked ID token's claims (with the userinfo
        endpoint's, when the token carries no e-mail)."""
        tokens = self._exchange(pending, code)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise AuthenticationError(f"The sign-on provider sent no ID token; {TRY_AGAIN}")
        claims = self._checked_claims(id_token, pending.nonce)
        access = tokens.get("access_token")
        userinfo = self.metadata().get("userinfo_endpoint")
        if "email" not in claims and isinstance(access, str) and userinfo:
            extra = _get_json(str(userinfo), headers={"Authorization": f"Bearer {access}"})
            if extra.get("sub") == claims.get("sub"):  # OIDC Core 5.3.2: must match
                claims = {**extra, **claims}
        return claims

    def _exchange(self, pending: Pending, code: str) -> dict[str, Any]:
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": pending.redirect_uri, "code_verifier": pending.verifier,
                "client_id": self.settings.sso_client_id}  # fmt: skip
        headers = {}
        secret = self.settings.sso_client_secret
        methods = self.metadata().get("token_endpoint_auth_methods_supported") or [
            "client_secret_basic"
        ]
        if secret and "client_secret_basic" in methods:
            pair = ":".join(urllib.parse.quote(v, safe="")
                            for v in (self.settings.sso_client_id, secret))  # fmt: skip
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif secret:
            form["client_secret"] = secret
        body = urllib.parse.urlencode(form).encode("ascii")
        return _get_json(str(self.metadata()["token_endpoint"]), data=body, headers=headers)

    def _checked_claims(self, id_token: str, nonce: str) -> dict[str, Any]:
        metadata = self.metadata()
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        allowed = [a for a in SIGNING_ALGORITHMS if a in offered]
        try:
            try:
                token = jwt.decode(id_token, self._key_set(), algorithms=allowed)
            except JoseError:
                # The provider may have rotated its keys since they were fetched: once more.
                token = jwt.decode(id_token, self._key_set(refresh=True), algorithms=allowed)
            jwt.JWTClaimsRegistry(
                leeway=CLOCK_LEEWAY_S,
                iss={"essential": True, "value": metadata["issuer"]},
                aud={"essential": True, "value": self.settings.sso_client_id},
                sub={"essential": True}, exp={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(token.claims)  # fmt: skip
        except (JoseError, ValueError) as e:
            raise AuthenticationError(
                f"The sign-on provider's ID token did not check out ({e}); {TRY_AGAIN}"
            ) from None
        claims = dict(token.claims)
        audience = claims.get("aud")
        if (
            isinstance(audience, list)
            and len(audience) > 1
            and (claims.get("azp") != self.settings.sso_client_id)
        ):
            raise AuthenticationError(
                f"The sign-on provider's ID token is meant for another party; {TRY_AGAIN}"
            )
        return claims

    def _key_set(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            published = _get_json(str(self.metadata()["jwks_uri"]))
            try:
                self._keys = KeySet.import_key_set(published)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as e:
                raise AuthenticationError(
                    f"The sign-on provider's published keys could not be read ({e}); {TRY_AGAIN}"
                ) from None
        return self._keys


def _get_json(url: str, data: bytes | None = None, headers: dict[str, str] | None = None
              ) -> dict[str, Any]:  # fmt: skip
    """GET (or POST data to) a provider URL; its JSON object, or AuthenticationError naming
    the URL and what went wrong."""
    request = urllib.request.Request(url, data=data, headers={"Accept": "application/json",
                                                              **(headers or {})})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            body = response.read(1_000_000)
    except urllib.error.HTTPError as e:
        detail = _error_detail(e.read(10_000))
        raise AuthenticationError(
            f"The sign-on provider answered {e.code} at {url}{detail}; {TRY_AGAIN}"
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise AuthenticationError(
            f"The sign-on provider could not be reached at {url} ({reason}); {TRY_AGAIN}"
        ) from None
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise AuthenticationError(f"The sign-on provider sent no JSON object at {url}; {TRY_AGAIN}")
    return document


def _error_detail(body: bytes) -> str:
    """The OAuth error code and description of an error response, when it has them."""
    try:
        document = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(document, dict) or not document.get("error"):
        return ""
    text = str(document["error"])
    if document.get("error_description"):
        text += f": {document['error_description']}"
    return f" ({text[:200]})"
