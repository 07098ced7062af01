"""Accounts: argon2id passwords, login and user administration (single sign-on: core.auth.sso)."""

from __future__ import annotations

import functools
import re
import secrets
import time

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.orm import Session

from core.auth import sessions
from core.auth.audit import record_audit
from core.auth.permissions import Action, CurrentUser, parse_role, require
from core.errors import AuthenticationError, Conflict, NotFound, ValidationError
from db.engine import Database
from db.models import Role, User, utcnow
from db.queries import users
from db.queries.audit import add_audit
from db.queries.users import UserInfo, to_user_info

LOGIN_REFUSED = "Wrong username or password."
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$")
MIN_PASSWORD_LENGTH = 10


# argon2id with the library's RFC 9106 low-memory defaults.
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username does not exist, so both failures take the same time.

    Made on the first login of the process (whoever logs in), not at import: every CLI command
    and page imports this module, and one argon2 hash costs a noticeable fraction of a second.
    """
    return _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    """An argon2id hash of the password."""
    return _hasher.hash(password)


def generate_password() -> str:
    """A random password for a new or reset account (shown to the operator once)."""
    return secrets.token_urlsafe(15)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")


def _acting(user: User) -> CurrentUser:
    """The CurrentUser a logged-in (or refreshed) account acts as."""
    return CurrentUser(id=user.id, username=user.username, role=Role(user.role))


def record_login(session: Session, user: User, method: str | None = None) -> CurrentUser:
    """Stamp and audit a successful login (password or SSO) in the caller's transaction."""
    user.last_login_at = utcnow()
    add_audit(
        session,
        user_id=user.id,
        username=user.username,
        action="login",
        entity="user",
        entity_id=user.id,
        details={"method": method} if method else None,
    )
    return _acting(user)


def authenticate(
    db: Database, username: str, password: str, *, delay_s: float = 0.5
) -> CurrentUser:
    """Check a login. Wrong password, unknown and inactive users all get LOGIN_REFUSED."""
    with db.write() as session:
        user = users.get_user_by_name(session, username.strip())
        dummy = _dummy_hash()  # always: the first login pays it whether or not the user exists
        stored = user.password_hash if user is not None else dummy
        try:
            ok = _hasher.verify(stored, password) and user is not None and user.active
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
        if not ok or user is None:
            add_audit(
                session,
                user_id=user.id if user else None,
                username=username.strip()[:64],
                action="login_failed",
                entity="user",
                details={
                    "reason": "inactive"
                    if user is not None and not user.active
                    else "bad credentials"
                },
            )
        else:
            if _hasher.check_needs_rehash(user.password_hash):
                user.password_hash = _hasher.hash(password)
            return record_login(session, user)
    # Slow down guessing; the audit entry is already committed.
    time.sleep(delay_s)
    raise AuthenticationError(LOGIN_REFUSED)


def record_logout(db: Database, user: CurrentUser) -> None:
    """Write the logout to the audit log."""
    with db.write() as session:
        add_audit(
            session,
            user_id=user.id,
            username=user.username,
            action="logout",
            entity="user",
            entity_id=user.id,
        )


def create_user(
    db: Database,
    actor: CurrentUser,
    username: str,
    role: Role | str,
    *,
    password: str | None = None,
    email: str | None = None,
) -> tuple[UserInfo, str]:
    """Add an account; returns it and its password (generated when none is given)."""
    require(actor, Action.MANAGE_USERS)
    username = username.strip()
    if not USERNAME_RE.match(username):
        raise ValidationError(
            f"username {username!r} must be 2-64 letters, digits, '.', '_', '-' or '@', "
            "starting with a letter or digit"
        )
    role = parse_role(role) if isinstance(role, str) else role
    if password is None:
        password = generate_password()
    _check_password(password)
    email = email.strip() or None if email else None
    with db.write() as session:
        if users.get_user_by_name(session, username) is not None:
            raise Conflict(f"user {username!r} already exists")
        if email and users.get_user_by_email(session, email) is not None:
            raise Conflict(f"e-mail {email!r} already belongs to another user")
        user = users.add_user(
            session,
            username=username,
            password_hash=hash_password(password),
            role=role,
            email=email,
        )
        record_audit(
            session,
            actor,
            action="user_created",
            entity="user",
            entity_id=user.id,
            details={"username": username, "role": role.value},
        )
        return to_user_info(user), password


