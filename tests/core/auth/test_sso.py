"""Single sign-on: verified e-mail on the first login, the provider's subject after it (hole 6
of issue 12), against a real migrated SQLite database."""

from __future__ import annotations

from typing import Any

import pytest

from core.auth import accounts, permissions, sso
from core.auth.permissions import CurrentUser
from core.errors import AuthenticationError
from db.engine import Database
from db.models import AuditEntry, Role
from db.queries import audit as audit_queries
from db.queries import users

ISSUER = "https://idp.plant.example"


def _claims(sub: str, email: str | None, verified: Any = True, **extra: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"iss": ISSUER, "sub": sub, "is_logged_in": True, **extra}
    if email is not None:
        claims["email"] = email
    if verified is not None:
        claims["email_verified"] = verified
    return claims


def _audit(db: Database, action: str) -> list[AuditEntry]:
    with db.read() as session:
        return list(audit_queries.list_audit(session, action=action))


def _reasons(db: Database) -> list[str]:
    return [e.details["reason"] for e in reversed(_audit(db, "login_failed")) if e.details]


@pytest.fixture
def alice(db: Database) -> CurrentUser:
    info, _ = accounts.create_user(
        db, permissions.SYSTEM, "alice", Role.REVIEWER, email="alice@plant.example"
    )
    return CurrentUser(id=info.id, username="alice", role=Role.REVIEWER)


def test_first_login_by_verified_email_binds_the_subject(db: Database, alice: CurrentUser) -> None:
    user = sso.user_for_claims(db, _claims("0042", "Alice@Plant.example"))
    assert user == alice
    (linked,) = _audit(db, "sso_linked")
    assert linked.details == {"issuer": ISSUER, "subject": "0042", "email": "Alice@Plant.example"}
    assert [e.details for e in _audit(db, "login")] == [{"method": "sso"}]
    with db.read() as session:
        identity = users.get_sso_identity_of(session, alice.id)  # type: ignore[arg-type]
        assert identity is not None and (identity.issuer, identity.subject) == (ISSUER, "0042")


def test_later_logins_match_the_subject_not_the_email(db: Database, alice: CurrentUser) -> None:
    sso.user_for_claims(db, _claims("0042", "alice@plant.example"))
    # Alice's address at the provider changes: she is still Alice.
    assert sso.user_for_claims(db, _claims("0042", "a.smith@elsewhere.example")) == alice
    # Someone else who now holds alice@plant.example at the provider is not.
    with pytest.raises(AuthenticationError, match="linked to another sign-on identity"):
        sso.user_for_claims(db, _claims("0099", "alice@plant.example"))
    # Nor is the same subject at another provider.
    other_idp = {**_claims("0042", "alice@plant.example"), "iss": "https://evil.example"}
    with pytest.raises(AuthenticationError, match="linked to another"):
        sso.user_for_claims(db, other_idp)
    assert _reasons(db) == ["sso account bound to another identity"] * 2


@pytest.mark.parametrize("verified", [False, "false", None, 1, "yes"])
def test_an_unverified_email_is_refused_and_binds_nothing(
    db: Database, alice: CurrentUser, verified: Any
) -> None:
    with pytest.raises(AuthenticationError, match="has not verified alice@plant.example"):
        sso.user_for_claims(db, _claims("0042", "alice@plant.example", verified))
    assert _reasons(db) == ["sso e-mail not verified"]
    with db.read() as session:
        assert users.get_sso_identity_of(session, alice.id) is None  # type: ignore[arg-type]
    assert _audit(db, "login") == []


def test_verified_as_the_string_true_counts(db: Database, alice: CurrentUser) -> None:
    assert sso.user_for_claims(db, _claims("0042", "alice@plant.example", "True")) == alice


def test_a_provider_without_the_claim_can_be_trusted_by_setting(
    db: Database, alice: CurrentUser
) -> None:
    claims = _claims("0042", "alice@plant.example", verified=None)
    assert sso.user_for_claims(db, claims, require_email_verified=False) == alice
    # The binding still holds: after it, the e-mail plays no part.
    with pytest.raises(AuthenticationError, match="linked to another"):
        sso.user_for_claims(db, _claims("7", "alice@plant.example"), require_email_verified=False)


@pytest.mark.parametrize(
    "claims, reason",
    [
        ({"email": "alice@plant.example", "email_verified": True}, "sso claims without iss or sub"),
        (
            {"iss": ISSUER, "sub": " ", "email": "alice@plant.example"},
            "sso claims without iss or sub",
        ),
        ({"iss": ISSUER, "sub": "1", "email_verified": True}, "sso claims without e-mail"),
        (_claims("1", "stranger@plant.example"), "sso user unknown or inactive"),
    ],
)
def test_incomplete_claims_and_strangers_are_refused_and_audited(
    db: Database, alice: CurrentUser, claims: dict[str, Any], reason: str
) -> None:
    with pytest.raises(AuthenticationError, match="ask an administrator"):
        sso.user_for_claims(db, claims)
    assert _reasons(db) == [reason]


def test_a_deactivated_account_is_refused_even_when_bound(db: Database, alice: CurrentUser) -> None:
    sso.user_for_claims(db, _claims("0042", "alice@plant.example"))
    accounts.set_active(db, permissions.SYSTEM, alice.id, False)  # type: ignore[arg-type]
    with pytest.raises(AuthenticationError, match="inactive"):
        sso.user_for_claims(db, _claims("0042", "alice@plant.example"))
    assert _reasons(db) == ["sso user inactive"]


def test_changing_the_email_unlinks_so_the_next_login_binds_anew(
    db: Database, alice: CurrentUser
) -> None:
    sso.user_for_claims(db, _claims("0042", "alice@plant.example"))
    accounts.set_email(db, permissions.SYSTEM, alice.id, "alice.new@plant.example")  # type: ignore[arg-type]
    (changed,) = _audit(db, "user_email_changed")
    assert changed.details["sso_unlinked"] == {"issuer": ISSUER, "subject": "0042"}
    # The old subject no longer opens the account ...
    with pytest.raises(AuthenticationError):
        sso.user_for_claims(db, _claims("0042", "alice@plant.example"))
    # ... and the new address binds its own.
    assert sso.user_for_claims(db, _claims("0777", "alice.new@plant.example")) == alice
    # The same address again (case only) keeps the binding.
    accounts.set_email(db, permissions.SYSTEM, alice.id, "Alice.New@plant.example")  # type: ignore[arg-type]
    assert sso.user_for_claims(db, _claims("0777", "x@y.example")) == alice
