"""The content-addressed image store under ``settings.images_dir``.

An image is stored at ``<sha[:2]>/<sha>.<ext>`` and a Grad-CAM map at
``heatmaps/<sha[:2]>/<sha>.png``, the SHA-256 being that of the stored bytes: a path never comes
from a user's or camera's file name, and the same bytes are stored once. Files are written
durably (temp name, fsync, ``os.replace``, then the folders fsynced) before any row points at
them, so a crash can at worst leave an unreferenced file, which ``sweep_orphans`` removes once
it is older than a grace period.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

from core.config import Settings
from core.errors import NotFound
from core.files import fsync_dir, write_atomic
from core.vision import images
from db.engine import Database
from db.queries import images as image_queries

HEATMAPS_DIR = "heatmaps"
ORPHAN_GRACE_S = 3600.0


def image_path(sha: str, fmt: str) -> str:
    """The store path of an image with this content hash and decoded format."""
    return f"{sha[:2]}/{sha}.{images.FORMAT_EXTENSIONS.get(fmt, 'bin')}"


def heatmap_path(sha: str) -> str:
    """The store path of a Grad-CAM map PNG with this content hash."""
    return f"{HEATMAPS_DIR}/{sha[:2]}/{sha}.png"


def _store_file(root: Path, rel: str, data: bytes, created: list[Path]) -> Path:
    """Write content-addressed bytes once (temp, fsync, replace); returns the folder touched."""
    path = root / rel
    folder = path.parent
    try:
        if path.stat().st_size == len(data):
            # Already there: refresh its time so the orphan sweep's grace period starts over
            # (a row is about to point at it).
            os.utime(path)
            return folder
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, sync_dir=False)
    created.append(path)
    return folder


def store_all(settings: Settings, files: dict[str, bytes], pool: ThreadPoolExecutor) -> None:
    """Write every (store path -> bytes) durably, renames included, before any row exists.

    When a write fails (a full disk) the files this call created are removed before the error
    goes on: no row will point at them, and a full disk gets its space back at once.
    """
    root = settings.images_dir
    created: list[Path] = []  # list.append is atomic under the GIL
    writes = [pool.submit(_store_file, root, rel, data, created) for rel, data in files.items()]
    try:
        folders = {w.result() for w in writes}
        list(pool.map(fsync_dir, folders))
    except BaseException:
        # Writes already running finish before the cleanup (a file they create after it would
        # stay behind); the ones not started yet never start.
        for w in writes:
            w.cancel()
        wait(writes)
        for path in created:
            path.unlink(missing_ok=True)
        raise


def read_stored(settings: Settings, rel: str, what: str) -> bytes:
    """The bytes of a stored file; NotFound when it is missing or outside the store."""
    root = settings.images_dir.resolve()
    path = (root / rel).resolve()
    if root not in path.parents:  # stored paths are ours, but never trust a row blindly
        raise NotFound(f"{what} path {rel!r} is outside the image store")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{what} file {rel} is missing from the image store") from None


def sweep_orphans(db: Database, settings: Settings, *, grace_s: float = ORPHAN_GRACE_S) -> int:
    """Delete stored image/heatmap files no row points at, older than grace_s; returns count.

    The grace period keeps files an ingest has written but not yet committed.
    """
    root = settings.images_dir
    if not root.is_dir():
        return 0
    with db.read() as session:
        used = image_queries.referenced_paths(session)
    cutoff = time.time() - grace_s
    removed = 0
    for dirpath, _dirs, names in os.walk(root):
        for fname in names:
            path = Path(dirpath) / fname
            rel = path.relative_to(root).as_posix()
            try:
                if rel in used or path.stat().st_mtime > cutoff:
                    continue
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
    return removed
