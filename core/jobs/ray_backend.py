"""The Ray backend: a queued job runs as a Ray job on an existing cluster.

Selected by ``DEFECTLENS_RAY_ADDRESS`` (the cluster's dashboard, e.g. ``http://head:8265``).
The Ray job's entrypoint is ``python -m core.jobs.run ID ray:ID --claim``: it claims its own row
and reports progress, heartbeats and the outcome to the shared PostgreSQL database, exactly as a
local child does. Every node needs DefectLens installed and DEFECTLENS_HOME on shared storage.
Cancel goes to both the row (the run stops at its next batch) and Ray (``stop_job``).

Ray itself is imported only when a cluster is called: it takes seconds to load and is an
optional extra, and pages import this module through the queue.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from core.config import Settings
from core.errors import DefectLensError, ValidationError
from core.training.config import TrainConfig
from db.engine import Database
from db.models import JobStatus, utcnow
from db.queries import job_backends, jobs
from db.queries.job_backends import BackendRun
from db.queries.jobs import JobRecord

log = logging.getLogger(__name__)

# Ray job states after which nothing more will happen.
_RAY_FINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


class RayBackendError(DefectLensError):
    """The Ray cluster could not be reached or refused a request."""


@contextmanager
def _refusals(what: str = "") -> Iterator[None]:
    """Turn what Ray's job client raises for an unreachable or refusing cluster into one error.

    requests' connection errors are OSErrors (ConnectionError among them); the dashboard SDK
    raises RuntimeError for a refused request or a version mismatch, ValueError for a bad
    address or a taken submission id, and RayError (AuthenticationError) for a wrong token.
    Anything else (TypeError, ...) is a bug and propagates.
    """
    from ray.exceptions import RayError  # deferred: heavy; loaded by _client before this runs

    try:
        yield
    except (OSError, RuntimeError, ValueError, RayError) as e:
        raise RayBackendError(f"{what}: {e}" if what else str(e)) from None


def _client(address: str) -> Any:
    try:
        from ray.job_submission import JobSubmissionClient  # deferred: heavy, optional extra
    except ImportError:
        raise RayBackendError(
            "DEFECTLENS_RAY_ADDRESS is set but Ray is not installed; "
            "pip install 'defectlens[ray]' or unset it"
        ) from None
    with _refusals(f"cannot reach the Ray cluster at {address}"):
        return JobSubmissionClient(address)


def check_settings(settings: Settings) -> None:
    """Remote workers report progress through the database, so it must be shared."""
    if settings.is_sqlite:
        raise ValidationError(
            "the Ray backend needs a shared PostgreSQL database: set DEFECTLENS_DB_URL "
            "(DEFECTLENS_RAY_ADDRESS is set but the database is SQLite)"
        )


def node_env(settings: Settings) -> dict[str, str]:
    """The environment a Ray job starts with. It is job metadata: the Ray dashboard and
    `ray job list` show it to anyone who reaches the cluster, so the database URL goes without
    its password; each node supplies that itself (DEFECTLENS_DB_PASSWORD_FILE in the node's
    own environment, or libpq's ~/.pgpass or PGPASSWORD; README: Ray backend)."""
    return {
        "DEFECTLENS_DB_URL": settings.db_url_without_password,
        "DEFECTLENS_HOME": str(settings.home),
        "DEFECTLENS_JOB_HEARTBEAT_TIMEOUT_S": str(settings.job_heartbeat_timeout_s),
    }


def submit(db: Database, settings: Settings, job_id: int) -> str:
    """Hand a queued job to Ray; the submission id (stored as the job's backend_ref)."""
    with db.read() as session:
        job = jobs.get_job(session, job_id)
    config = job.config if job is not None else {}
    wants_gpu = str(config.get("device", "auto")).lower() == "cuda"
    submission_id = f"defectlens-job-{job_id}-{utcnow().strftime('%Y%m%d%H%M%S')}"
    env = node_env(settings)
    try:
        client = _client(settings.ray_address)
        with _refusals():
            client.submit_job(
                # `python` on the nodes' PATH must have DefectLens installed (README: Ray backend).
                entrypoint=f"python -m core.jobs.run {job_id} ray:{submission_id} --claim",
                submission_id=submission_id,
                runtime_env={"env_vars": env},
                entrypoint_num_cpus=1,
                entrypoint_num_gpus=1 if wants_gpu else 0,
                metadata={"defectlens_job": str(job_id)},
            )
    except RayBackendError as e:  # any refusal fails the job with Ray's reason
        reason = f"Ray refused the job: {e}".splitlines()[0]
        with db.write() as session:
            job_backends.end_run(
                session, job_id, JobStatus.FAILED, utcnow(), error=reason, only_queued=True
            )
        raise RayBackendError(f"job {job_id}: {reason}") from None
    with db.write() as session:
        job_backends.set_backend_ref(
            session,
            job_id,
            f"{submission_id} {settings.ray_address}",
            f"submitted to Ray ({submission_id})",
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
        client = _client(address)
        with _refusals(f"Ray stop_job({submission_id})"):
            client.stop_job(submission_id)
    except RayBackendError:  # the run still sees the cancel flag at its next batch
        log.warning("Ray stop_job(%s) failed", submission_id, exc_info=True)


def ray_status(backend_ref: str) -> tuple[str, str]:
    """(status, message) Ray reports for a job's submission; RayBackendError when unreachable."""
    submission_id, address = parse_ref(backend_ref)
    client = _client(address)
    with _refusals(f"no Ray status for {submission_id}"):
        info = client.get_job_info(submission_id)
    return str(getattr(info.status, "value", info.status)), str(info.message or "")


def ray_logs(backend_ref: str) -> str:
    """The Ray job's driver log (stdout and stderr of the entrypoint); RayBackendError if none."""
    submission_id, address = parse_ref(backend_ref)
    client = _client(address)
    with _refusals(f"no Ray log for {submission_id}"):
        return str(client.get_job_logs(submission_id))


def _outcome(run: BackendRun, status: str, message: str) -> tuple[JobStatus, str | None]:
    """The final status (and error) of a row whose Ray job ended in `status`."""
    if run.cancel_requested or status == "STOPPED":
        return JobStatus.CANCELLED, None
    sid = parse_ref(run.backend_ref)[0]
    return JobStatus.FAILED, f"Ray job {sid} ended {status}: {message}"


class RayBackend:
    """Jobs go to a Ray cluster as Ray jobs; their entrypoint claims the row on the cluster."""

    name = "ray"
    runs_on_worker = False

    def check(self, settings: Settings, config: TrainConfig) -> None:
        """The cluster's GPU nodes decide about cuda; the database must be shared."""
        check_settings(settings)

    def start(self, db: Database, settings: Settings, job_id: int) -> None:
        """Submit the job to the cluster (a refusal fails the row and raises RayBackendError)."""
        submit(db, settings, job_id)

    def stop(self, job: JobRecord) -> None:
        """Ask Ray to stop the job's Ray job too, when it was submitted."""
        if job.backend_ref:
            stop(job.backend_ref)

    def log_tail(self, job: JobRecord, lines: int) -> str:
        """The Ray driver log, for a run whose job folder is not on this machine's storage."""
        if not job.backend_ref:
            return ""
        try:
            text = ray_logs(job.backend_ref).splitlines()
        except RayBackendError:  # no log is better than a broken page
            log.debug("no Ray log for %s", job.backend_ref, exc_info=True)
            return ""
        return "\n".join(text[-lines:]) if lines > 0 else ""

    def sync(self, db: Database) -> list[int]:
        """End rows whose Ray job ended without ending them (e.g. failed before it started)."""
        with db.read() as session:
            runs = job_backends.unfinished_runs(session, self.name)
        ended = []
        for run in runs:
            try:
                status, message = ray_status(run.backend_ref)
            except RayBackendError:  # an unreachable cluster is retried next time
                log.warning("job %s: cannot read Ray status", run.id, exc_info=True)
                continue
            if status not in _RAY_FINAL:
                continue
            final, error = _outcome(run, status, message)
            with db.write() as session:
                if job_backends.end_run(session, run.id, final, utcnow(), error=error):
                    ended.append(run.id)
        return ended
