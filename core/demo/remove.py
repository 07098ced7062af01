"""Take the demo out again: every row `defectlens demo` marked, with its files, in one
transaction (the rollup loses exactly the demo parts' counts), leaving real data untouched. A
demo model or dataset that real rows still use (parts inspected by the demo model after real
images arrived, a job on the demo dataset) stays, and the result says so."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from core.auth.audit import record_audit
from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.demo import status
from core.quality import rollup
from db.engine import Database
from db.queries import demo as demo_queries
from db.queries import rollups


@dataclass(frozen=True)
class Removed:
    """What the removal took out, and the demo rows it had to keep."""

    removed: dict[str, int]
    kept: dict[str, int]
    files: int


def demo_counts(db: Database, actor: CurrentUser) -> dict[str, int]:
    """How many demo rows there are, per table (all zero: no demo; admin only, as remove_demo)."""
    require(actor, Action.MANAGE_USERS)
    with db.read() as session:
        return demo_queries.counts(session)


def remove_demo(db: Database, settings: Settings, actor: CurrentUser) -> Removed:
    """Delete all demo data and its files (admin only; audited)."""
    require(actor, Action.MANAGE_USERS)
    with db.write() as session:
        before = demo_queries.counts(session)
        ids = demo_queries.demo_inspection_ids(session)
        cells = rollups.cells_of_parts(session, ids, rollup.FALLBACK)
        rollups.apply(session, rollups.moved(cells, {}))
        files = demo_queries.delete_demo(session, ids)
        kept = {k: v for k, v in demo_queries.counts(session).items() if v}
        removed = {k: before[k] - kept.get(k, 0) for k in before}
        record_audit(session, actor, action="demo_removed", entity="demo",
                     details={"removed": removed, "kept": kept})  # fmt: skip
    # Files go after the commit: a failed transaction must not leave rows without files.
    count = _delete_files(settings, files)
    if not kept:
        shutil.rmtree(settings.home / "demo", ignore_errors=True)
        status.clear(settings)
    return Removed(removed=removed, kept=kept, files=count)


def _delete_files(settings: Settings, files: demo_queries.DemoFiles) -> int:
    count = 0
    for rel in [*files.images, *files.heatmaps]:
        path = settings.images_dir / rel
        if path.is_file():
            path.unlink()
            count += 1
    for artifact in files.model_artifacts:
        count += _remove_tree(Path(artifact).parent, settings.models_dir)
    for manifest in files.dataset_manifests:
        count += _remove_tree(Path(manifest).parent, settings.datasets_dir)
    return count


def _remove_tree(folder: Path, inside: Path) -> int:
    """Delete a model's or dataset's folder, only ever below its store (never above it)."""
    folder, inside = folder.resolve(), inside.resolve()
    if folder == inside or inside not in folder.parents or not folder.is_dir():
        return 0
    shutil.rmtree(folder)
    return 1
