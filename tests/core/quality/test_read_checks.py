"""Core reads check the role as writes do (issue 12, hole 12): a part's image, heatmap and
review history are reviewers' reads, and so is the active model the Inspect page names; rules,
jobs, datasets and the model list are engineers'; a thumbnail and the inspection list also go
into the Trends page and the PDF a viewer downloads."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from core.auth import permissions
from core.auth.permissions import Action, CurrentUser
from core.config import Settings
from core.errors import PermissionDenied
from core.jobs import queue
from core.quality import flag_rules, ingest, inspections, review
from core.quality.ingest import Traceability
from core.registry import catalog
from core.training.config import TrainConfig
from db.engine import Database
from db.models import Role
from db.queries.catalog import DatasetRecord
from db.queries.inspections import InspectionRecord
from tests.core.inspection_support import Active, png


def _as(role: Role) -> CurrentUser:
    return CurrentUser(id=None, username=role.value, role=role)


@dataclass(frozen=True)
class Subjects:
    """What the reads read: an inspected part, its model, a dataset and a queued job."""

    part: InspectionRecord
    model_id: int
    dataset_id: int
    job_id: int


@pytest.fixture
def x(db: Database, settings: Settings, active: Active, tiny_dataset: DatasetRecord) -> Subjects:
    result = ingest.ingest(
        db, settings, permissions.SYSTEM, [("a.png", png(1))], Traceability(), classifier=active
    )
    job = queue.submit_job(db, settings, permissions.SYSTEM, tiny_dataset.id, TrainConfig())
    return Subjects(result.processed[0], active[0].id, tiny_dataset.id, job.id)


READS = {
    "image_bytes": lambda db, s, u, x: inspections.image_bytes(s, u, x.part),
    "heatmap_png": lambda db, s, u, x: inspections.heatmap_png(s, u, x.part),
    "review.history": lambda db, s, u, x: review.history(db, u, x.part.id),
    "review.class_names_for": lambda db, s, u, x: review.class_names_for(db, u, x.part.id),
    "thumbnail_png": lambda db, s, u, x: inspections.thumbnail_png(s, u, x.part),
    "get_inspection": lambda db, s, u, x: inspections.get_inspection(db, u, x.part.id),
    "list_inspections": lambda db, s, u, x: inspections.list_inspections(db, u, flagged_only=True),
    "flag_rules.rule_history": lambda db, s, u, x: flag_rules.rule_history(db, u, "pump"),
    "flag_rules.list_products": lambda db, s, u, x: flag_rules.list_products(db, u),
    "queue.list_jobs": lambda db, s, u, x: queue.list_jobs(db, u),
    "queue.get_job": lambda db, s, u, x: queue.get_job(db, u, x.job_id),
    "queue.job_metrics": lambda db, s, u, x: queue.job_metrics(db, u, x.job_id),
    "catalog.get_model": lambda db, s, u, x: catalog.get_model(db, u, x.model_id),
    "catalog.get_model(active)": lambda db, s, u, x: catalog.get_model(db, u, "active"),
    "catalog.list_models": lambda db, s, u, x: catalog.list_models(db, u),
    "catalog.get_dataset": lambda db, s, u, x: catalog.get_dataset(db, u, x.dataset_id),
    "catalog.list_datasets": lambda db, s, u, x: catalog.list_datasets(db, u),
}
# The lowest role each read admits.
LOWEST = {
    "image_bytes": Role.REVIEWER,
    "heatmap_png": Role.REVIEWER,
    "review.history": Role.REVIEWER,
    "review.class_names_for": Role.REVIEWER,
    "thumbnail_png": Role.VIEWER,
    "get_inspection": Role.REVIEWER,
    "list_inspections": Role.VIEWER,  # the Trends page's recent flagged parts, and the PDF's
    "flag_rules.rule_history": Role.ENGINEER,
    "flag_rules.list_products": Role.ENGINEER,
    "queue.list_jobs": Role.ENGINEER,
    "queue.get_job": Role.ENGINEER,
    "queue.job_metrics": Role.ENGINEER,
    "catalog.get_model": Role.REVIEWER,  # the Inspect page names the active model
    "catalog.get_model(active)": Role.REVIEWER,
    "catalog.list_models": Role.ENGINEER,
    "catalog.get_dataset": Role.ENGINEER,
    "catalog.list_datasets": Role.ENGINEER,
}
ORDER = [Role.VIEWER, Role.REVIEWER, Role.ENGINEER, Role.ADMIN]


@pytest.mark.parametrize("read", sorted(READS))
def test_each_read_admits_its_roles_and_refuses_the_rest(
    db: Database, settings: Settings, x: Subjects, read: str
) -> None:
    for role in ORDER:
        allowed = ORDER.index(role) >= ORDER.index(LOWEST[read])
        if allowed:
            READS[read](db, settings, _as(role), x)
        else:
            with pytest.raises(PermissionDenied):
                READS[read](db, settings, _as(role), x)


@pytest.mark.parametrize("read", sorted(READS))
def test_each_read_asks_the_permission_matrix(
    db: Database, settings: Settings, x: Subjects, read: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every action raised to admin, even an engineer is refused: so a read whose lowest
    role is the viewer still fails this test when its check is removed."""
    for action in Action:
        monkeypatch.setitem(permissions.MIN_ROLE, action, Role.ADMIN)
    for role in (Role.VIEWER, Role.ENGINEER):
        with pytest.raises(PermissionDenied):
            READS[read](db, settings, _as(role), x)
    READS[read](db, settings, _as(Role.ADMIN), x)
