"""Datasets as the product records them: import (CLI path, browser upload, server folder) and
register, and load a registered dataset's snapshot. Permission checks happen here."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.datasets import importer
from core.datasets.snapshot import DatasetSnapshot, load_snapshot
from core.errors import DatasetError
from core.registry import catalog
from db.engine import Database
from db.queries.catalog import DatasetRecord


def import_dataset(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    source: Path,
    name: str,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    split_file: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    source_label: str | None = None,
) -> tuple[DatasetRecord, DatasetSnapshot, bool]:
    """Import a folder or zip into a snapshot and record it; (record, snapshot, created)."""
    require(actor, Action.MANAGE_DATASETS)
    snap = importer.import_dataset(
        source,
        name,
        settings,
        val_fraction=val_fraction,
        seed=seed,
        split_file=split_file,
        on_progress=on_progress,
    )
    record, created = catalog.register_dataset(
        db,
        actor,
        name=name,
        source=source_label or str(source),
        class_names=list(snap.class_names),
        counts=dict(snap.counts),
        manifest_path=snap.manifest_path,
        content_hash=snap.content_hash,
        health=snap.health.to_dict(),
    )
    return record, snap, created


def load_dataset(
    db: Database, actor: CurrentUser, dataset_id: int
) -> tuple[DatasetRecord, DatasetSnapshot]:
    """A registered dataset and its snapshot; DatasetError when its files are gone.

    Engineers and up (MANAGE_DATASETS, as catalog.get_dataset): the training run passes the
    job's actor, the CLI passes SYSTEM, and scoring, the threshold curve and from_reviews pass
    the user they already checked.
    """
    require(actor, Action.MANAGE_DATASETS)
    record = catalog.get_dataset(db, actor, dataset_id)
    if not record.snapshot_dir.exists():
        raise DatasetError(
            f"dataset {dataset_id} ({record.name}): snapshot folder "
            f"{record.snapshot_dir} is missing"
        )
    return record, load_snapshot(record.snapshot_dir)


def import_upload(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    data: bytes,
    filename: str,
    name: str,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[DatasetRecord, DatasetSnapshot, bool]:
    """Import a zip uploaded through the browser (the file name is display text only)."""
    require(actor, Action.MANAGE_DATASETS)
    if len(data) > settings.max_upload_mb * 1024 * 1024:
        raise DatasetError(f"{filename}: larger than the {settings.max_upload_mb} MB upload limit")
    settings.home.mkdir(parents=True, exist_ok=True)
    # The temp name is ours; the uploaded name never becomes part of a path.
    with tempfile.NamedTemporaryFile(suffix=".zip", dir=settings.home, delete=True) as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            return import_dataset(
                db,
                settings,
                actor,
                Path(tmp.name),
                name,
                val_fraction=val_fraction,
                seed=seed,
                source_label=f"upload: {filename}",
            )
        except DatasetError as e:
            raise DatasetError(str(e).replace(tmp.name, filename)) from None


def import_server_folder(
    db: Database, settings: Settings, actor: CurrentUser, folder: str, name: str
) -> tuple[DatasetRecord, DatasetSnapshot, bool]:
    """Import a folder that already lies on the server, named by an engineer in the browser."""
    require(actor, Action.MANAGE_DATASETS)
    text = folder.strip()
    if not text:
        raise DatasetError("give the folder's path on the server")
    path = Path(text).expanduser()
    if not path.is_absolute():
        raise DatasetError(f"{text}: give an absolute path (it is read on the server)")
    # Symlinks followed before the check, and the check before any look at the folder itself,
    # so the answer for a path outside the roots says nothing about what lies there.
    real = path.resolve()
    roots = [r.resolve() for r in settings.import_dirs]
    if not any(real == r or r in real.parents for r in roots):
        allowed = ", ".join(str(r) for r in settings.import_dirs)
        raise DatasetError(
            f"{text}: outside the folders the server imports from ({allowed}); copy the dataset "
            "into one of them, or ask an administrator to add its folder to DEFECTLENS_IMPORT_ROOTS"
        )
    if not real.is_dir():
        raise DatasetError(f"{text}: no such folder on the server")
    return import_dataset(db, settings, actor, real, name)
