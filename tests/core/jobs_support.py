"""Helpers for the job and worker tests: tiny datasets, real worker subprocesses, waiting."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from core.auth import permissions
from core.config import Settings
from core.datasets import service
from db.engine import Database
from db.queries.catalog import DatasetRecord
from tests.conftest import write_tiny_dataset

REPO_ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def write_two_class_folder(root: Path, n: int = 20, size: int = 32, seed: int = 0) -> Path:
    """ok / scratch folders of n small grayscale PNGs each (distinct per seed)."""
    return write_tiny_dataset(root, n=n, size=size, seed=seed)


def import_tiny(db: Database, settings: Settings, root: Path, seed: int = 0) -> DatasetRecord:
    """Import a 2 x 20 image dataset through the real import path."""
    record, _snap, _created = service.import_dataset(
        db, settings, permissions.SYSTEM, write_two_class_folder(root, seed=seed), f"tiny-{seed}"
    )
    return record


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a worker subprocess on the test's data directory."""
    env = dict(os.environ)
    env.update(
        DEFECTLENS_HOME=str(settings.home),
        DEFECTLENS_DB_URL=settings.db_url,
        DEFECTLENS_JOB_HEARTBEAT_TIMEOUT_S="3",
        DEFECTLENS_NUM_THREADS="1",
        DEFECTLENS_DEVICE="cpu",
        DEFECTLENS_LOG_LEVEL="INFO",
    )
    env.pop("DEFECTLENS_RAY_ADDRESS", None)
    env.update(extra)
    return env


def start_worker(
    settings: Settings, log: Path, *args: str, **extra_env: str
) -> subprocess.Popen[bytes]:
    """`defectlens worker` as a real subprocess; its output goes to log."""
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-c", "from core.cli import main; main()", "worker", *args],
        env=worker_env(settings, **extra_env),
        cwd=REPO_ROOT,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


def stop_worker(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """SIGTERM, then SIGKILL if it does not exit."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.2) -> T:
    """Poll check() until it returns something truthy; fail with `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def pid_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
