"""The training worker: ``defectlens worker``. Claims queued jobs and supervises their runs.

Each job trains in a child process (``core.jobs.run``). The worker heartbeats for it while the
child lives, turns a cancel into a SIGTERM (then SIGKILL) when the child does not stop by
itself, and when the child dies without ending the job (killed, crashed, the worker shut down)
queues it again to resume from its last finished epoch, or fails it with the exit code once it
has started DEFECTLENS_JOB_MAX_ATTEMPTS times. Every poll it also sweeps: any running job whose
heartbeat is older than the timeout, from this worker or one that died, is queued again or
failed the same way. Nothing stays ``running`` forever.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from subprocess import Popen

from sqlalchemy.exc import SQLAlchemyError

from core import setup
from core.auth.permissions import SYSTEM
from core.config import Settings
from core.jobs import lifecycle, queue
from core.jobs.backend import backend_for
from core.quality import image_store
from db.engine import Database
from db.models import JobStatus
from db.queries.jobs import JobRecord

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
CANCEL_GRACE_S = 4.0  # a cancelled child gets this long to stop at a batch boundary
KILL_GRACE_S = 4.0  # after SIGTERM, this long before SIGKILL
LOST_GRACE_S = 10.0  # a job ended outside this worker: its child gets this long to exit
TICK_S = 0.25


def make_worker_id() -> str:
    """host:pid, unique among live workers."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _exit_reason(returncode: int) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (out of memory?)" if returncode == -signal.SIGKILL else ""
        return f"training process was killed by {name}{hint}; see the job log"
    return f"training process exited with code {returncode} without finishing; see the job log"


def _child_command(job_id: int, worker_id: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "core.jobs.run",
        str(job_id),
        worker_id,
        "--parent",
        str(os.getpid()),
    ]


