"""Where a queued job runs: the Backend protocol, the local backend, and choosing one.

``backend_for(settings)`` picks the backend for new jobs once: Ray when
``DEFECTLENS_RAY_ADDRESS`` is set, else local. A job's row stores the backend's name, so
``backend_named(job.backend)`` finds the backend that can stop it or show its log later, even
after the settings changed.

- local: a ``defectlens worker`` on this machine claims the row and trains it in a child process.
- ray: the job is submitted to a Ray cluster, whose entrypoint claims the row itself
  (``core.jobs.ray_backend``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from core.config import Settings
from core.errors import ValidationError
from core.jobs.ray_backend import RayBackend
from core.training.config import TrainConfig
from db.engine import Database
from db.queries.jobs import JobRecord

log = logging.getLogger(__name__)


class Backend(Protocol):
    """What the queue and the worker need from a place that runs jobs."""

    @property
    def name(self) -> str:
        """Stored in training_jobs.backend."""
        ...

    @property
    def runs_on_worker(self) -> bool:
        """True when a ``defectlens worker`` claims its jobs; False when they claim themselves."""
        ...

    def check(self, settings: Settings, config: TrainConfig) -> None:
        """Refuse, before anything is queued, a job this backend could never run."""
        ...

    def start(self, db: Database, settings: Settings, job_id: int) -> None:
        """Hand over a job whose queued row is committed."""
        ...

    def stop(self, job: JobRecord) -> None:
        """Stop a cancelled job's run beyond the cancel flag it reads at its next batch."""
        ...

    def log_tail(self, job: JobRecord, lines: int) -> str:
        """The backend's own copy of the log, for a job folder not on this machine's storage."""
        ...

    def sync(self, db: Database) -> list[int]:
        """End the rows whose run ended without ending them; their ids."""
        ...


@functools.lru_cache(maxsize=1)
def detected_gpu() -> str | None:
    """The first CUDA GPU's name, or None without one (checked once per process)."""
    try:
        import torch  # deferred: pages import this module, and torch takes seconds to load

        if torch.cuda.is_available():
            return str(torch.cuda.get_device_name(0))
    except (ImportError, OSError, RuntimeError):  # a broken driver means "no GPU" for the form
        log.debug("CUDA probe failed", exc_info=True)
    return None


class LocalBackend:
    """Jobs wait in the table until a worker on this machine (or one sharing the DB) claims them."""

    name = "local"
    runs_on_worker = True

    def check(self, settings: Settings, config: TrainConfig) -> None:
        """A local job trains on this machine's GPU, so cuda needs one here."""
        if config.device.lower() == "cuda" and detected_gpu() is None:
            raise ValidationError(
                "device 'cuda' was requested but this machine has no CUDA GPU; choose auto or cpu"
            )

    def start(self, db: Database, settings: Settings, job_id: int) -> None:
        """Nothing to do: the queued row is the hand-over."""

    def stop(self, job: JobRecord) -> None:
        """Nothing beyond the flag: the worker turns a cancel into SIGTERM if the run ignores it."""

    def log_tail(self, job: JobRecord, lines: int) -> str:
        """No other copy: the worker writes the log into the job folder."""
        return ""

    def sync(self, db: Database) -> list[int]:
        """Nothing to sync: the worker's heartbeat sweep ends lost local jobs."""
        return []


LOCAL = LocalBackend()
BACKENDS: Mapping[str, Backend] = MappingProxyType(
    {LOCAL.name: LOCAL, RayBackend.name: RayBackend()}
)
# The backends whose queued jobs a `defectlens worker` claims, whatever backend new jobs get.
WORKER_BACKENDS = tuple(name for name, b in BACKENDS.items() if b.runs_on_worker)


def backend_for(settings: Settings) -> Backend:
    """The backend new jobs go to under these settings."""
    return BACKENDS[RayBackend.name] if settings.ray_address else LOCAL


def backend_named(name: str) -> Backend:
    """The backend a job's row names (local for a name this version does not know)."""
    return BACKENDS.get(name, LOCAL)
