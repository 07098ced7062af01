"""Single sign-on: the identity provider's claims to a DefectLens account.

An account is found by e-mail only on its first SSO login, and only when the provider says the
address is verified (``email_verified``); that login binds the account to the provider's issuer
and stable subject (``iss``, ``sub``). Every later login matches on the binding, never on the
e-mail, so someone who gets the address at the provider later (a renamed or recycled mailbox, a
provider that lets users pick any address) does not get the account. An administrator changing
the account's e-mail removes the binding (core.auth.accounts.set_email).
"""

from __future__ import annotations

from collections.abc import Mapping

from core.auth.accounts import record_login
from core.auth.permissions import CurrentUser
from core.errors import AuthenticationError
from db.engine import Database
from db.queries import users
from db.queries.audit import add_audit

ASK_ADMIN = "ask an administrator."


def _verified(value: object) -> bool:
    # Some providers send the claim as the string "true" (AWS Cognito did for years).
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def user_for_claims(
    db: Database, claims: Mapping[str, object], *, require_email_verified: bool = True
) -> CurrentUser:
    """The active account these OIDC claims belong to, binding it on its first SSO login;
    AuthenticationError (audited ``login_failed`` with the reason) otherwise."""
    issuer = str(claims.get("iss") or "").strip()
    subject = str(claims.get("sub") or "").strip()
    email = str(claims.get("email") or "").strip()
    shown = email or subject or "unknown"
    refusal: tuple[str, str]  # (audited reason, message for the person)
    with db.write() as session:
        if not issuer or not subject:
            refusal = ("sso claims without iss or sub", "The sign-on provider sent no identity; ")
        elif (identity := users.get_sso_identity(session, issuer, subject)) is not None:
            user = users.get_user(session, identity.user_id)
            if user is not None and user.active:
                return record_login(session, user, method="sso")
            refusal = ("sso user inactive", f"The DefectLens account for {shown} is inactive; ")
        elif not email:
            refusal = ("sso claims without e-mail", "The sign-on provider sent no e-mail; ")
        elif require_email_verified and not _verified(claims.get("email_verified")):
            refusal = (
                "sso e-mail not verified",
                f"The sign-on provider has not verified {email}; ",
            )
        elif (user := users.get_user_by_email(session, email)) is None or not user.active:
            refusal = (
                "sso user unknown or inactive",
                f"No active DefectLens account for {email}; ",
            )
        elif users.get_sso_identity_of(session, user.id) is not None:
            refusal = (
                "sso account bound to another identity",
                f"The DefectLens account for {email} is linked to another sign-on identity; ",
            )
        else:
            users.bind_sso_identity(session, user.id, issuer, subject)
            add_audit(
                session,
                user_id=user.id,
                username=user.username,
                action="sso_linked",
                entity="user",
                entity_id=user.id,
                details={"issuer": issuer, "subject": subject, "email": email},
            )
            return record_login(session, user, method="sso")
        add_audit(
            session,
            user_id=None,
            username=(email or subject or "unknown")[:64],
            action="login_failed",
            entity="user",
            details={"reason": refusal[0], "issuer": issuer[:200], "subject": subject[:200]},
        )
    raise AuthenticationError(refusal[1] + ASK_ADMIN)
