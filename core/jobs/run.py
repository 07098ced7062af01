"""Runs one claimed training job in its own process: ``python -m core.jobs.run JOB_ID WORKER_ID``.

The worker (``core.jobs.worker``) starts this as a child so that a crash, an out-of-memory kill or a
hard cancel of training never takes the worker down. On a Ray cluster the Ray job's entrypoint
runs it with ``--claim``, so the remote process claims its own queued row.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import setup
from core.auth.permissions import SYSTEM
from core.config import Settings, load_settings
from core.datasets import service
from core.errors import DefectLensError
from core.jobs import lifecycle, queue
from core.jobs.lifecycle import DB_HICCUPS, heartbeat_interval
from core.training import plan, register, resume
from core.training.config import EpochReport, TrainConfig
from core.training.register import TrainOutcome
from db.engine import Database
from db.models import JobStatus
from db.queries.jobs import JobRecord

log = logging.getLogger("defectlens.job")

STOP_CHECK_S = 0.5  # how stale the cached cancel flag may be
EXIT_ORPHANED = 70


def failure_reason(error: BaseException) -> str:
    """One readable line for the job row; the traceback goes to the job's log."""
    if isinstance(error, DefectLensError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename}" if error.filename else ""
        return f"{error.strerror}{where}"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


class _Progress:
    """Fraction done, from finished epochs plus the steps fit has taken in the current one.

    fit asks should_stop once before every training step, so counting those calls gives
    progress inside an epoch without touching the training code.
    """

    def __init__(self, epochs: int, steps_per_epoch: int) -> None:
        self.epochs = max(epochs, 1)
        self.steps = max(steps_per_epoch, 1)
        self.done = 0
        self.calls = 0

    def step(self) -> None:
        self.calls += 1

    def epoch_done(self, epoch: int) -> None:
        self.done, self.calls = epoch, 0

    def fraction(self) -> float:
        within = min(max(self.calls - 1, 0), self.steps) / self.steps
        return min((self.done + within) / self.epochs, 1.0)


def _steps_per_epoch(snapshot: Any, batch_size: int) -> int:
    return plan.batching(batch_size, sum(1 for e in snapshot.entries if e.split == "train"))[1]


def _configure_log(path: Path) -> logging.Handler:
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


def run_job(
    settings: Settings,
    job_id: int,
    worker_id: str,
    *,
    parent_pid: int | None = None,
    claim: bool = False,
) -> int:
    """Train one job and end it succeeded, failed or cancelled; the process exit code."""
    _configure_log(queue.log_path(settings, job_id))
    db = setup.open_database(settings)
    try:
        if claim and not lifecycle.claim_job(db, job_id, worker_id):
            log.warning("job %s is no longer queued; nothing to do", job_id)
            return 0
        job = queue.get_job(db, SYSTEM, job_id)
        if job.status != JobStatus.RUNNING or job.worker_id != worker_id:
            log.warning("job %s is %s under %s, not ours", job_id, job.status, job.worker_id)
            return 0
        log.info("job %s started by %s (pid %d)", job_id, worker_id, os.getpid())
        return _run(db, settings, job, worker_id, parent_pid)
    finally:
        db.dispose()


def _job_config(job: JobRecord, settings: Settings) -> TrainConfig:
    """The job's stored TrainConfig, with this machine's threads and forced device filled in."""
    cfg_dict = dict(job.config)
    if cfg_dict.get("weights_path"):
        cfg_dict["weights_path"] = Path(cfg_dict["weights_path"])
    known = set(TrainConfig.__dataclass_fields__)
    config = TrainConfig(**{k: v for k, v in cfg_dict.items() if k in known})
    if config.num_threads is None:
        config.num_threads = settings.num_threads
    if config.device == "auto" and settings.device != "auto":
        config.device = settings.device  # DEFECTLENS_DEVICE on the worker's machine forces it
    return config


