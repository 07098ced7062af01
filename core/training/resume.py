"""Resuming a training run that was killed: the state after each finished epoch, in one file.

After every epoch fit writes ``resume.safetensors`` into the job's folder: the weights, the
optimizer's moments, the schedule's position, both random generators, the best epoch's weights
and the run's history. The tensors are the file's tensors and the rest rides in its metadata, so
one atomic replace writes it all: a kill at any instant leaves the previous epoch's state or
this one's, never a mix. ``load_state`` gives it back only when it was written for the same
job (its config, classes and split), and fit then goes on at the next epoch as if it had never
stopped. safetensors, not pickle: the file holds no code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save
from torch import nn

from core.files import write_atomic
from core.training import metrics as ev
from core.training.config import EpochReport, TrainConfig

log = logging.getLogger(__name__)

RESUME_FILE = "resume.safetensors"
_FORMAT = 1
# Settings of the machine that runs the job, not of the job: a resumed run may differ in them.
_NOT_IDENTITY = ("num_threads", "device")


def fingerprint(cfg: TrainConfig, class_names: list[str], n_train: int, n_val: int) -> str:
    """What a resume state must match: the job's config as submitted, its classes and split."""
    config = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_IDENTITY}
    ident = {"config": config, "classes": class_names, "n_train": n_train, "n_val": n_val}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class ResumeState:
    """Where a run stood after its last finished epoch."""

    epoch: int
    epochs_choice: dict[str, Any]  # plan.EpochChoice.to_dict() of the first attempt
    history: list[EpochReport]
    best_score: float
    best_epoch: int
    best_metrics: ev.EvalResult | None
    seconds: float  # training time spent by the earlier attempts
    model: dict[str, torch.Tensor]
    best_model: dict[str, torch.Tensor] | None
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    generator: torch.Tensor
    torch_rng: torch.Tensor
    cuda_rng: torch.Tensor | None


def _cpu(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().contiguous()  # serialised at once: no copy needed


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in values.items():
        try:
            json.dumps(v)
        except TypeError:
            continue  # e.g. a function a scheduler keeps; the fresh scheduler has it already
        out[k] = v
    return out


def save_state(
    directory: Path,
    key: str,
    *,
    epoch: int,
    epochs_choice: dict[str, Any],
    history: list[EpochReport],
    best_score: float,
    best_epoch: int,
    best_metrics: ev.EvalResult | None,
    seconds: float,
    model: nn.Module,
    best_model: dict[str, torch.Tensor] | None,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
) -> None:
    """Write the state after ``epoch`` (one atomic file; ``key`` from ``fingerprint``)."""
    tensors = {f"model.{k}": _cpu(v) for k, v in model.state_dict().items()}
    if best_model is not None and best_epoch != epoch:
        tensors.update({f"best.{k}": _cpu(v) for k, v in best_model.items()})
    opt_sd = opt.state_dict()
    scalars: dict[str, Any] = {}
    for idx, st in opt_sd["state"].items():
        for name, value in st.items():
            if torch.is_tensor(value):
                tensors[f"opt.{idx}.{name}"] = _cpu(value)
            else:
                scalars[f"{idx}.{name}"] = value
    tensors["rng.generator"] = generator.get_state()
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    meta = {
        "format": _FORMAT,
        "key": key,
        "epoch": epoch,
        "epochs_choice": epochs_choice,
        "history": [dataclasses.asdict(h) for h in history],
        "best_score": best_score,
        "best_epoch": best_epoch,
        "best_metrics": best_metrics.to_dict() if best_metrics is not None else None,
        "seconds": seconds,
        "param_groups": opt_sd["param_groups"],
        "opt_scalars": scalars,
        "scheduler": _json_safe(sched.state_dict()),
    }
    directory.mkdir(parents=True, exist_ok=True)
    blob = st_save(tensors, metadata={"resume": json.dumps(meta)})
    write_atomic(directory / RESUME_FILE, blob)


def _eval_result(d: dict[str, Any] | None) -> ev.EvalResult | None:
    if d is None:
        return None
    return ev.EvalResult(
        class_names=list(d["class_names"]),
        n=int(d["n"]),
        accuracy=float(d["accuracy"]),
        macro_f1=float(d["macro_f1"]),
        per_class={k: ev.ClassMetrics(**v) for k, v in d["per_class"].items()},
        confusion_matrix=d["confusion_matrix"],
        roc_auc=d.get("roc_auc"),
    )


def load_state(directory: Path | None, key: str) -> ResumeState | None:
    """The state a killed attempt of this run left, or None (none, unreadable or not this run's)."""
    if directory is None:
        return None
    path = Path(directory) / RESUME_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("resume", "{}"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open API
    except (SafetensorError, OSError, ValueError) as e:
        log.warning("resume state %s is unreadable (%s); starting over", path, e)
        return None
    if meta.get("format") != _FORMAT or meta.get("key") != key:
        log.warning("resume state %s was written for another run; starting over", path)
        return None
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if name.startswith("opt."):
            _, idx, field = name.split(".", 2)
            state.setdefault(int(idx), {})[field] = value
    for name, value in meta["opt_scalars"].items():
        idx, field = name.split(".", 1)
        state.setdefault(int(idx), {})[field] = value
    groups = meta["param_groups"]
    for g in groups:
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])

    def part(prefix: str) -> dict[str, torch.Tensor]:
        return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}

    model = part("model.")
    best = part("best.") or (model if meta["best_epoch"] == meta["epoch"] else None)
    return ResumeState(
        epoch=int(meta["epoch"]),
        epochs_choice=meta["epochs_choice"],
        history=[EpochReport(**h) for h in meta["history"]],
        best_score=float(meta["best_score"]),
        best_epoch=int(meta["best_epoch"]),
        best_metrics=_eval_result(meta["best_metrics"]),
        seconds=float(meta["seconds"]),
        model=model,
        best_model=best or None,
        optimizer={"state": state, "param_groups": groups},
        scheduler=meta["scheduler"],
        generator=tensors["rng.generator"],
        torch_rng=tensors["rng.torch"],
        cuda_rng=tensors.get("rng.cuda"),
    )


def restore(
    state: ResumeState,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
) -> None:
    """Put a freshly prepared model, optimizer, schedule and generator where the state was."""
    model.load_state_dict(state.model)
    opt.load_state_dict(state.optimizer)
    sd = sched.state_dict()
    sd.update(state.scheduler)
    sched.load_state_dict(sd)
    generator.set_state(state.generator)
    torch.set_rng_state(state.torch_rng)
    if state.cuda_rng is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state.cuda_rng)


def discard(directory: Path) -> None:
    """Remove a finished job's resume state (it holds the optimizer: several times the model)."""
    (Path(directory) / RESUME_FILE).unlink(missing_ok=True)
