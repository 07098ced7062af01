"""The Ray backend against a real local Ray head on 127.0.0.1 and a real PostgreSQL database."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from core import setup
from core.auth import permissions
from core.config import load_settings
from core.errors import ValidationError
from core.jobs import queue, ray_backend
from core.training.config import TrainConfig
from db.models import JobStatus
from tests.core.jobs_support import import_tiny, wait_for
from tests.db.conftest import fresh_pg_url  # noqa: F401 - a fixture: a throwaway PG database


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ours(marker: str) -> list[int]:
    """Pids whose command line names our private Ray temp dir (the processes we started)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A one-node Ray cluster started for these tests; yields its dashboard address."""
    if shutil.which("ray", path=str(Path(sys.executable).parent)) is None:
        if os.environ.get("CI"):
            pytest.fail("Ray is not installed in CI; install the 'ray' extra")
        pytest.skip("Ray is not installed (pip install 'defectlens[ray]')")
    temp = tempfile.mkdtemp(prefix="dlray", dir="/tmp")  # short: Ray puts sockets in it
    dash = _free_port()
    bin_dir = str(Path(sys.executable).parent)
    # The job entrypoint runs `python`: put the interpreter that has DefectLens first on PATH.
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ.get('PATH', '')}")
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    # The node's own credential, as README's Ray steps set it up: the job's env carries none.
    password = make_url(os.environ.get("DEFECTLENS_TEST_PG_URL") or "sqlite://").password
    if password:
        secret = Path(temp) / "db-password"
        secret.write_text(password)
        secret.chmod(0o600)
        env["DEFECTLENS_DB_PASSWORD_FILE"] = str(secret)
    log = open(Path(temp) / "ray_start.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [f"{bin_dir}/ray", "start", "--head", "--block", f"--port={_free_port()}",
         "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
         f"--dashboard-port={dash}", "--num-cpus=2", "--num-gpus=0",
         "--include-dashboard=true", f"--temp-dir={temp}",
         "--object-store-memory=100000000", "--disable-usage-stats"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{dash}"
    try:
        from ray.job_submission import JobSubmissionClient

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"ray start exited {proc.returncode}; see {log.name}")
            try:
                JobSubmissionClient(address).list_jobs()
                return True
            except Exception:  # noqa: BLE001 - not up yet
                return False

        wait_for(ready, 180, "the Ray head", every=1.0)
        yield address
    finally:
        with_pids = _ours(temp)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(1)
        for pid in set(with_pids + _ours(temp)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_backend_needs_postgresql(tmp_path, db) -> None:
    s = load_settings(
        {"DEFECTLENS_HOME": str(tmp_path / "home"), "DEFECTLENS_RAY_ADDRESS": "http://x:8265"}
    )
    with pytest.raises(ValidationError, match="needs a shared PostgreSQL database"):
        queue.submit_job(db, s, permissions.SYSTEM, 1, TrainConfig(epochs=1))


@pytest.mark.slow
@pytest.mark.postgres
def test_ray_job_runs_reports_progress_and_cancels(
    ray_head: str,
    tmp_path: Path,
    fresh_pg_url: str,  # noqa: F811
) -> None:
    s = load_settings(
        {
            "DEFECTLENS_HOME": str(tmp_path / "home"),
            "DEFECTLENS_DB_URL": fresh_pg_url,
            "DEFECTLENS_RAY_ADDRESS": ray_head,
            "DEFECTLENS_NUM_THREADS": "1",
            "DEFECTLENS_JOB_HEARTBEAT_TIMEOUT_S": "20",
        }
    )
    setup.migrate(s)
    db = setup.open_database(s)
    try:
        dataset = import_tiny(db, s, tmp_path / "src")
        quick = TrainConfig(epochs=2, img_size=32, device="cpu", batch_size=16)
        job = queue.submit_job(db, s, permissions.SYSTEM, dataset.id, quick)
        assert job.backend == "ray" and job.backend_ref
        done = wait_for(
            lambda: (j := queue.get_job(db, permissions.SYSTEM, job.id)).is_finished and j,
            240,
            "ray job",
        )
        assert done.status == JobStatus.SUCCEEDED, (
            done.error,
            ray_backend.ray_logs(job.backend_ref),
        )
        assert done.worker_id and done.worker_id.startswith("ray:")
        # The job's runtime env is what the Ray dashboard shows: no database password in it.
        from ray.job_submission import JobSubmissionClient

        shown = JobSubmissionClient(ray_head).get_job_info(job.backend_ref.split()[0])
        sent = shown.runtime_env["env_vars"]
        assert make_url(sent["DEFECTLENS_DB_URL"]).password is None
        password = make_url(fresh_pg_url).password
        assert password and f":{password}@" not in repr(shown.runtime_env) + repr(shown.metadata)
        assert done.model_id is not None
        assert [m.epoch for m in queue.job_metrics(db, permissions.SYSTEM, job.id)] == [1, 2]
        assert "epoch 2/2" in queue.log_tail(s, permissions.SYSTEM, done)
        wait_for(
            lambda: ray_backend.ray_status(job.backend_ref)[0] == "SUCCEEDED", 60, "Ray status"
        )

        # Cancel through the same interface: the run stops at a batch, Ray stops the job.
        long = TrainConfig(epochs=400, img_size=32, device="cpu", batch_size=16)
        running = queue.submit_job(db, s, permissions.SYSTEM, dataset.id, long)
        wait_for(
            lambda: queue.job_metrics(db, permissions.SYSTEM, running.id),
            240,
            "the first Ray epoch",
        )
        queue.cancel_job(db, permissions.SYSTEM, running.id)
        ended = wait_for(
            lambda: (j := queue.get_job(db, permissions.SYSTEM, running.id)).is_finished and j,
            60,
            "end",
        )
        assert ended.status == JobStatus.CANCELLED and ended.model_id is None
        assert running.backend_ref
        wait_for(
            lambda: ray_backend.ray_status(running.backend_ref)[0] in ("STOPPED", "SUCCEEDED"),
            60,
            "Ray to end the cancelled job",
        )

        # A cuda job asks Ray for a GPU: on this CPU-only cluster it waits instead of running.
        gpu = queue.submit_job(
            db, s, permissions.SYSTEM, dataset.id, TrainConfig(epochs=1, img_size=32, device="cuda")
        )
        assert gpu.backend_ref
        time.sleep(8)
        assert ray_backend.ray_status(gpu.backend_ref)[0] == "PENDING"
        assert queue.get_job(db, permissions.SYSTEM, gpu.id).status == JobStatus.QUEUED
        assert queue.cancel_job(db, permissions.SYSTEM, gpu.id).status == JobStatus.CANCELLED
        # Ray leaves a stopped job PENDING while it cannot be scheduled; if a GPU appears
        # later its run finds the row cancelled and exits without training.
        assert ray_backend.ray_status(gpu.backend_ref)[0] in ("PENDING", "STOPPED")
        assert queue.get_job(db, permissions.SYSTEM, gpu.id).status == JobStatus.CANCELLED
    finally:
        db.dispose()
