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
from pathlib import Path
from typing import Any

from core import setup
from core.config import Settings, load_settings
from core.datasets import service
from core.errors import DefectLensError
from core.jobs import queue
from core.jobs.queue import heartbeat_interval
from core.training import register
from core.training.loop import EpochReport, TrainConfig
from db.engine import Database
from db.models import JobStatus

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
    n = sum(1 for e in snapshot.entries if e.split == "train")
    batch = max(1, min(batch_size, n))
    return max(1, n // batch)


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
        if claim and not queue.claim_job(db, job_id, worker_id):
            log.warning("job %s is no longer queued; nothing to do", job_id)
            return 0
        job = queue.get_job(db, job_id)
        if job.status != JobStatus.RUNNING or job.worker_id != worker_id:
            log.warning("job %s is %s under %s, not ours", job_id, job.status, job.worker_id)
            return 0
        log.info("job %s started by %s (pid %d)", job_id, worker_id, os.getpid())
        return _run(db, settings, job, worker_id, parent_pid)
    finally:
        db.dispose()


def _run(
    db: Database,
    settings: Settings,
    job: queue.JobRecord,
    worker_id: str,
    parent_pid: int | None,
) -> int:
    job_id = job.id
    interrupted = threading.Event()  # SIGTERM from the worker: stop at the next batch
    finished = threading.Event()

    def _on_term(_signum: int, _frame: object) -> None:
        interrupted.set()

    signal.signal(signal.SIGTERM, _on_term)

    cfg_dict = dict(job.config)
    if cfg_dict.get("weights_path"):
        cfg_dict["weights_path"] = Path(cfg_dict["weights_path"])
    known = set(TrainConfig.__dataclass_fields__)
    config = TrainConfig(**{k: v for k, v in cfg_dict.items() if k in known})
    if config.num_threads is None:
        config.num_threads = settings.num_threads
    if config.device == "auto" and settings.device != "auto":
        config.device = settings.device  # DEFECTLENS_DEVICE on the worker's machine forces it

    progress = _Progress(config.epochs, 1)

    def _beat() -> None:
        interval = heartbeat_interval(settings)
        while not finished.wait(interval):
            if parent_pid is not None and os.getppid() != parent_pid:
                # The worker died; stop rather than train unsupervised. The job row keeps its
                # old heartbeat, so the next worker's sweep marks it failed.
                log.error("job %s: worker process %s is gone; stopping", job_id, parent_pid)
                logging.shutdown()
                os._exit(EXIT_ORPHANED)
            try:
                beat = queue.heartbeat(db, job_id, worker_id, progress.fraction())
            except Exception:  # noqa: BLE001 - a missed beat is retried; the sweep has the last word
                log.warning("heartbeat failed", exc_info=True)
                continue
            if not beat.owned:
                interrupted.set()

    threading.Thread(target=_beat, name="heartbeat", daemon=True).start()

    last_check = 0.0
    cached = False

    def should_stop() -> bool:
        nonlocal last_check, cached
        progress.step()
        if interrupted.is_set():
            return True
        now = time.monotonic()
        if now - last_check >= STOP_CHECK_S:
            last_check = now
            try:
                cached = queue.should_stop(db, job_id, worker_id)
            except Exception:  # noqa: BLE001 - keep training through a brief database hiccup
                log.warning("could not read the cancel flag", exc_info=True)
        return cached

    def on_progress(report: EpochReport) -> None:
        progress.epoch_done(report.epoch)
        queue.record_epoch(db, job_id, worker_id, report, config.epochs)

    try:
        actor = queue.job_actor(db, job_id)
        assert job.dataset_id is not None, "job has no dataset"
        _record, snapshot = service.load_dataset(db, job.dataset_id)
        progress.steps = _steps_per_epoch(snapshot, config.batch_size)
        queue.set_message(db, job_id, worker_id, f"loading {len(snapshot.entries)} images")
        log.info("config: %s", config.to_dict())
        outcome = register.train_and_register(
            db,
            settings,
            actor,
            job.dataset_id,
            config,
            on_progress=on_progress,
            should_stop=should_stop,
            training_job_id=job_id,
            checkpoint_dir=queue.job_dir(settings, job_id),
        )
    except BaseException as e:  # noqa: BLE001 - the job boundary: every failure ends the job
        log.exception("job %s failed", job_id)
        reason = failure_reason(e)
        queue.finish(db, job_id, worker_id, JobStatus.FAILED, error=reason, message="failed")
        return 1
    finally:
        finished.set()

    epochs_done = len(outcome.result.history)
    if outcome.model is not None:
        m = outcome.result.metrics
        acc = f", val accuracy {m.accuracy:.1%}" if m is not None else ""
        text = f"model {outcome.model.id} registered as candidate{acc}"
        if not queue.finish(db, job_id, worker_id, JobStatus.SUCCEEDED, message=text):
            log.error("job %s was ended by someone else; model %s left as candidate",
                      job_id, outcome.model.id)  # fmt: skip
        log.info("job %s succeeded: %s", job_id, text)
        return 0
    current = queue.get_job(db, job_id)
    if current.cancel_requested:
        text = f"cancelled after {epochs_done} of {config.epochs} epochs"
        queue.finish(db, job_id, worker_id, JobStatus.CANCELLED, message=text)
        log.info("job %s %s", job_id, text)
    elif interrupted.is_set() and current.status == JobStatus.RUNNING:
        reason = "interrupted: the worker was shut down while the job ran; submit it again"
        queue.finish(db, job_id, worker_id, JobStatus.FAILED, error=reason, message="failed")
        log.info("job %s %s", job_id, reason)
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
