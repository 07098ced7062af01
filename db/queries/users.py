"""Users: the account record, look-ups, insert, listing and counting. Callers own the
transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import Role, SsoIdentity, User


@dataclass(frozen=True)
class UserInfo:
    """A user account as pages and the CLI show it (never the hash)."""

    id: int
    username: str
    email: str | None
    role: Role
    active: bool
    created_at: datetime
    last_login_at: datetime | None


def to_user_info(user: User) -> UserInfo:
    """The record of a user row."""
    return UserInfo(
        id=user.id,
        username=user.username,
        email=user.email,
        role=Role(user.role),
        active=user.active,
        created_at=user.created_at,
        last_login_at=user.last_login_at,
    )


def get_user(session: Session, user_id: int) -> User | None:
    """The user with this id, or None."""
    return session.get(User, user_id)


def get_user_by_name(session: Session, username: str) -> User | None:
    """The user with this username (case-insensitive), or None."""
    return session.scalar(select(User).where(func.lower(User.username) == username.lower()))


def get_user_by_email(session: Session, email: str) -> User | None:
    """The user with this e-mail address (case-insensitive), or None."""
    return session.scalar(select(User).where(func.lower(User.email) == email.lower()))


def list_users(session: Session) -> Sequence[User]:
    """Every user, by username."""
    return session.scalars(select(User).order_by(User.username)).all()


def count_users(session: Session) -> int:
    """How many user accounts exist."""
    return session.scalar(select(func.count(User.id))) or 0


def add_user(
    session: Session, *, username: str, password_hash: str, role: Role, email: str | None
) -> User:
    """Insert an active account in the caller's transaction; flushed, so it has its id."""
    user = User(
        username=username, password_hash=password_hash, role=role.value, email=email, active=True
    )
    session.add(user)
    session.flush()
    return user


def count_other_active_admins(session: Session, user_id: int) -> int:
    """How many active admins there are besides this user."""
    return (
        session.scalar(
            select(func.count(User.id)).where(
                User.role == Role.ADMIN.value, User.active.is_(True), User.id != user_id
            )
        )
        or 0
    )


def get_sso_identity(session: Session, issuer: str, subject: str) -> SsoIdentity | None:
    """The SSO identity with this provider and subject, or None."""
    return session.scalar(
        select(SsoIdentity).where(SsoIdentity.issuer == issuer, SsoIdentity.subject == subject)
    )


def get_sso_identity_of(session: Session, user_id: int) -> SsoIdentity | None:
    """The SSO identity this user is bound to, or None."""
    return session.scalar(select(SsoIdentity).where(SsoIdentity.user_id == user_id))


def bind_sso_identity(session: Session, user_id: int, issuer: str, subject: str) -> SsoIdentity:
    """Bind the user to a provider's subject (the caller checked neither is bound yet)."""
    row = SsoIdentity(user_id=user_id, issuer=issuer, subject=subject)
    session.add(row)
    session.flush()
    return row


def unbind_sso_identity(session: Session, user_id: int) -> SsoIdentity | None:
    """Remove the user's SSO binding; the removed row, or None when there was none."""
    row = get_sso_identity_of(session, user_id)
    if row is not None:
        session.delete(row)
        session.flush()
    return row
