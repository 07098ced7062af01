"""Dataset snapshots: immutable, content-addressed folders of files plus manifest and health.

A snapshot is assembled in a temp folder under ``settings.datasets_dir`` and moved into place
with one ``os.replace``, so a refused or failed import leaves nothing behind and a snapshot,
once there, is complete and never changes. Its folder name is a prefix of its content hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.datasets.health import HealthReport
from core.errors import DatasetError
from core.files import fsync_dir, write_atomic

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class ManifestEntry:
    """One image in a snapshot."""

    file: str  # path relative to the snapshot folder
    cls: str
    sha256: str
    split: str  # "train" | "val" | "test"
    width: int
    height: int
    mode: str
    source: str  # original relative path in the source (display text only)


@dataclass(frozen=True)
class DatasetSnapshot:
    """An imported dataset: a folder of files plus manifest.json and health.json."""

    content_hash: str
    name: str
    path: Path
    class_names: list[str]
    counts: dict[str, int]
    entries: list[ManifestEntry]
    health: HealthReport
    grayscale: bool

    @property
    def manifest_path(self) -> Path:
        """Where the manifest lives."""
        return self.path / "manifest.json"

    def split_entries(self, split: str) -> list[ManifestEntry]:
        """Entries of one split ("train", "val" or "test")."""
        return [e for e in self.entries if e.split == split]


def content_hash(entries: Sequence[ManifestEntry]) -> str:
    """Hash of what a model would see: each (class, image, split), order-independent."""
    h = hashlib.sha256(f"defectlens-dataset-v{MANIFEST_VERSION}\n".encode())
    for cls, sha, split in sorted((e.cls, e.sha256, e.split) for e in entries):
        h.update(f"{cls}\t{sha}\t{split}\n".encode())
    return h.hexdigest()


def _write_json(path: Path, obj: Any) -> None:
    write_atomic(
        path, json.dumps(obj, indent=1, ensure_ascii=False).encode("utf-8"), sync_dir=False
    )


def publish(
    tmp: Path,
    datasets_dir: Path,
    *,
    source: Path,
    name: str,
    counts: dict[str, int],
    entries: list[ManifestEntry],
    health: HealthReport,
    split_info: dict[str, Any],
) -> DatasetSnapshot:
    """Write manifest and health into tmp (which holds the files) and move it into place.

    counts holds the classes in order. The same content imported twice gives the existing
    snapshot back (tmp is then left for the caller to remove).
    """
    digest = content_hash(entries)
    final = datasets_dir / digest[:16]
    if final.exists():
        existing = load_snapshot(final)
        if existing.content_hash != digest:
            raise DatasetError(f"{final}: holds a different dataset (hash prefix collision)")
        log.info("dataset %s already imported as %s", source, final.name)
        return existing
    snapshot = DatasetSnapshot(
        content_hash=digest,
        name=name,
        path=final,
        class_names=list(counts),
        counts=counts,
        entries=entries,
        health=health,
        grayscale=health.grayscale,
    )
    _write_manifest(tmp, snapshot, source, split_info)
    try:
        os.replace(tmp, final)
    except OSError:
        # Another import of the same data won the race; theirs is identical.
        if (final / "manifest.json").exists():
            return load_snapshot(final)
        raise
    fsync_dir(datasets_dir)
    log.info(
        "imported %s as %s: %d images, %d classes", source, final.name, len(entries), len(counts)
    )
    return snapshot


def _write_manifest(
    folder: Path, snapshot: DatasetSnapshot, source: Path, split_info: dict[str, Any]
) -> None:
    manifest = {
        "version": MANIFEST_VERSION,
        "content_hash": snapshot.content_hash,
        "name": snapshot.name,
        "source": str(source),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "class_names": snapshot.class_names,
        "counts": snapshot.counts,
        "grayscale": snapshot.grayscale,
        "split": split_info,
        "entries": [asdict(e) for e in snapshot.entries],
    }
    _write_json(folder / "manifest.json", manifest)
    _write_json(folder / "health.json", snapshot.health.to_dict())
    fsync_dir(folder)


def load_snapshot(path: Path) -> DatasetSnapshot:
    """Read a snapshot folder (manifest.json + health.json) and check its files are there."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        health = HealthReport.from_dict(
            json.loads((path / "health.json").read_text(encoding="utf-8"))
        )
        entries = [ManifestEntry(**e) for e in manifest["entries"]]
    except FileNotFoundError as e:
        raise DatasetError(
            f"{path}: not a dataset snapshot ({Path(e.filename or '').name} missing)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{path}: damaged snapshot ({e})") from None
    if content_hash(entries) != manifest.get("content_hash"):
        raise DatasetError(f"{path}: manifest does not match its content hash")
    missing = [e.file for e in entries if not (path / e.file).is_file()]
    if missing:
        raise DatasetError(f"{path}: {len(missing)} files missing, e.g. {missing[0]}")
    return DatasetSnapshot(
        content_hash=manifest["content_hash"],
        name=manifest["name"],
        path=path,
        class_names=list(manifest["class_names"]),
        counts={str(k): int(v) for k, v in manifest["counts"].items()},
        entries=entries,
        health=health,
        grayscale=bool(manifest["grayscale"]),
    )
