"""The permission matrix: which role may do which action, checked against DESIGN.md."""

from __future__ import annotations

import pytest

from core.auth import permissions
from core.auth.permissions import Action, CurrentUser
from core.errors import PermissionDenied, ValidationError
from db.models import Role

# Written out from DESIGN.md "Users and roles", not derived from core.auth.permissions, so a
# change to MIN_ROLE that contradicts the design fails here.
ALLOWED: dict[Action, set[Role]] = {
    Action.VIEW_TRENDS: {Role.VIEWER, Role.REVIEWER, Role.ENGINEER, Role.ADMIN},
    Action.DOWNLOAD_REPORTS: {Role.VIEWER, Role.REVIEWER, Role.ENGINEER, Role.ADMIN},
    Action.INSPECT: {Role.REVIEWER, Role.ENGINEER, Role.ADMIN},
    Action.REVIEW: {Role.REVIEWER, Role.ENGINEER, Role.ADMIN},
    Action.MANAGE_DATASETS: {Role.ENGINEER, Role.ADMIN},
    Action.TRAIN: {Role.ENGINEER, Role.ADMIN},
    Action.MANAGE_MODELS: {Role.ENGINEER, Role.ADMIN},
    Action.EDIT_FLAG_RULES: {Role.ENGINEER, Role.ADMIN},
    Action.FREEZE_SPC_BASELINE: {Role.ENGINEER, Role.ADMIN},
    Action.ANNOTATE_TRENDS: {Role.ENGINEER, Role.ADMIN},
    Action.MANAGE_USERS: {Role.ADMIN},
    Action.READ_AUDIT: {Role.ADMIN},
}


def test_every_action_has_a_minimum_role() -> None:
    assert set(permissions.MIN_ROLE) == set(Action)
    assert set(ALLOWED) == set(Action)


@pytest.mark.parametrize("action", list(Action), ids=str)
@pytest.mark.parametrize("role", list(Role), ids=str)
def test_permission_matrix(role: Role, action: Action) -> None:
    user = CurrentUser(id=1, username="u1", role=role)
    expected = role in ALLOWED[action]

    assert permissions.can(user, action) is expected
    if expected:
        permissions.require(user, action)
    else:
        with pytest.raises(PermissionDenied, match=action.value.replace("_", " ")):
            permissions.require(user, action)


def test_parse_role_is_case_insensitive_and_lists_the_roles() -> None:
    assert permissions.parse_role(" Engineer ") is Role.ENGINEER
    with pytest.raises(ValidationError, match="viewer, reviewer, engineer, admin"):
        permissions.parse_role("wizard")


def test_system_operator_acts_as_admin() -> None:
    assert permissions.SYSTEM.id is None and permissions.SYSTEM.role is Role.ADMIN
    assert all(permissions.can(permissions.SYSTEM, action) for action in Action)
