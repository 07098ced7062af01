"""Choosing a backend, and the Ray backend's handling of a cluster it cannot reach (no Ray head
needed: the address points at a closed port on this machine)."""

from __future__ import annotations

import logging
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from core.auth import permissions
from core.config import Settings
from core.jobs import queue, ray_backend
from core.jobs.backend import LOCAL, WORKER_BACKENDS, LocalBackend, backend_for, backend_named
from core.jobs.ray_backend import RayBackend, RayBackendError
from core.training.loop import TrainConfig
from db.engine import Database
from db.models import JobStatus, TrainingJob
from db.queries import job_backends
from db.queries.jobs import JobRecord
from tests.core.jobs_support import import_tiny

SMALL = TrainConfig(epochs=1, img_size=32, device="cpu")


def _closed_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed


def test_new_jobs_go_to_ray_only_when_an_address_is_set(settings: Settings) -> None:
    assert isinstance(backend_for(settings), LocalBackend)
    ray_settings = replace(settings, ray_address="http://head:8265")
    assert isinstance(backend_for(ray_settings), RayBackend)
    assert backend_named("ray").name == "ray" and backend_named("local") is LOCAL
    assert backend_named("from-a-future-version") is LOCAL
    # A worker claims local rows even when new jobs go to Ray: a backlog still runs.
    assert WORKER_BACKENDS == ("local",)


@pytest.fixture
def queued(db: Database, settings: Settings, tmp_path: Path) -> JobRecord:
    dataset = import_tiny(db, settings, tmp_path / "src")
    return queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, SMALL)


def test_a_cluster_that_cannot_be_reached_fails_the_submitted_job(
    db: Database, settings: Settings, queued: JobRecord
) -> None:
    address = _closed_address()
    with pytest.raises(RayBackendError, match=f"Ray refused the job: cannot reach .* {address}"):
        ray_backend.submit(db, replace(settings, ray_address=address), queued.id)
    failed = queue.get_job(db, permissions.SYSTEM, queued.id)
    assert failed.status == JobStatus.FAILED and failed.finished_at is not None
    assert failed.error
    assert failed.error.startswith(
        f"Ray refused the job: cannot reach the Ray cluster at {address}"
    )


def test_log_stop_and_sync_survive_an_unreachable_cluster(
    db: Database, settings: Settings, queued: JobRecord, caplog: pytest.LogCaptureFixture
) -> None:
    ref = f"defectlens-job-{queued.id}-x {_closed_address()}"
    with db.write() as s:
        s.get(TrainingJob, queued.id).backend = "ray"  # type: ignore[union-attr]
        job_backends.set_backend_ref(s, queued.id, ref, "submitted to Ray")
    job = queue.get_job(db, permissions.SYSTEM, queued.id)
    ray = backend_named(job.backend)
    with pytest.raises(RayBackendError, match="cannot reach the Ray cluster"):
        ray_backend.ray_status(ref)
    # No job folder on this machine: the page asks Ray, and shows nothing rather than failing.
    assert not queue.log_path(settings, job.id).exists()
    assert queue.log_tail(settings, permissions.SYSTEM, job) == ""
    with caplog.at_level(logging.WARNING, logger="core.jobs.ray_backend"):
        ray.stop(job)  # the cancel flag still stops the run at its next batch
        assert ray.sync(db) == []  # retried at the next poll
    assert "Ray stop_job" in caplog.text and "cannot read Ray status" in caplog.text
    assert queue.get_job(db, permissions.SYSTEM, job.id).status == JobStatus.QUEUED
