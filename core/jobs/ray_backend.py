"""The Ray backend: a queued job runs as a Ray job on an existing cluster.

Selected by ``DEFECTLENS_RAY_ADDRESS`` (the cluster's dashboard, e.g. ``http://head:8265``).
The Ray job's entrypoint is ``python -m core.jobs.run ID ray:ID --claim``: it claims its own row
and reports progress, heartbeats and the outcome to the shared PostgreSQL database, exactly as a
local child does. Every node needs DefectLens installed and DEFECTLENS_HOME on shared storage.
Cancel goes to both the row (the run stops at its next batch) and Ray (``stop_job``).
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select, update

from core.config import Settings
from core.errors import DefectLensError, ValidationError
from db.engine import Database
from db.models import JobStatus, TrainingJob, utcnow

log = logging.getLogger(__name__)

# Ray job states after which nothing more will happen.
_RAY_FINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


class RayBackendError(DefectLensError):
    """The Ray cluster could not be reached or refused a request."""


def _client(address: str) -> Any:
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise RayBackendError(
            "DEFECTLENS_RAY_ADDRESS is set but Ray is not installed; "
            "pip install 'defectlens[ray]' or unset it"
        ) from None
    try:
        return JobSubmissionClient(address)
    except Exception as e:  # noqa: BLE001 - connection errors come in many types
        raise RayBackendError(f"cannot reach the Ray cluster at {address}: {e}") from None


def check_settings(settings: Settings) -> None:
    """Remote workers report progress through the database, so it must be shared."""
    if settings.is_sqlite:
        raise ValidationError(
            "the Ray backend needs a shared PostgreSQL database: set DEFECTLENS_DB_URL "
            "(DEFECTLENS_RAY_ADDRESS is set but the database is SQLite)"
        )


def submit(db: Database, settings: Settings, job_id: int) -> str:
    """Hand a queued job to Ray; the submission id (stored as the job's backend_ref)."""
    with db.read() as session:
        config = session.scalar(select(TrainingJob.config).where(TrainingJob.id == job_id)) or {}
    wants_gpu = str(config.get("device", "auto")).lower() == "cuda"
    submission_id = f"defectlens-job-{job_id}-{utcnow().strftime('%Y%m%d%H%M%S')}"
    env = {
        "DEFECTLENS_DB_URL": settings.db_url,
        "DEFECTLENS_HOME": str(settings.home),
        "DEFECTLENS_JOB_HEARTBEAT_TIMEOUT_S": str(settings.job_heartbeat_timeout_s),
    }
    try:
        client = _client(settings.ray_address)
        client.submit_job(
            # `python` on the nodes' PATH must have DefectLens installed (README: Ray backend).
            entrypoint=f"python -m core.jobs.run {job_id} ray:{submission_id} --claim",
            submission_id=submission_id,
            runtime_env={"env_vars": env},
            entrypoint_num_cpus=1,
            entrypoint_num_gpus=1 if wants_gpu else 0,
            metadata={"defectlens_job": str(job_id)},
        )
    except Exception as e:  # noqa: BLE001 - any refusal fails the job with Ray's reason
        reason = f"Ray refused the job: {e}".splitlines()[0]
        _fail_unstarted(db, job_id, reason)
        raise RayBackendError(f"job {job_id}: {reason}") from None
    with db.write() as session:
        session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job_id)
            .values(
                backend_ref=f"{submission_id} {settings.ray_address}",
                message=f"submitted to Ray ({submission_id})",
            )
            .execution_options(synchronize_session=False)
        )
    log.info("job %s submitted to Ray as %s", job_id, submission_id)
    return submission_id


def parse_ref(backend_ref: str) -> tuple[str, str]:
    """(submission id, cluster address) from a job's backend_ref."""
    submission_id, _, address = backend_ref.partition(" ")
    return submission_id, address


def stop(backend_ref: str) -> None:
    """Ask Ray to stop the job (the row's cancel flag is already set)."""
    submission_id, address = parse_ref(backend_ref)
    try:
        _client(address).stop_job(submission_id)
    except Exception:  # noqa: BLE001 - the run still sees the cancel flag at its next batch
        log.warning("Ray stop_job(%s) failed", submission_id, exc_info=True)


def ray_status(backend_ref: str) -> tuple[str, str]:
    """(status, message) Ray reports for a job's submission."""
    submission_id, address = parse_ref(backend_ref)
    info = _client(address).get_job_info(submission_id)
    return str(getattr(info.status, "value", info.status)), str(info.message or "")


def ray_logs(backend_ref: str) -> str:
    """The Ray job's driver log (stdout and stderr of the entrypoint)."""
    submission_id, address = parse_ref(backend_ref)
    return str(_client(address).get_job_logs(submission_id))


def sync(db: Database) -> list[int]:
    """End rows whose Ray job ended without ending them (e.g. failed before it started)."""
    with db.read() as session:
        rows = session.execute(
            select(TrainingJob.id, TrainingJob.backend_ref, TrainingJob.cancel_requested).where(
                TrainingJob.backend == "ray",
                TrainingJob.status.in_((JobStatus.QUEUED.value, JobStatus.RUNNING.value)),
                TrainingJob.backend_ref.is_not(None),
            )
        ).all()
    ended = []
    for job_id, ref, cancel in rows:
        if not ref:
            continue
        try:
            status, message = ray_status(ref)
        except Exception:  # noqa: BLE001 - an unreachable cluster is retried next time
            log.warning("job %s: cannot read Ray status", job_id, exc_info=True)
            continue
        if status not in _RAY_FINAL:
            continue
        if cancel or status == "STOPPED":
            final, error = JobStatus.CANCELLED, None
        else:
            sid = parse_ref(ref)[0]
            final, error = JobStatus.FAILED, f"Ray job {sid} ended {status}: {message}"[:4000]
        with db.write() as session:
            result = session.execute(
                update(TrainingJob)
                .where(
                    TrainingJob.id == job_id,
                    TrainingJob.status.in_((JobStatus.QUEUED.value, JobStatus.RUNNING.value)),
                )
                .values(status=final.value, error=error, finished_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                ended.append(job_id)
    return ended


def _fail_unstarted(db: Database, job_id: int, reason: str) -> None:
    with db.write() as session:
        session.execute(
            update(TrainingJob)
            .where(TrainingJob.id == job_id, TrainingJob.status == JobStatus.QUEUED.value)
            .values(status=JobStatus.FAILED.value, error=reason, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        )
