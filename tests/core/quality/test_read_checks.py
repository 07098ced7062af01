"""Core reads check the role as writes do (issue 12, hole 12): a part's image, heatmap and
review history are reviewers' reads, rules and jobs engineers'; a thumbnail also goes into the
PDF a viewer downloads."""

from __future__ import annotations

import pytest

from core.auth import permissions
from core.auth.permissions import CurrentUser
from core.config import Settings
from core.errors import PermissionDenied
from core.jobs import queue
from core.quality import flag_rules, ingest, inspections, review
from core.quality.ingest import Traceability
from db.engine import Database
from db.models import Role
from tests.core.inspection_support import Active, png


def _as(role: Role) -> CurrentUser:
    return CurrentUser(id=None, username=role.value, role=role)


@pytest.fixture
def part(db: Database, settings: Settings, active: Active):  # type: ignore[no-untyped-def]
    result = ingest.ingest(
        db, settings, permissions.SYSTEM, [("a.png", png(1))], Traceability(), classifier=active
    )
    return result.processed[0]


READS = {
    "image_bytes": lambda db, s, u, p: inspections.image_bytes(s, u, p),
    "heatmap_png": lambda db, s, u, p: inspections.heatmap_png(s, u, p),
    "review.history": lambda db, s, u, p: review.history(db, u, p.id),
    "review.class_names_for": lambda db, s, u, p: review.class_names_for(db, u, p.id),
    "thumbnail_png": lambda db, s, u, p: inspections.thumbnail_png(s, u, p),
    "get_inspection": lambda db, s, u, p: inspections.get_inspection(db, u, p.id),
    "flag_rules.rule_history": lambda db, s, u, p: flag_rules.rule_history(db, u, "pump"),
    "flag_rules.list_products": lambda db, s, u, p: flag_rules.list_products(db, u),
    "queue.list_jobs": lambda db, s, u, p: queue.list_jobs(db, u),
}
# The lowest role each read admits.
LOWEST = {
    "image_bytes": Role.REVIEWER,
    "heatmap_png": Role.REVIEWER,
    "review.history": Role.REVIEWER,
    "review.class_names_for": Role.REVIEWER,
    "thumbnail_png": Role.VIEWER,
    "get_inspection": Role.REVIEWER,
    "flag_rules.rule_history": Role.ENGINEER,
    "flag_rules.list_products": Role.ENGINEER,
    "queue.list_jobs": Role.ENGINEER,
}
ORDER = [Role.VIEWER, Role.REVIEWER, Role.ENGINEER, Role.ADMIN]


@pytest.mark.parametrize("read", sorted(READS))
def test_each_read_admits_its_roles_and_refuses_the_rest(
    db: Database,
    settings: Settings,
    part,
    read: str,  # type: ignore[no-untyped-def]
) -> None:
    for role in ORDER:
        allowed = ORDER.index(role) >= ORDER.index(LOWEST[read])
        if allowed:
            READS[read](db, settings, _as(role), part)
        else:
            with pytest.raises(PermissionDenied):
                READS[read](db, settings, _as(role), part)
