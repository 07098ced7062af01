"""Core reads check the role as writes do (issue 12, hole 12): a part's image, heatmap and
review history are reviewers' reads, and so are the active model the Inspect page names and
the flagging rule ingest judges by; rules, the threshold curve, jobs, datasets (and their
snapshots), scoring a model and the model list are engineers'; the demo's counts are admins';
a thumbnail and the inspection list also go into the Trends page and the PDF a viewer
downloads."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from core.auth import permissions
from core.auth.permissions import Action, CurrentUser
from core.config import Settings
from core.datasets import service
from core.demo import remove as demo_remove
from core.errors import PermissionDenied
from core.jobs import queue
from core.quality import flag_rules, ingest, inspections, review
from core.quality.ingest import Traceability
from core.registry import catalog, compare
from core.training.config import TrainConfig
from db.engine import Database
from db.models import Role
from db.queries.catalog import DatasetRecord, ModelRecord
from db.queries.inspections import InspectionRecord
from tests.core.inspection_support import Active, png


def _as(role: Role) -> CurrentUser:
    return CurrentUser(id=None, username=role.value, role=role)


@dataclass(frozen=True)
class Subjects:
    """What the reads read: an inspected part, its model (also as trained on the dataset, with
    its classifier), a dataset and a queued job."""

    part: InspectionRecord
    model_id: int
    dataset_id: int
    job_id: int
    model: ModelRecord
    active: Active


@pytest.fixture
def x(db: Database, settings: Settings, active: Active, tiny_dataset: DatasetRecord) -> Subjects:
    result = ingest.ingest(
        db, settings, permissions.SYSTEM, [("a.png", png(1))], Traceability(), classifier=active
    )
    job = queue.submit_job(db, settings, permissions.SYSTEM, tiny_dataset.id, TrainConfig())
    model = replace(active[0], dataset_id=tiny_dataset.id)  # same classes: ok, scratch
    return Subjects(
        result.processed[0], active[0].id, tiny_dataset.id, job.id, model, (model, active[1])
    )


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
    "service.load_dataset": lambda db, s, u, x: service.load_dataset(db, u, x.dataset_id),
    "compare.score_model": lambda db, s, u, x: compare.score_model(db, s, u, x.model, x.dataset_id),
    "flag_rules.active_rule": lambda db, s, u, x: flag_rules.active_rule(db, u, "pump"),
    "flag_rules.threshold_curve": lambda db, s, u, x: flag_rules.threshold_curve(
        db, s, u, x.model, ["ok"], classifier=x.active[1]
    ),
    "demo_counts": lambda db, s, u, x: demo_remove.demo_counts(db, u),
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
    "service.load_dataset": Role.ENGINEER,
    "compare.score_model": Role.ENGINEER,
    "flag_rules.active_rule": Role.REVIEWER,  # ingest judges every part by it
    "flag_rules.threshold_curve": Role.ENGINEER,
    "demo_counts": Role.ADMIN,
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


# Reads that also go through another checked read (load_dataset's): raising every action would
# not notice their own check gone, so each is tried with only its own action raised.
OWN_ACTION = {
    "compare.score_model": Action.MANAGE_MODELS,
    "flag_rules.threshold_curve": Action.EDIT_FLAG_RULES,
    "service.load_dataset": Action.MANAGE_DATASETS,
}


@pytest.mark.parametrize("read", sorted(OWN_ACTION))
def test_each_read_checks_its_own_action(
    db: Database, settings: Settings, x: Subjects, read: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(permissions.MIN_ROLE, OWN_ACTION[read], Role.ADMIN)
    with pytest.raises(PermissionDenied, match=OWN_ACTION[read].value.replace("_", " ")):
        READS[read](db, settings, _as(Role.ENGINEER), x)
    READS[read](db, settings, _as(Role.ADMIN), x)
