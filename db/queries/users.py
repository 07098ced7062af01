"""Users: look-ups by name and e-mail, listing and counting. Callers own the transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import User


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