def _get_user(session: Session, user_id: int) -> User:
    user = users.get_user(session, user_id)
    if user is None:
        raise NotFound(f"no user with id {user_id}")
    return user


def _ensure_an_admin_remains(session: Session, user: User) -> None:
    if users.count_other_active_admins(session, user.id) == 0:
        raise Conflict("this is the last active admin; make another admin first")


def set_role(db: Database, actor: CurrentUser, user_id: int, role: Role | str) -> UserInfo:
    """Change a user's role (admin only; the last active admin cannot be demoted)."""
    require(actor, Action.MANAGE_USERS)
    role = parse_role(role) if isinstance(role, str) else role
    with db.write() as session:
        user = _get_user(session, user_id)
        old = user.role
        if old == Role.ADMIN.value and role != Role.ADMIN:
            _ensure_an_admin_remains(session, user)
        user.role = role.value
        record_audit(
            session,
            actor,
            action="user_role_changed",
            entity="user",
            entity_id=user.id,
            details={"username": user.username, "from": old, "to": role.value},
        )
        return to_user_info(user)


def set_active(db: Database, actor: CurrentUser, user_id: int, active: bool) -> UserInfo:
    """Activate or deactivate an account (admin only; never the last active admin)."""
    require(actor, Action.MANAGE_USERS)
    with db.write() as session:
        user = _get_user(session, user_id)
        if not active and user.role == Role.ADMIN.value:
            _ensure_an_admin_remains(session, user)
        user.active = active
        if not active:
            sessions.end_user_sessions(session, user.id, "deactivated")
        record_audit(
            session,
            actor,
            action="user_activated" if active else "user_deactivated",
            entity="user",
            entity_id=user.id,
            details={"username": user.username},
        )
        return to_user_info(user)


def reset_password(
    db: Database, actor: CurrentUser, user_id: int, password: str | None = None
) -> str:
    """Set a new password (random when none is given) and return it (admin only)."""
    require(actor, Action.MANAGE_USERS)
    password = password or generate_password()
    _check_password(password)
    with db.write() as session:
        user = _get_user(session, user_id)
        user.password_hash = hash_password(password)
        # Whoever knew the old password is out, on every browser, at once.
        sessions.end_user_sessions(session, user.id, "password reset")
        record_audit(
            session,
            actor,
            action="password_reset",
            entity="user",
            entity_id=user.id,
            details={"username": user.username},
        )
    return password


def set_email(db: Database, actor: CurrentUser, user_id: int, email: str | None) -> UserInfo:
    """Set the e-mail used to map single sign-on to this account (admin only). A changed
    address also unlinks the account's SSO identity, so the next SSO login binds anew."""
    require(actor, Action.MANAGE_USERS)
    email = (email or "").strip() or None
    with db.write() as session:
        user = _get_user(session, user_id)
        if email:
            other = users.get_user_by_email(session, email)
            if other is not None and other.id != user.id:
                raise Conflict(f"e-mail {email!r} already belongs to {other.username}")
        details: dict[str, object] = {"username": user.username, "email": email}
        if (user.email or "").lower() != (email or "").lower():
            # The SSO binding was made through the old address: the next SSO login binds anew.
            unbound = users.unbind_sso_identity(session, user.id)
            if unbound is not None:
                details["sso_unlinked"] = {"issuer": unbound.issuer, "subject": unbound.subject}
        user.email = email
        record_audit(
            session,
            actor,
            action="user_email_changed",
            entity="user",
            entity_id=user.id,
            details=details,
        )
        return to_user_info(user)


def list_users(db: Database, actor: CurrentUser) -> list[UserInfo]:
    """Every account (admin only)."""
    require(actor, Action.MANAGE_USERS)
    with db.read() as session:
        return [to_user_info(u) for u in users.list_users(session)]


def has_users(db: Database) -> bool:
    """Whether any account exists yet (first start creates the admin)."""
    with db.read() as session:
        return users.count_users(session) > 0


def refresh(db: Database, user: CurrentUser) -> CurrentUser | None:
    """The user as the database has them now: None once deactivated or deleted.

    Pages call this on every run so a deactivation or role change takes effect at once,
    not at the next login.
    """
    if user.id is None:
        return user
    with db.read() as session:
        row = users.get_user(session, user.id)
        if row is None or not row.active:
            return None
        return _acting(row)
