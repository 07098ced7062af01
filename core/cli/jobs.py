"""Commands for the training queue: jobs submit/list/show/cancel, and the worker."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Annotated, Any

import typer

from core.auth import permissions
from core.cli.common import JsonOpt, emit_json, open_database, percent, settings
from core.jobs import queue
from core.jobs import worker as job_worker
from core.registry import catalog
from core.training.balance import BALANCE_MODES, check_mode
from core.training.config import TrainConfig
from core.vision.acceptance import DEFAULT_FALSE_REJECT
from db.queries.jobs import JobRecord

app = typer.Typer(help="Queue, watch and cancel training jobs.", no_args_is_help=True)


def _job_dict(job: JobRecord) -> dict[str, Any]:
    d = asdict(job)
    d["status"] = job.status.value
    d["is_finished"] = job.is_finished
    return d


def _line(job: JobRecord) -> str:
    pct = f"{job.progress:>4.0%}"
    name = job.dataset_name or f"dataset {job.dataset_id}"
    text = job.error if job.error else (job.message or "")
    return f"{job.id:>5}  {job.status.value:<10} {pct}  {name[:28]:<28} {text}"


@app.command("submit")
def submit(
    dataset: Annotated[int, typer.Option(help="Id of an imported dataset.")],
    arch: Annotated[str | None, typer.Option(help="Architecture.")] = None,
    epochs: Annotated[
        int | None, typer.Option(help="Epochs (default: chosen from the dataset and budget).")
    ] = None,
    budget_minutes: Annotated[
        float | None,
        typer.Option(
            help="Time budget of the training loop (default: 15 on the CPU, 10 on a GPU)."
        ),
    ] = None,
    img_size: Annotated[int | None, typer.Option(help="Input side in pixels.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for init and augmentation.")] = 0,
    balance: Annotated[
        str, typer.Option(help=f"Class balancing: {', '.join(BALANCE_MODES)}.")
    ] = "auto",
    rot90: Annotated[
        bool, typer.Option("--rot90", help="Add 90-degree turns (rotation-symmetric parts).")
    ] = False,
    false_reject: Annotated[
        float,
        typer.Option(
            help="Share of good parts the good-class acceptance threshold may send to review "
            "(0 turns it off)."
        ),
    ] = DEFAULT_FALSE_REJECT,
    as_json: JsonOpt = False,
) -> None:
    """Queue a training job; a worker (`defectlens worker`, started by `run`) runs it."""
    s, db = open_database()
    config = TrainConfig(
        seed=seed, device=(device or s.device).lower(), balance=check_mode(balance), rot90=rot90,
        false_reject=false_reject,
    )  # fmt: skip
    for name, value in (
        ("arch", arch),
        ("epochs", epochs),
        ("img_size", img_size),
        ("batch_size", batch_size),
        ("lr", lr),
        ("budget_minutes", budget_minutes),
    ):
        if value is not None:
            setattr(config, name, value)
    job = queue.submit_job(db, s, permissions.SYSTEM, dataset, config)
    if as_json:
        emit_json(_job_dict(job))
    else:
        typer.echo(f"queued job {job.id} on dataset {job.dataset_id} ({job.backend} backend)")


@app.command("list")
def list_cmd(
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
    status: Annotated[
        list[str] | None, typer.Option(help="Only these statuses (repeatable).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List training jobs, newest first."""
    _s, db = open_database()
    rows = queue.list_jobs(db, permissions.SYSTEM, limit=limit, statuses=status or None)
    if as_json:
        emit_json({"jobs": [_job_dict(j) for j in rows]})
        return
    if not rows:
        typer.echo("no training jobs yet")
    for job in rows:
        typer.echo(_line(job))


@app.command("show")
def show(
    job_id: int,
    log_lines: Annotated[int, typer.Option(help="Lines of the job log to show.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """One job with its per-epoch metrics and the end of its log."""
    s, db = open_database()
    job = queue.get_job(db, permissions.SYSTEM, job_id)
    metrics = queue.job_metrics(db, permissions.SYSTEM, job_id)
    tail = queue.log_tail(s, permissions.SYSTEM, job, log_lines)
    # The finished job's model: its per-class precision, recall and F1 (None before it exists).
    per_class = None
    if job.model_id is not None:
        per_class = catalog.get_model(db, permissions.SYSTEM, job.model_id).metrics.get("per_class")
    if as_json:
        emit_json(
            {
                **_job_dict(job),
                "metrics": [asdict(m) for m in metrics],
                "per_class": per_class,
                "log_tail": tail,
            }
        )
        return
    typer.echo(_line(job))
    if job.eta_seconds is not None:
        typer.echo(f"  about {job.eta_seconds:.0f} s left")
    if job.model_id is not None:
        typer.echo(f"  model {job.model_id}")
    for m in metrics:
        loss = "–" if m.train_loss is None else f"{m.train_loss:.4f}"
        typer.echo(f"  epoch {m.epoch:>3}  loss {loss}  val acc {percent(m.val_accuracy)}")
    for cls, m_cls in (per_class or {}).items():
        typer.echo(f"  {cls:<24} recall {m_cls['recall']:.3f}  n={m_cls['support']}")
    if tail:
        typer.echo(tail)


@app.command("cancel")
def cancel(job_id: int, as_json: JsonOpt = False) -> None:
    """Cancel a job: a queued one at once, a running one at its next batch."""
    _s, db = open_database()
    job = queue.cancel_job(db, permissions.SYSTEM, job_id)
    if as_json:
        emit_json(_job_dict(job))
    elif job.is_finished:
        typer.echo(f"job {job.id} cancelled")
    else:
        typer.echo(f"job {job.id}: cancel requested; it stops at the next batch")


def worker(
    once: Annotated[bool, typer.Option("--once", help="Run at most one job, then exit.")] = False,
    poll_seconds: Annotated[
        float | None, typer.Option(help="Seconds between looks at the queue.")
    ] = None,
) -> None:
    """Run queued training jobs until Ctrl-C or SIGTERM (`defectlens run` starts one)."""
    s = settings()
    if s.log_level is None:
        logging.getLogger().setLevel(logging.INFO)  # an operator wants to see claims and ends
    job_worker.run_worker(s, once=once, poll_s=poll_seconds)