def _start_child(settings: Settings, job_id: int, worker_id: str, log_file: Path) -> Popen[bytes]:
    """Start `python -m core.jobs.run` for a claimed job, its output appended to the job log."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DEFECTLENS_HOME=str(settings.home), DEFECTLENS_DB_URL=settings.db_url)
    # The child's stdout/stderr (a segfault or an uncaught error) land in the job's log too.
    # Its own session keeps a terminal's Ctrl-C away from it: the worker decides how it stops.
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            _child_command(job_id, worker_id),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    log.info("job %s: training in pid %d", job_id, proc.pid)
    return proc


class _ChildWatch:
    """Heartbeats for a running child and decides when to stop it.

    A cancel gets CANCEL_GRACE_S to stop at a batch boundary by itself, then SIGTERM; a job
    that is no longer ours (swept, ended elsewhere) or a worker shutdown gets SIGTERM at once;
    a child that ignores SIGTERM for KILL_GRACE_S gets SIGKILL.
    """

    def __init__(
        self,
        db: Database,
        settings: Settings,
        job_id: int,
        worker_id: str,
        proc: Popen[bytes],
        stopping: Callable[[], bool],
    ) -> None:
        self.db, self.job_id, self.worker_id = db, job_id, worker_id
        self.proc, self.stopping = proc, stopping
        self.interval = lifecycle.heartbeat_interval(settings)
        self.next_beat = self.next_check = 0.0
        self.cancel_seen: float | None = None
        self.term_sent: float | None = None
        self.why_stopped: str | None = None  # "cancel", "lost", "shutdown"
        self.lost_seen: float | None = None

    def until_exit(self) -> int:
        """Watch the child until it exits; its return code."""
        while self.proc.poll() is None:
            now = time.monotonic()
            if now >= self.next_beat:
                self.next_beat = now + self.interval
                self._beat(now)
            if self.cancel_seen is None and now >= self.next_check:
                # Between heartbeats too, so a hard stop is never a whole interval late.
                self.next_check = now + 0.5
                self._check_cancel(now)
            if self.cancel_seen is not None and now - self.cancel_seen > CANCEL_GRACE_S:
                self._terminate("cancel")
            if self.lost_seen is not None and now - self.lost_seen > LOST_GRACE_S:
                self._terminate("lost")
            if self.stopping():
                self._terminate("shutdown")
            if self.term_sent is not None and now - self.term_sent > KILL_GRACE_S:
                log.warning("job %s: training process ignored SIGTERM; killing it", self.job_id)
                self.proc.kill()
            time.sleep(TICK_S)
        return self.proc.returncode

    def _beat(self, now: float) -> None:
        try:
            beat = lifecycle.heartbeat(self.db, self.job_id, self.worker_id)
        except SQLAlchemyError:
            log.warning("job %s: heartbeat failed", self.job_id, exc_info=True)
            return
        if not beat.owned and self.lost_seen is None:
            # Ended outside this worker: usually by the training process itself, which has
            # recorded its result and is exiting; after a sweep it must not train unsupervised.
            # Either way it gets LOST_GRACE_S to exit before SIGTERM.
            self.lost_seen = now
        elif beat.cancel_requested and self.cancel_seen is None:
            self.cancel_seen = now

    def _check_cancel(self, now: float) -> None:
        try:
            if queue.get_job(self.db, SYSTEM, self.job_id).cancel_requested:
                self.cancel_seen = now
        except SQLAlchemyError:
            pass  # the next heartbeat logs a database that stays away

    def _terminate(self, reason: str) -> None:
        if self.term_sent is None:
            self.why_stopped = reason
            self.term_sent = time.monotonic()
            log.info("job %s: stopping the training process (%s)", self.job_id, reason)
            self.proc.terminate()


def supervise(
    db: Database,
    settings: Settings,
    job: JobRecord,
    worker_id: str,
    stopping: Callable[[], bool] = lambda: False,
) -> JobStatus:
    """Run a claimed job in a child process until it ends; its final status."""
    log_file = queue.log_path(settings, job.id)
    proc = _start_child(settings, job.id, worker_id, log_file)
    watch = _ChildWatch(db, settings, job.id, worker_id, proc, stopping)
    rc = watch.until_exit()
    current = queue.get_job(db, SYSTEM, job.id)
    if current.status == JobStatus.RUNNING and current.worker_id == worker_id:
        # The child died without ending the job itself.
        if current.cancel_requested:
            lifecycle.finish(
                db, job.id, worker_id, JobStatus.CANCELLED, message="cancelled (process stopped)"
            )
        else:
            if watch.why_stopped == "shutdown":
                reason = "interrupted: the worker was shut down while the job ran"
            else:
                reason = _exit_reason(rc)
            lifecycle.end_interrupted(db, job.id, worker_id, reason, settings.job_max_attempts)
            _append_log(log_file, f"worker: {reason}")
        current = queue.get_job(db, SYSTEM, job.id)
    log.info("job %s ended %s (exit code %s)", job.id, current.status, rc)
    return current.status


def _append_log(path: Path, line: str) -> None:
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError:
        log.warning("could not write to %s", path)


ORPHAN_SWEEP_INTERVAL_S = 3600.0


def _sweep_orphan_files(db: Database, settings: Settings) -> None:
    """Remove stored image files no row points at (DESIGN.md, Storage); never fatal."""
    try:
        removed = image_store.sweep_orphans(db, settings)
    except (OSError, SQLAlchemyError):
        log.warning("worker: orphan sweep failed", exc_info=True)
        return
    if removed:
        log.info("worker: removed %d orphaned image files", removed)


def run_worker(
    settings: Settings,
    *,
    once: bool = False,
    poll_s: float | None = None,
    stop_event: threading.Event | None = None,
    on_job: Callable[[JobRecord, JobStatus], None] | None = None,
) -> int:
    """Claim and run jobs until stopped (or one with once=True); how many jobs ran."""
    stop = stop_event or threading.Event()
    if threading.current_thread() is threading.main_thread():

        def _stop(signum: int, _frame: object) -> None:
            log.info("worker: signal %d, stopping", signum)
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    poll = settings.worker_poll_s if poll_s is None else poll_s
    worker_id = make_worker_id()
    chosen = backend_for(settings)
    setup.migrate(settings)
    db = setup.open_database(settings)
    ran = 0
    log.info("worker %s polling every %.1f s", worker_id, poll)
    next_orphan_sweep = 0.0
    try:
        while not stop.is_set():
            if not once and time.monotonic() >= next_orphan_sweep:
                next_orphan_sweep = time.monotonic() + ORPHAN_SWEEP_INTERVAL_S
                _sweep_orphan_files(db, settings)
            try:
                lifecycle.sweep_stale(
                    db, settings.job_heartbeat_timeout_s, settings.job_max_attempts
                )
                chosen.sync(db)  # a remote backend's runs that ended without ending their row
                job = lifecycle.claim_next(db, worker_id)
            except SQLAlchemyError:
                log.warning("worker: database unavailable; retrying", exc_info=True)
                stop.wait(max(poll, 1.0))
                continue
            if job is not None:
                log.info("worker %s claimed job %s", worker_id, job.id)
                status = supervise(db, settings, job, worker_id, stop.is_set)
                ran += 1
                if on_job is not None:
                    on_job(job, status)
                if once:
                    break
                continue
            if once:
                break
            stop.wait(poll)
    finally:
        db.dispose()
    return ran
