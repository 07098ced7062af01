"""The job queue against a real migrated database: submit checks, cancel, claim, sweep, CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from core import setup
from core.auth import permissions
from core.auth.permissions import CurrentUser
from core.config import Settings, load_settings
from core.errors import Conflict, DatasetError, NotFound, PermissionDenied, ValidationError
from core.jobs import backend, lifecycle, queue
from core.registry import catalog
from core.training.config import EpochReport, TrainConfig
from db.engine import Database
from db.models import AuditEntry, JobStatus, Role, TrainingJob, utcnow
from db.queries.catalog import DatasetRecord
from tests.core.jobs_support import REPO_ROOT, import_tiny, worker_env
from tests.db.conftest import fresh_pg_url  # noqa: F401 - a fixture: a throwaway PG database

SMALL = TrainConfig(epochs=1, img_size=32, device="cpu")


@pytest.fixture
def dataset(db: Database, settings: Settings, tmp_path: Path) -> DatasetRecord:
    return import_tiny(db, settings, tmp_path / "src")


def test_submit_queues_a_row_with_config_and_audit(db, settings, dataset, make_user) -> None:
    engineer, _ = make_user("eve", Role.ENGINEER)
    job = queue.submit_job(db, settings, engineer, dataset.id, SMALL)
    assert job.status == JobStatus.QUEUED and not job.is_finished
    assert job.dataset_name == dataset.name and job.created_by == "eve"
    assert job.config["epochs"] == 1 and job.config["img_size"] == 32
    assert job.backend == "local" and job.model_id is None and job.eta_seconds is None
    assert [j.id for j in queue.list_jobs(db, permissions.SYSTEM, statuses=["queued"])] == [job.id]
    with db.read() as s:
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "job_submitted")).all()
    assert [a.entity_id for a in audit] == [str(job.id)] and audit[0].username == "eve"


def test_reviewer_may_not_submit_or_cancel(db, settings, dataset, make_user) -> None:
    reviewer, _ = make_user("rita", Role.REVIEWER)
    with pytest.raises(PermissionDenied):
        queue.submit_job(db, settings, reviewer, dataset.id, SMALL)
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, SMALL)
    with pytest.raises(PermissionDenied):
        queue.cancel_job(db, reviewer, job.id)


def test_submit_refuses_a_missing_dataset(db, settings) -> None:
    with pytest.raises(DatasetError, match="dataset 999 does not exist"):
        queue.submit_job(db, settings, permissions.SYSTEM, 999, SMALL)
    assert queue.list_jobs(db, permissions.SYSTEM) == []


def test_submit_refuses_a_dataset_deleted_from_disk(db, settings, dataset) -> None:
    shutil.rmtree(dataset.snapshot_dir)
    with pytest.raises(DatasetError, match="deleted from disk.*import it again"):
        queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, SMALL)
    assert queue.list_jobs(db, permissions.SYSTEM) == []


def test_submit_refuses_a_one_class_dataset(db, settings, dataset) -> None:
    # The importer itself refuses one class, so record one directly (e.g. an old snapshot).
    one, _ = catalog.register_dataset(
        db,
        permissions.SYSTEM,
        name="only ok",
        source="test",
        class_names=["ok"],
        counts={"ok": 20},
        manifest_path=Path(dataset.manifest_path),
        content_hash="f" * 64,
        health={},
    )
    with pytest.raises(DatasetError, match=r"has 1 class \(ok\); training needs at least 2"):
        queue.submit_job(db, settings, permissions.SYSTEM, one.id, SMALL)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"arch": "nope"}, "unknown architecture"),
        ({"epochs": 0}, "epochs must be between"),
        ({"batch_size": 0}, "batch size"),
        ({"img_size": 4}, "image size"),
        ({"lr": 0.0}, "learning rate"),
        ({"device": "tpu"}, "device must be one of"),
        ({"balance": "smote"}, "balance must be one of"),
    ],
)
def test_submit_refuses_bad_settings(db, settings, dataset, change, message) -> None:
    config = TrainConfig(**{**SMALL.to_dict(), "weights_path": None, **change})
    with pytest.raises(ValidationError, match=message):
        queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, config)


def test_checking_a_job_config_does_not_load_torch() -> None:
    # Fresh interpreter: this test process has long imported torch.
    code = (
        "import sys; from core.jobs import queue; from core.training.config import TrainConfig; "
        "queue.validate_config(TrainConfig(epochs=1)); print(sorted(m for m in sys.modules "
        "if m.partition('.')[0] in ('torch', 'ray')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.skipif(backend.detected_gpu() is not None, reason="this machine has a GPU")
def test_submit_refuses_cuda_without_a_gpu(db, settings, dataset) -> None:
    config = TrainConfig(epochs=1, img_size=32, device="cuda")
    with pytest.raises(ValidationError, match="no CUDA GPU"):
        queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, config)


def test_cancel_queued_is_immediate_and_finished_is_a_conflict(db, settings, dataset) -> None:
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, SMALL)
    cancelled = queue.cancel_job(db, permissions.SYSTEM, job.id)
    assert cancelled.status == JobStatus.CANCELLED and cancelled.finished_at is not None
    assert lifecycle.claim_next(db, "w1") is None  # a cancelled job is never claimed
    with pytest.raises(Conflict, match="already cancelled"):
        queue.cancel_job(db, permissions.SYSTEM, job.id)
    with pytest.raises(NotFound):
        queue.cancel_job(db, permissions.SYSTEM, 12345)


def test_cancel_running_sets_the_flag_the_run_reads(db, settings, dataset) -> None:
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, SMALL)
    claimed = lifecycle.claim_next(db, "w1")
    assert claimed is not None and claimed.id == job.id and claimed.status == JobStatus.RUNNING
    assert not lifecycle.should_stop(db, job.id, "w1")
    after = queue.cancel_job(db, permissions.SYSTEM, job.id)
    assert after.status == JobStatus.RUNNING and after.cancel_requested
    assert lifecycle.should_stop(db, job.id, "w1")
    assert lifecycle.heartbeat(db, job.id, "w1").cancel_requested


def test_progress_metrics_eta_and_finish(db, settings, dataset) -> None:
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, SMALL)
    assert lifecycle.claim_next(db, "w1") is not None
    with db.write() as s:  # pretend it started 10 s ago
        s.execute(update(TrainingJob).values(started_at=utcnow() - timedelta(seconds=10)))
    report = EpochReport(1, 0.5, 0.4, 0.75, 0.7, 1e-3, 123.0, 1.0)
    lifecycle.record_epoch(db, job.id, "w1", report, epochs=4)
    running = queue.get_job(db, permissions.SYSTEM, job.id)
    assert running.progress == pytest.approx(0.25)
    assert running.eta_seconds is not None and 25 <= running.eta_seconds <= 40
    assert "epoch 1/4" in (running.message or "")
    assert "lowest recall" not in (running.message or "")  # no per-class recall given
    [m] = queue.job_metrics(db, permissions.SYSTEM, job.id)
    assert (m.epoch, m.val_accuracy, m.macro_f1, m.images_per_second) == (1, 0.75, 0.7, 123.0)
    # Another worker cannot end it; its owner can, once.
    assert not lifecycle.finish(db, job.id, "w2", JobStatus.SUCCEEDED)
    assert lifecycle.finish(db, job.id, "w1", JobStatus.SUCCEEDED)
    assert not lifecycle.finish(db, job.id, "w1", JobStatus.FAILED, error="late")
    done = queue.get_job(db, permissions.SYSTEM, job.id)
    assert done.status == JobStatus.SUCCEEDED and done.progress == 1.0 and done.error is None


def test_epoch_message_names_the_class_recalled_worst(db, settings, dataset) -> None:
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, SMALL)
    assert lifecycle.claim_next(db, "w1") is not None
    recall = {"ok": 1.0, "scratch": 0.25}
    report = EpochReport(1, 0.5, 0.4, 0.75, 0.7, 1e-3, 123.0, 1.0, recall=recall)
    assert report.lowest_recall() == ("scratch", 0.25)
    lifecycle.record_epoch(db, job.id, "w1", report, epochs=4)
    assert (queue.get_job(db, permissions.SYSTEM, job.id).message or "").endswith(
        "· lowest recall scratch 25%"
    )


def test_sweep_fails_only_jobs_with_a_stale_heartbeat(db, settings, dataset) -> None:
    a = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, SMALL)
    b = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, SMALL)
    assert lifecycle.claim_next(db, "dead") is not None
    assert lifecycle.claim_next(db, "alive") is not None
    with db.write() as s:
        s.execute(
            update(TrainingJob)
            .where(TrainingJob.id == a.id)
            .values(heartbeat_at=utcnow() - timedelta(seconds=120))
        )
    assert lifecycle.sweep_stale(db, timeout_s=30) == [a.id]
    swept = queue.get_job(db, permissions.SYSTEM, a.id)
    assert swept.status == JobStatus.FAILED
    assert swept.error is not None and "worker stopped responding" in swept.error
    assert "dead" in swept.error
    assert queue.get_job(db, permissions.SYSTEM, b.id).status == JobStatus.RUNNING
    assert not lifecycle.heartbeat(db, a.id, "dead").owned  # the dead worker cannot resurrect it


def test_log_tail_returns_the_last_lines(db, settings, dataset) -> None:
    job = queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, SMALL)
    assert queue.log_tail(settings, permissions.SYSTEM, job) == ""
    path = queue.log_path(settings, job.id)
    path.parent.mkdir(parents=True)
    path.write_text("".join(f"line {i}\n" for i in range(500)))
    assert (
        queue.log_tail(settings, permissions.SYSTEM, job, lines=3) == "line 497\nline 498\nline 499"
    )
    # The log quotes the training data's paths and errors: engineers and admins only.
    for role in ("viewer", "reviewer"):
        with pytest.raises(PermissionDenied):
            queue.log_tail(settings, CurrentUser(id=None, username=role, role=Role(role)), job)
    assert queue.log_tail(settings, CurrentUser(id=None, username="e", role=Role.ENGINEER), job)


def _race_claims(url: str, n_threads: int) -> list[list[int]]:
    """n threads, each with its own Database, claim until the queue is empty."""
    got: list[list[int]] = [[] for _ in range(n_threads)]
    barrier = threading.Barrier(n_threads)

    def claim(i: int) -> None:
        own = Database(url)
        try:
            barrier.wait()
            while (job := lifecycle.claim_next(own, f"w{i}")) is not None:
                got[i].append(job.id)
        finally:
            own.dispose()

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return got


def _assert_each_claimed_once(db: Database, ids: list[int], got: list[list[int]]) -> None:
    flat = [i for part in got for i in part]
    assert sorted(flat) == sorted(ids), "every job claimed exactly once"
    with db.read() as s:
        rows = s.execute(select(TrainingJob.id, TrainingJob.worker_id)).all()
    owner = {job_id: f"w{i}" for i, part in enumerate(got) for job_id in part}
    assert {r.id: r.worker_id for r in rows} == owner


def test_claim_is_atomic_on_sqlite(db, settings, dataset) -> None:
    ids = [
        queue.submit_job(db, settings, permissions.SYSTEM, dataset.id, SMALL).id for _ in range(30)
    ]
    got = _race_claims(settings.db_url, 4)
    _assert_each_claimed_once(db, ids, got)


@pytest.mark.postgres
def test_claim_is_atomic_on_postgresql(tmp_path, fresh_pg_url) -> None:  # noqa: F811
    s = load_settings(
        {"DEFECTLENS_HOME": str(tmp_path / "home"), "DEFECTLENS_DB_URL": fresh_pg_url}
    )
    setup.migrate(s)
    pg = setup.open_database(s)
    try:
        record = import_tiny(pg, s, tmp_path / "src")
        ids = [queue.submit_job(pg, s, permissions.SYSTEM, record.id, SMALL).id for _ in range(40)]
        got = _race_claims(s.db_url, 6)
        _assert_each_claimed_once(pg, ids, got)
        assert sum(1 for part in got if part) >= 2, "SKIP LOCKED lets several workers claim"
    finally:
        pg.dispose()


def _cli(
    settings: Settings, *args: str, log_level: str | None = "WARNING"
) -> subprocess.CompletedProcess[str]:
    env = worker_env(settings)
    env.pop("DEFECTLENS_LOG_LEVEL")
    if log_level is not None:
        env["DEFECTLENS_LOG_LEVEL"] = log_level
    return subprocess.run(
        [sys.executable, "-c", "from core.cli import main; main()", *args],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_cli_submit_list_show_cancel(db, settings, dataset) -> None:
    sub = _cli(settings, "jobs", "submit", "--dataset", str(dataset.id), "--epochs", "2",
               "--img-size", "32", "--device", "cpu", "--balance", "sampler", "--json")  # fmt: skip
    assert sub.returncode == 0, sub.stderr
    job = json.loads(sub.stdout)
    assert job["status"] == "queued" and job["config"]["epochs"] == 2
    assert job["config"]["balance"] == "sampler"
    listed = json.loads(_cli(settings, "jobs", "list", "--json").stdout)
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]
    shown = json.loads(_cli(settings, "jobs", "show", str(job["id"]), "--json").stdout)
    assert shown["id"] == job["id"] and shown["metrics"] == [] and shown["log_tail"] == ""
    cancelled = json.loads(_cli(settings, "jobs", "cancel", str(job["id"]), "--json").stdout)
    assert cancelled["status"] == "cancelled"
    again = _cli(settings, "jobs", "cancel", str(job["id"]), "--json")
    assert again.returncode == 1 and again.stdout == ""
    assert again.stderr.strip() == f"error: job {job['id']} already cancelled; nothing to cancel"
    odd = _cli(settings, "jobs", "submit", "--dataset", str(dataset.id), "--balance", "smote")
    assert odd.returncode == 1 and "balance must be one of" in odd.stderr
    budget = _cli(settings, "jobs", "submit", "--dataset", str(dataset.id), "--budget-minutes",
                  "30", "--json")  # fmt: skip
    assert budget.returncode == 0, budget.stderr
    budgeted = json.loads(budget.stdout)["config"]
    assert budgeted["budget_minutes"] == 30 and budgeted["epochs"] is None  # chosen by fit
    never = _cli(settings, "jobs", "submit", "--dataset", str(dataset.id), "--budget-minutes", "0")
    assert never.returncode == 1 and "time budget must be more than 0" in never.stderr
    bad = _cli(settings, "jobs", "submit", "--dataset", "999", "--json")
    assert bad.returncode == 1 and "dataset 999 does not exist" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_log_level_comes_from_settings(db, settings) -> None:
    # Unset: the CLI logs warnings only, so the migration's INFO lines stay out of stderr.
    quiet = _cli(settings, "jobs", "list", "--json", log_level=None)
    assert quiet.returncode == 0 and quiet.stderr == ""
    chatty = _cli(settings, "jobs", "list", "--json", log_level="info")
    assert chatty.returncode == 0 and " INFO alembic" in chatty.stderr
    assert json.loads(chatty.stdout) == {"jobs": []}  # logs never reach stdout
    bad = _cli(settings, "jobs", "list", "--json", log_level="loud")
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "error: DEFECTLENS_LOG_LEVEL='loud' must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL"
    ]
