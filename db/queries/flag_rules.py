"""Flagging rules: the versions of each product's rule, with who set them. Callers own the
transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from db.models import FlagRule, User


@dataclass(frozen=True)
class FlagRuleRecord:
    """One version of a product's flagging rule (id None: the built-in fallback)."""

    id: int | None
    product: str
    version: int
    good_classes: list[str]
    min_confidence: float
    created_at: datetime | None
    created_by: str | None  # username


def to_flag_rule_record(row: FlagRule, username: str | None) -> FlagRuleRecord:
    """The record of a rule row, with the username of whoever set it."""
    return FlagRuleRecord(
        id=row.id,
        product=row.product,
        version=row.version,
        good_classes=[str(c) for c in row.good_classes],
        min_confidence=float(row.min_confidence),
        created_at=row.created_at,
        created_by=username,
    )


def _versions(product: str) -> Select[FlagRule, str]:
    return (
        select(FlagRule, User.username)
        .outerjoin(User, User.id == FlagRule.created_by)
        .where(FlagRule.product == product)
        .order_by(FlagRule.version.desc())
    )


def newest_rule(session: Session, product: str) -> FlagRuleRecord | None:
    """The newest version of the product's own rule, or None."""
    row = session.execute(_versions(product).limit(1)).first()
    return None if row is None else to_flag_rule_record(row[0], row[1])


def rule_versions(session: Session, product: str) -> list[FlagRuleRecord]:
    """Every version of the product's rule, newest first."""
    return [to_flag_rule_record(r, u) for r, u in session.execute(_versions(product)).all()]


def add_rule(
    session: Session,
    *,
    product: str,
    version: int,
    good_classes: Sequence[str],
    min_confidence: float,
    created_by: int | None,
    username: str | None,
) -> FlagRuleRecord:
    """Insert one rule version (its id assigned); a taken (product, version) raises
    IntegrityError at the flush."""
    row = FlagRule(
        product=product,
        version=version,
        good_classes=list(good_classes),
        min_confidence=min_confidence,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return to_flag_rule_record(row, username)


def rule_products(session: Session) -> list[str]:
    """Every product that has a rule of its own, in the order their first rule was set."""
    return list(
        session.scalars(
            select(FlagRule.product).group_by(FlagRule.product).order_by(func.min(FlagRule.id))
        ).all()
    )
