"""Faults of the machine under an ingest and a job: a full disk, a read-only data directory, a
database held by a long writer, no GPU (issue 12). Real `defectlens` processes; tmpfs mounts
make a real ENOSPC and a read-only bind mount a real EROFS, even for root (tests run as root)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from core import setup
from core.config import Settings, load_settings
from core.training.config import TrainConfig
from db.engine import Database
from db.models import Image, Inspection, JobStatus
from db.queries import jobs
from tests.core.inspection_support import png, register_active_model
from tests.core.jobs_support import import_tiny, start_worker

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-c", "from core.cli import main; main()"]


def _mount(target: Path, *args: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", *args, str(target)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here ({done.stderr.strip()})")


def _umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Settings, Database]]:
    settings = load_settings({"DEFECTLENS_HOME": str(tmp_path / "home")})
    setup.migrate(settings)
    db = setup.open_database(settings)
    register_active_model(db, settings)
    yield settings, db
    db.dispose()


def _folder(root: Path, n: int, seed: int, size: tuple[int, int] = (160, 160)) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (root / f"part{i:03d}.png").write_bytes(png(seed * 1000 + i, size))
    return root


def _ingest(settings: Settings, folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, DEFECTLENS_HOME=str(settings.home), DEFECTLENS_DB_URL=settings.db_url)
    full.update(env)
    return subprocess.run([*CLI, "ingest", str(folder), "--json"], env=full, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _counts(db: Database) -> tuple[int, int]:
    with db.read() as s:
        return (s.scalar(select(func.count(Inspection.id))) or 0,
                s.scalar(select(func.count(Image.id))) or 0)  # fmt: skip


def _files(settings: Settings) -> list[Path]:
    return [p for p in settings.images_dir.rglob("*") if p.is_file()]


def test_a_full_image_store_refuses_the_group_and_leaves_no_file_behind(home, tmp_path):
    settings, db = home
    folder = _folder(tmp_path / "in", 40, seed=1)  # about 1 MB of noise PNGs
    _mount(settings.images_dir, "-t", "tmpfs", "-o", "size=600k", "tmpfs")
    try:
        done = _ingest(settings, folder)
        assert done.returncode == 1, done.stderr
        assert done.stderr.startswith(f"error: could not store 40 images in {settings.images_dir}")
        assert "none was recorded: the disk is full" in done.stderr
        assert "Traceback" not in done.stderr and "OperationalError" not in done.stderr
        assert _counts(db) == (0, 0)
        assert _files(settings) == [], "the files of the refused group were removed again"
    finally:
        _umount(settings.images_dir)
    again = _ingest(settings, folder)  # with space again, the same files go in
    assert again.returncode == 0, again.stderr
    assert _counts(db) == (40, 40)


def test_a_full_database_disk_gives_a_clear_error_and_keeps_what_was_committed(
    tmp_path: Path,
) -> None:
    disk = tmp_path / "dbdisk"
    _mount(disk, "-t", "tmpfs", "-o", "size=2m", "tmpfs")
    try:
        url = f"sqlite:///{disk / 'db.sqlite'}"
        settings = load_settings({"DEFECTLENS_HOME": str(tmp_path / "home"),
                                  "DEFECTLENS_DB_URL": url})  # fmt: skip
        setup.migrate(settings)
        db = setup.open_database(settings)
        register_active_model(db, settings)
        left = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        (disk / "filler").write_bytes(b"\0" * max(0, left - 160 * 1024))
        outcomes = []
        for n in range(6):  # tiny images: their rows, not their files, fill the disk
            done = _ingest(settings, _folder(tmp_path / f"in{n}", 300, seed=10 + n, size=(8, 8)))
            outcomes.append(done)
            assert "Traceback" not in done.stderr and "sqlalche.me" not in done.stderr
            if done.returncode != 0:
                assert done.returncode == 1
                assert "the database's disk" in done.stderr, done.stderr
                break
        assert any(o.returncode == 1 for o in outcomes), "the disk filled up"
        (disk / "filler").unlink()
        with db.read() as s:
            assert s.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
            stored = s.scalars(select(Image.stored_path)).all()
        inspections, _images = _counts(db)
        # Every committed ingest is there, and of the failed one the chunks its error names.
        failed = outcomes[-1].stderr
        kept = int(re.search(r"\((\d+) images before them were recorded", failed).group(1))  # type: ignore[union-attr]
        assert inspections == 300 * (len(outcomes) - 1) + kept
        assert all((settings.images_dir / p).is_file() for p in stored)
        db.dispose()
    finally:
        _umount(disk)


def test_a_read_only_data_directory_is_named_in_a_one_line_error(home, tmp_path):
    settings, db = home
    ro = tmp_path / "ro-home"
    _mount(ro, "--bind", "-o", "ro", str(settings.home))
    try:
        done = _ingest(settings, _folder(tmp_path / "in", 3, seed=2), DEFECTLENS_HOME=str(ro),
                       DEFECTLENS_DB_URL="")  # fmt: skip
    finally:
        _umount(ro)
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "read-only" in done.stderr and str(ro) in done.stderr
    assert _counts(db) == (0, 0)


def test_an_ingest_waits_for_a_long_writer_and_then_stores_everything(home, tmp_path):
    settings, db = home
    folder = _folder(tmp_path / "in", 20, seed=3, size=(40, 48))
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None);"
        " c.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(8); c.rollback()"
    ), str(settings.home / "defectlens.db")], stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    done = _ingest(settings, folder)
    holder.wait(30)
    assert done.returncode == 0, done.stderr
    assert "locked" not in done.stderr.lower()
    assert time.monotonic() - started >= 5, "it waited for the writer"
    assert _counts(db) == (20, 20)


def test_a_cuda_job_on_a_machine_without_a_gpu_fails_with_the_reason(db, settings, tmp_path):
    dataset = import_tiny(db, settings, tmp_path / "src")
    with db.write() as s:  # queued elsewhere (a GPU machine's page), run by a CPU-only worker
        job_id = jobs.add_job(s, dataset_id=dataset.id, backend="local", created_by=None,
                              message="queued", config=TrainConfig(
                                  epochs=1, img_size=32, device="cuda").to_dict())  # fmt: skip
    proc = start_worker(settings, tmp_path / "w.log", "--once", DEFECTLENS_DEVICE="auto")
    assert proc.wait(120) == 0
    with db.read() as s:
        job = jobs.get_job(s, job_id)
    assert job is not None and job.status == JobStatus.FAILED
    assert job.error == "device 'cuda' was requested but no CUDA GPU is available"
    assert job.attempts == 1, "an error, not a kill: not retried"
