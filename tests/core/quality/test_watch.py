"""Folder watcher: each file once, only when stable, moved with a reason, safe across restarts."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.auth import permissions
from core.config import Settings
from core.quality import ingest, inspections, watch
from core.quality.ingest import Traceability
from core.quality.watch import INFLIGHT, FolderWatcher
from db.engine import Database
from db.models import Inspection
from tests.core.inspection_support import Active, png, register_active_model


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "camera"
    path.mkdir()
    return path


def _inspections(db: Database) -> int:
    with db.read() as s:
        return s.scalar(select(func.count(Inspection.id))) or 0


def _watcher(db: Database, settings: Settings, folder: Path, active: Active) -> FolderWatcher:
    return FolderWatcher(
        db, settings, permissions.SYSTEM, folder, Traceability(line="L1"), classifier=active
    )


def test_new_files_are_processed_once_and_moved(
    db: Database, settings: Settings, folder: Path, active: Active
) -> None:
    w = _watcher(db, settings, folder, active)
    (folder / "a.png").write_bytes(png(1))
    (folder / "bad.png").write_bytes(b"not an image at all")
    (folder / ".hidden.png").write_bytes(png(2))
    (folder / "writing.png.part").write_bytes(png(3))
    assert w.poll() is None  # first sight: not yet known to be complete
    result = w.poll()
    assert result is not None
    assert [r.source_name for r in result.processed] == ["a.png"]
    assert result.processed[0].line == "L1"
    assert [r.file for r in result.rejected] == ["bad.png"]

    assert (folder / "processed" / "a.png").read_bytes() == png(1)
    assert (folder / "rejected" / "bad.png").exists()
    reason = (folder / "rejected" / "bad.png.reason.txt").read_text()
    assert "not an image" in reason
    assert not (folder / "a.png").exists() and not (folder / "bad.png").exists()
    assert (folder / ".hidden.png").exists() and (folder / "writing.png.part").exists()
    assert list((folder / INFLIGHT).iterdir()) == []

    for _ in range(3):
        assert w.poll() is None
    assert _inspections(db) == 1
    assert (w.summary.processed, w.summary.rejected) == (1, 1)


def test_a_file_still_growing_waits(
    db: Database, settings: Settings, folder: Path, active: Active
) -> None:
    w = _watcher(db, settings, folder, active)
    data = png(5, size=(200, 200))
    path = folder / "slow.png"
    path.write_bytes(data[:100])
    w.poll()
    path.write_bytes(data[:1000])
    assert w.poll() is None  # size changed since the last poll
    path.write_bytes(data)
    assert w.poll() is None
    result = w.poll()
    assert result is not None and len(result.processed) == 1
    assert result.rejected == []  # never ingested half-written


def test_names_never_collide_in_processed(
    db: Database, settings: Settings, folder: Path, active: Active
) -> None:
    w = _watcher(db, settings, folder, active)
    for seed in (1, 2):
        (folder / "same.png").write_bytes(png(seed))
        w.poll()
        w.poll()
    assert sorted(p.name for p in (folder / "processed").iterdir()) == ["same-1.png", "same.png"]
    assert _inspections(db) == 2


def test_restart_does_not_reingest_processed_files(
    db: Database, settings: Settings, folder: Path, active: Active
) -> None:
    w = _watcher(db, settings, folder, active)
    (folder / "a.png").write_bytes(png(1))
    w.poll()
    w.poll()
    restarted = _watcher(db, settings, folder, active)
    for _ in range(3):
        assert restarted.poll() is None
    assert _inspections(db) == 1


def test_crash_after_commit_before_move_is_not_ingested_twice(
    db: Database, settings: Settings, folder: Path, active: Active
) -> None:
    # Simulate the crash: the file sits in .inflight and its rows are already committed.
    inflight = folder / INFLIGHT
    inflight.mkdir()
    data = png(9)
    (inflight / "crashed.png").write_bytes(data)
    ingest.ingest(
        db, settings, permissions.SYSTEM, [("crashed.png", data)], Traceability(), classifier=active
    )
    # And one that crashed before its rows were written.
    (inflight / "unfinished.png").write_bytes(png(10))

    w = _watcher(db, settings, folder, active)
    result = w.poll()
    assert result is None  # nothing new in the folder itself
    assert w.summary.recovered == 1 and w.summary.processed == 1
    assert _inspections(db) == 2  # crashed.png once, unfinished.png once
    assert sorted(p.name for p in (folder / "processed").iterdir()) == [
        "crashed.png",
        "unfinished.png",
    ]
    assert list(inflight.iterdir()) == []


def test_same_image_dropped_again_later_is_a_new_inspection(
    db: Database, settings: Settings, folder: Path, active: Active
) -> None:
    w = _watcher(db, settings, folder, active)
    (folder / "part.png").write_bytes(png(1))
    w.poll()
    w.poll()
    time.sleep(0.01)
    (folder / "part.png").write_bytes(png(1))  # the camera photographs the part again
    w.poll()
    w.poll()
    assert _inspections(db) == 2


def test_run_stops_when_told(
    db: Database, settings: Settings, folder: Path, active: Active
) -> None:
    w = _watcher(db, settings, folder, active)
    stop = threading.Event()
    (folder / "a.png").write_bytes(png(1))
    thread = threading.Thread(target=w.run, args=(stop.is_set, 0.05))
    thread.start()
    deadline = time.monotonic() + 20
    while _inspections(db) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert w.summary.processed == 1


def test_watcher_picks_up_a_newly_promoted_model(
    db: Database, settings: Settings, folder: Path
) -> None:
    w = FolderWatcher(db, settings, permissions.SYSTEM, folder, Traceability())
    (folder / "a.png").write_bytes(png(1))
    w.poll()
    assert w.poll() is None  # no active model yet: the file waits where it is
    assert (folder / "a.png").exists()
    first = register_active_model(db, settings, seed=1)
    w.poll()
    assert w.summary.processed == 1
    second = register_active_model(db, settings, seed=2)
    (folder / "b.png").write_bytes(png(2))
    w.poll()
    w.poll()
    models = [r.model_id for r in inspections.list_inspections(db, permissions.SYSTEM)]
    assert models == [second.id, first.id]
    assert not os.listdir(folder / INFLIGHT)


def test_a_file_swapped_for_a_symlink_after_the_check_is_not_followed(
    db: Database, settings: Settings, folder: Path, active: Active, tmp_path: Path, monkeypatch
) -> None:
    # The window the watcher cannot close by checking: the file passed the symlink check on both
    # polls and is swapped for a link to another user's image just before it is taken.
    secret = tmp_path / "elsewhere" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes(png(5))
    (folder / "part.png").write_bytes(png(1))
    real_target = watch._unique_target

    def swap_then_target(where: Path, name: str) -> Path:
        if where.name == INFLIGHT and name == "part.png":
            (folder / name).unlink()
            (folder / name).symlink_to(secret)
        return real_target(where, name)

    monkeypatch.setattr(watch, "_unique_target", swap_then_target)
    w = _watcher(db, settings, folder, active)
    w.poll()
    result = w.poll()
    assert result is not None and result.processed == []
    assert [(r.file, r.reason) for r in result.rejected] == [
        ("part.png", "is a symbolic link, not followed")
    ]
    assert _inspections(db) == 0
    assert (folder / "rejected" / "part.png").is_symlink()
    assert "symbolic link" in (folder / "rejected" / "part.png.reason.txt").read_text()


def test_a_symlink_left_in_inflight_is_rejected_on_recovery(
    db: Database, settings: Settings, folder: Path, active: Active, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(png(6))
    (folder / INFLIGHT).mkdir()
    (folder / INFLIGHT / "left.png").symlink_to(secret)
    (folder / INFLIGHT / "fifo.png").unlink(missing_ok=True)
    os.mkfifo(folder / INFLIGHT / "fifo.png")  # would hang a plain open()
    w = _watcher(db, settings, folder, active)
    w.poll()
    assert _inspections(db) == 0
    assert sorted(p.name for p in (folder / "rejected").iterdir()) == [
        "fifo.png",
        "fifo.png.reason.txt",
        "left.png",
        "left.png.reason.txt",
    ]
    assert "not a regular file" in (folder / "rejected" / "fifo.png.reason.txt").read_text()
    assert list((folder / INFLIGHT).iterdir()) == []
