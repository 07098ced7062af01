"""Roles and permissions: who may do what, checked in core for every action, not only in pages."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from core.errors import PermissionDenied, ValidationError
from db.models import Role

ROLES: tuple[Role, ...] = (Role.VIEWER, Role.REVIEWER, Role.ENGINEER, Role.ADMIN)
_RANK = {role: rank for rank, role in enumerate(ROLES)}


class Action(enum.StrEnum):
    """Everything a user can do that needs a permission."""

    VIEW_TRENDS = "view_trends"
    DOWNLOAD_REPORTS = "download_reports"
    INSPECT = "inspect"
    REVIEW = "review"
    MANAGE_DATASETS = "manage_datasets"
    TRAIN = "train"
    MANAGE_MODELS = "manage_models"
    EDIT_FLAG_RULES = "edit_flag_rules"
    FREEZE_SPC_BASELINE = "freeze_spc_baseline"
    ANNOTATE_TRENDS = "annotate_trends"
    MANAGE_USERS = "manage_users"
    READ_AUDIT = "read_audit"


MIN_ROLE: dict[Action, Role] = {
    Action.VIEW_TRENDS: Role.VIEWER,
    Action.DOWNLOAD_REPORTS: Role.VIEWER,
    Action.INSPECT: Role.REVIEWER,
    Action.REVIEW: Role.REVIEWER,
    Action.MANAGE_DATASETS: Role.ENGINEER,
    Action.TRAIN: Role.ENGINEER,
    Action.MANAGE_MODELS: Role.ENGINEER,
    Action.EDIT_FLAG_RULES: Role.ENGINEER,
    Action.FREEZE_SPC_BASELINE: Role.ENGINEER,
    Action.ANNOTATE_TRENDS: Role.ENGINEER,
    Action.MANAGE_USERS: Role.ADMIN,
    Action.READ_AUDIT: Role.ADMIN,
}


@dataclass(frozen=True)
class CurrentUser:
    """Who is acting. id is None only for the local operator at the command line."""

    id: int | None
    username: str
    role: Role


# The operator at the server's shell (CLI): already has the machine, so acts as admin.
SYSTEM = CurrentUser(id=None, username="system", role=Role.ADMIN)


def parse_role(value: str) -> Role:
    """A Role from its name, or ValidationError listing the roles."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        names = ", ".join(r.value for r in ROLES)
        raise ValidationError(f"unknown role {value!r}; choose one of {names}") from None


def can(user: CurrentUser, action: Action) -> bool:
    """Whether the user's role allows the action."""
    return _RANK[user.role] >= _RANK[MIN_ROLE[action]]


def require(user: CurrentUser, action: Action) -> None:
    """Raise PermissionDenied unless the user's role allows the action."""
    if not can(user, action):
        need = MIN_ROLE[action].value
        raise PermissionDenied(
            f"{user.username} ({user.role.value}) may not {action.value.replace('_', ' ')}; "
            f"needs {need} or above"
        )
