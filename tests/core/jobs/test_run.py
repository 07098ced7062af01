"""`defectlens run` starts the worker beside Streamlit and stops both, and the job, on SIGTERM."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from core.auth import permissions
from core.config import Settings
from core.jobs import queue
from core.jobs.run import _job_config
from core.training.config import TrainConfig
from db.engine import Database
from db.models import JobStatus
from tests.core.jobs_support import REPO_ROOT, import_tiny, pid_alive, wait_for, worker_env

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_run_starts_a_worker_and_sigterm_stops_everything(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    dataset = import_tiny(db, settings, tmp_path / "src")
    config = TrainConfig(epochs=400, img_size=32, device="cpu", batch_size=16)
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, config)
    out = (tmp_path / "run.log").open("wb")
    env = worker_env(settings, DEFECTLENS_WORKER_POLL_S="0.2")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from core.cli import main; main()", "run", "--no-demo",
         "--port", str(_free_port())],
        env=env, cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        # The worker that `run` started picks the job up: pages only queue, it trains.
        wait_for(
            lambda: queue.job_metrics(db, permissions.SYSTEM, job.id),
            120,
            "the worker to train the job",
        )
        children = _children(proc.pid)
        assert any(" worker" in _cmdline(c) for c in children), children
        assert any("streamlit.web" in _cmdline(c) for c in children), children
        log = queue.log_path(settings, job.id).read_text()
        trainer = int(re.search(r"started by \S+ \(pid (\d+)\)", log).group(1))  # type: ignore[union-attr]
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert time.monotonic() - stopped_at < 20
        assert not [c for c in children if pid_alive(c)], "both children stopped"
        assert not pid_alive(trainer), "the training process stopped too"
        done = queue.get_job(db, permissions.SYSTEM, job.id)
        # Never left running: back in the queue, so the next start resumes it where it stopped.
        assert done.status == JobStatus.QUEUED and done.worker_id is None
        assert done.message and done.message.startswith("interrupted: the worker was shut down")
        assert "queued again to resume from its last finished epoch" in done.message
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        out.close()


def test_job_config_round_trips_the_balance_mode(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    dataset = import_tiny(db, settings, tmp_path / "src")
    for mode in ("weights", "sampler", "none"):
        config = TrainConfig(epochs=1, img_size=32, device="cpu", balance=mode)
        job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, config)
        assert job.config["balance"] == mode
        assert _job_config(queue.get_job(db, permissions.SYSTEM, job.id), settings).balance == mode
    # A job queued before the option existed trains with the default.
    old = replace(job, config={k: v for k, v in job.config.items() if k != "balance"})
    assert _job_config(old, settings).balance == "auto"
