"""The image store: content-addressed paths, durable writes, safe reads, the orphan sweep."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from core.auth import permissions
from core.config import Settings
from core.errors import NotFound
from core.quality import image_store, ingest
from core.quality.ingest import Traceability
from db.engine import Database
from tests.core.inspection_support import Active, png


def test_paths_come_from_the_content_hash() -> None:
    sha = "ab" + "c" * 62
    assert image_store.image_path(sha, "PNG") == f"ab/{sha}.png"
    assert image_store.image_path(sha, "JPEG") == f"ab/{sha}.jpg"
    assert image_store.heatmap_path(sha) == f"heatmaps/ab/{sha}.png"


def test_store_all_writes_once_and_reads_back(settings: Settings) -> None:
    rel = "ab/" + "ab" + "0" * 62 + ".png"
    with ThreadPoolExecutor(max_workers=2) as pool:
        image_store.store_all(settings, {rel: b"first"}, pool)
        old = time.time() - 2 * image_store.ORPHAN_GRACE_S
        os.utime(settings.images_dir / rel, (old, old))
        image_store.store_all(settings, {rel: b"first"}, pool)
    assert image_store.read_stored(settings, rel, "image") == b"first"
    # Stored again: its time is refreshed, so the sweep's grace period starts over.
    assert (settings.images_dir / rel).stat().st_mtime > old + image_store.ORPHAN_GRACE_S
    assert not any(p.name.startswith(".") for p in (settings.images_dir / "ab").iterdir())


def test_a_failed_group_leaves_no_file_even_from_a_write_still_running(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One write fails (a full disk) while another is still running: that one finishes before
    the cleanup, so its file is removed too (CI caught one left behind on 2026-12-03)."""
    slow, failing = "aa/" + "a" * 64 + ".png", "bb/" + "b" * 64 + ".png"
    real_write = image_store.write_atomic

    def write(path, data, *, sync_dir=True):  # type: ignore[no-untyped-def]
        if path.name.startswith("b"):
            raise OSError(28, "No space left on device")
        time.sleep(0.5)  # still writing when the other write has failed
        real_write(path, data, sync_dir=sync_dir)

    monkeypatch.setattr(image_store, "write_atomic", write)
    with ThreadPoolExecutor(max_workers=2) as pool, pytest.raises(OSError):
        image_store.store_all(settings, {failing: b"fails", slow: b"slow"}, pool)
    assert not [p for p in settings.images_dir.rglob("*") if p.is_file()]


def test_reads_stay_inside_the_store(settings: Settings) -> None:
    settings.images_dir.mkdir(parents=True, exist_ok=True)
    (settings.images_dir.parent / "secret.txt").write_bytes(b"not yours")
    with pytest.raises(NotFound, match="outside the image store"):
        image_store.read_stored(settings, "../secret.txt", "image")
    with pytest.raises(NotFound, match="missing"):
        image_store.read_stored(settings, "ab/none.png", "image")


def test_sweep_removes_only_old_unreferenced_files(
    db: Database, settings: Settings, active: Active
) -> None:
    rec = ingest.ingest(
        db, settings, permissions.SYSTEM, [("a.png", png(1))], Traceability(), classifier=active
    ).processed[0]
    orphan = settings.images_dir / "ab" / ("ab" + "0" * 62 + ".png")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"left by a crash")
    fresh = settings.images_dir / "cd" / ("cd" + "0" * 62 + ".png")
    fresh.parent.mkdir(parents=True, exist_ok=True)
    fresh.write_bytes(b"being ingested right now")
    old = time.time() - 2 * image_store.ORPHAN_GRACE_S
    os.utime(orphan, (old, old))
    referenced = settings.images_dir / str(rec.image_path)
    os.utime(referenced, (old, old))

    assert image_store.sweep_orphans(db, settings) == 1
    assert not orphan.exists() and fresh.exists() and referenced.exists()