class _Watch:
    """Heartbeats from a thread while the job trains and answers fit's should_stop.

    SIGTERM from the worker, or a heartbeat that finds the job no longer ours, makes the run
    stop at its next batch; a cancel flag is read from the row at most every STOP_CHECK_S.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        job_id: int,
        worker_id: str,
        parent_pid: int | None,
        progress: _Progress,
    ) -> None:
        self.db, self.settings, self.progress = db, settings, progress
        self.job_id, self.worker_id, self.parent_pid = job_id, worker_id, parent_pid
        self.interrupted = threading.Event()
        self.finished = threading.Event()
        self._last_check = 0.0
        self._cached = False

    def start(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        threading.Thread(target=self._beat, name="heartbeat", daemon=True).start()

    def _on_term(self, _signum: int, _frame: object) -> None:
        self.interrupted.set()

    def _beat(self) -> None:
        # An error other than a database hiccup ends this thread with its traceback in the job
        # log (stderr); the worker keeps heartbeating for the job and should_stop still works.
        interval = heartbeat_interval(self.settings)
        while not self.finished.wait(interval):
            if self.parent_pid is not None and os.getppid() != self.parent_pid:
                # The worker died; stop rather than train unsupervised. The job row keeps its
                # old heartbeat, so the next worker's sweep marks it failed.
                log.error("job %s: worker %s is gone; stopping", self.job_id, self.parent_pid)
                logging.shutdown()
                os._exit(EXIT_ORPHANED)
            try:
                beat = lifecycle.heartbeat(
                    self.db, self.job_id, self.worker_id, self.progress.fraction()
                )
            except DB_HICCUPS:  # a missed beat is retried; the sweep has the last word
                log.warning("heartbeat failed", exc_info=True)
                continue
            if not beat.owned:
                self.interrupted.set()

    def should_stop(self) -> bool:
        self.progress.step()
        if self.interrupted.is_set():
            return True
        now = time.monotonic()
        if now - self._last_check >= STOP_CHECK_S:
            self._last_check = now
            try:
                self._cached = lifecycle.should_stop(self.db, self.job_id, self.worker_id)
            except DB_HICCUPS:  # keep training through a brief database hiccup
                log.warning("could not read the cancel flag", exc_info=True)
        return self._cached


def _run(
    db: Database,
    settings: Settings,
    job: JobRecord,
    worker_id: str,
    parent_pid: int | None,
) -> int:
    config = _job_config(job, settings)
    # Epochs left open are planned by fit; the first report says how many.
    progress = _Progress(config.epochs or plan.DEFAULT_EPOCHS["cpu"], 1)
    watch = _Watch(db, settings, job.id, worker_id, parent_pid, progress)
    watch.start()

    def on_progress(report: EpochReport) -> None:
        progress.epochs = max(report.epochs, 1)
        progress.epoch_done(report.epoch)
        lifecycle.record_epoch(db, job.id, worker_id, report, report.epochs)

    try:
        outcome = _train(db, settings, job, worker_id, config, progress, watch, on_progress)
    except BaseException as e:  # noqa: BLE001 - the job boundary: every failure ends the job
        log.exception("job %s failed", job.id)
        reason = failure_reason(e)
        lifecycle.finish(db, job.id, worker_id, JobStatus.FAILED, error=reason, message="failed")
        resume.discard(queue.job_dir(settings, job.id))  # an error, not a kill: no retry
        return 1
    finally:
        watch.finished.set()
    code = _conclude(db, settings, job.id, worker_id, outcome, watch.interrupted.is_set())
    if queue.get_job(db, SYSTEM, job.id).is_finished:
        resume.discard(queue.job_dir(settings, job.id))
    return code


def _train(
    db: Database,
    settings: Settings,
    job: JobRecord,
    worker_id: str,
    config: TrainConfig,
    progress: _Progress,
    watch: _Watch,
    on_progress: Callable[[EpochReport], None],
) -> TrainOutcome:
    actor = lifecycle.job_actor(db, job.id)
    assert job.dataset_id is not None, "job has no dataset"
    _record, snapshot = service.load_dataset(db, actor, job.dataset_id)
    progress.steps = _steps_per_epoch(snapshot, config.batch_size)
    lifecycle.set_message(db, job.id, worker_id, f"loading {len(snapshot.entries)} images")
    log.info("config: %s", config.to_dict())
    return register.train_and_register(
        db,
        settings,
        actor,
        job.dataset_id,
        config,
        on_progress=on_progress,
        should_stop=watch.should_stop,
        training_job_id=job.id,
        checkpoint_dir=queue.job_dir(settings, job.id),
    )


def _conclude(
    db: Database,
    settings: Settings,
    job_id: int,
    worker_id: str,
    outcome: TrainOutcome,
    interrupted: bool,
) -> int:
    """End the job after fit returned: succeeded with its model, or cancelled, or interrupted."""
    if outcome.model is not None:
        m = outcome.result.metrics
        acc = f", val accuracy {m.accuracy:.1%}" if m is not None else ""
        text = f"model {outcome.model.id} registered as candidate{acc}"
        if not lifecycle.finish(db, job_id, worker_id, JobStatus.SUCCEEDED, message=text):
            log.error("job %s was ended by someone else; model %s left as candidate",
                      job_id, outcome.model.id)  # fmt: skip
        log.info("job %s succeeded: %s", job_id, text)
        return 0
    current = queue.get_job(db, SYSTEM, job_id)
    if current.cancel_requested:
        epochs_done = len(outcome.result.history)
        text = f"cancelled after {epochs_done} of {outcome.result.config.epochs} epochs"
        lifecycle.finish(db, job_id, worker_id, JobStatus.CANCELLED, message=text)
        log.info("job %s %s", job_id, text)
    elif interrupted and current.status == JobStatus.RUNNING:
        reason = "interrupted: the worker was shut down while the job ran"
        lifecycle.end_interrupted(db, job_id, worker_id, reason, settings.job_max_attempts)
    else:
        log.warning("job %s stopped: it is %s under %s", job_id, current.status, current.worker_id)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line of the child process (not meant for people)."""
    parser = argparse.ArgumentParser(prog="python -m core.jobs.run")
    parser.add_argument("job_id", type=int)
    parser.add_argument("worker_id")
    parser.add_argument("--parent", type=int, default=None, help="exit when this pid is gone")
    parser.add_argument("--claim", action="store_true", help="claim the queued job first (Ray)")
    args = parser.parse_args(argv)
    return run_job(
        load_settings(), args.job_id, args.worker_id, parent_pid=args.parent, claim=args.claim
    )


if __name__ == "__main__":
    sys.exit(main())
