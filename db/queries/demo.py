"""Demo data: mark what `defectlens demo` created, count it, and take it out again, leaving
every real row untouched. Callers own the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from db.models import (
    Annotation,
    AuditEntry,
    Dataset,
    FlagRule,
    Image,
    Inspection,
    Model,
    Review,
    SpcBaseline,
    TrainingJob,
    User,
)

MARKED: dict[str, Any] = {"datasets": Dataset, "models": Model, "users": User,
                          "annotations": Annotation}  # fmt: skip


@dataclass(frozen=True)
class DemoFiles:
    """What removing the demo rows freed on disk: paths as stored (images relative)."""

    images: list[str]
    heatmaps: list[str]
    model_artifacts: list[str]
    dataset_manifests: list[str]


def mark(session: Session, table: str, ids: Sequence[int]) -> None:
    """Mark rows of one of MARKED's tables as demo data."""
    model = MARKED[table]
    session.execute(update(model).where(model.id.in_(ids)).values(is_demo=True))


def counts(session: Session) -> dict[str, int]:
    """How many demo rows each marked table (and inspections) holds."""
    out = {name: int(session.scalar(select(func.count()).select_from(m).where(m.is_demo)) or 0)
           for name, m in MARKED.items()}  # fmt: skip
    out["inspections"] = int(
        session.scalar(select(func.count()).select_from(Inspection).where(Inspection.is_demo)) or 0
    )
    out["baselines"] = int(session.scalar(select(func.count()).select_from(SpcBaseline).where(
        SpcBaseline.created_by.in_(_demo_users()))) or 0)  # fmt: skip
    return out


def _demo_users() -> Any:
    """The ids of demo users, as a subquery (limits the demo's engineer froze are demo data)."""
    return select(User.id).where(User.is_demo)


def demo_inspection_ids(session: Session) -> list[int]:
    """Every demo inspection's id."""
    return list(session.scalars(select(Inspection.id).where(Inspection.is_demo)))


def delete_demo(session: Session, inspection_ids: Sequence[int]) -> DemoFiles:
    """Delete the demo inspections (given) with their reviews, then every demo model, dataset,
    annotation, the limits demo users froze, and every demo user nothing real still points at;
    the files they leave behind."""
    heatmaps: list[str] = []
    image_ids: set[int] = set()
    for start in range(0, len(inspection_ids), 500):
        chunk = list(inspection_ids[start : start + 500])
        rows = session.execute(
            select(Inspection.image_id, Inspection.heatmap_path).where(Inspection.id.in_(chunk))
        ).all()
        image_ids.update(i for i, _ in rows if i is not None)
        heatmaps.extend(h for _, h in rows if h)
        session.execute(delete(Review).where(Review.inspection_id.in_(chunk)))
        session.execute(delete(Inspection).where(Inspection.id.in_(chunk)))
    images = _unreferenced_images(session, image_ids)
    models = _free(session, Model, [Inspection.model_id])
    artifacts = list(session.scalars(select(Model.artifact_path).where(Model.id.in_(models))))
    session.execute(delete(Model).where(Model.id.in_(models)))
    datasets = _free(session, Dataset, [Model.dataset_id, TrainingJob.dataset_id])
    manifests = list(session.scalars(select(Dataset.manifest_path).where(Dataset.id.in_(datasets))))
    session.execute(delete(Dataset).where(Dataset.id.in_(datasets)))
    session.execute(delete(Annotation).where(Annotation.is_demo))
    session.execute(delete(SpcBaseline).where(SpcBaseline.created_by.in_(_demo_users())))
    users = _free(session, User, [Review.reviewer_id, Model.promoted_by, Annotation.created_by,
                                  FlagRule.created_by, TrainingJob.created_by,
                                  SpcBaseline.retired_by])  # fmt: skip
    # The audit trail keeps what demo users did, by name; only the link to the row goes.
    session.execute(update(AuditEntry).where(AuditEntry.user_id.in_(users)).values(user_id=None))
    session.execute(delete(User).where(User.id.in_(users)))
    return DemoFiles(images, heatmaps, artifacts, manifests)


def _free(session: Session, model: Any, references: Sequence[Any]) -> list[int]:
    """Demo rows of ``model`` that no remaining row points at through ``references``."""
    ids: set[int] = set(session.scalars(select(model.id).where(model.is_demo)))
    for column in references:
        ids -= set(session.scalars(select(column).where(column.in_(ids)).distinct()))
    return sorted(ids)


def _unreferenced_images(session: Session, image_ids: set[int]) -> list[str]:
    """Delete the images no inspection uses any more; their stored paths."""
    ids = sorted(image_ids)
    still = set(session.scalars(select(Inspection.image_id).where(Inspection.image_id.in_(ids))))
    gone = [i for i in ids if i not in still]
    paths = list(session.scalars(select(Image.stored_path).where(Image.id.in_(gone))))
    session.execute(delete(Image).where(Image.id.in_(gone)))
    return paths
