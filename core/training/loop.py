"""Training: ``fit(config, snapshot)`` with progress and stop callbacks, CPU and CUDA fast paths.

fit is built from small verbs, like torchvision's reference script: load the data
(core.training.data), build the model and its optimizer, then per epoch ``train_one_epoch``,
``evaluate`` on the validation split and ``save_checkpoint`` when the epoch is the best so far.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import save as st_save
from torch import nn

from core.errors import DatasetError
from core.files import write_atomic
from core.training import metrics as ev
from core.training import plan, resume, speed
from core.training.balance import choose_balance
from core.training.config import EpochReport, TrainConfig, TrainResult, resolve_img_size
from core.training.data import SnapshotLike, TrainingData, augment, load_training_data
from core.training.predict import calibrate, predict_tensor
from core.training.step import Step, prepare, train_step
from core.vision.device import resolve_device
from core.vision.images import DecodeLimits

log = logging.getLogger(__name__)


def save_checkpoint(
    directory: Path, model: nn.Module, epoch: int, cfg: TrainConfig, metrics: dict[str, Any]
) -> None:
    """Best-so-far weights + a small JSON beside them, each written atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_atomic(directory / "checkpoint.safetensors", st_save(state))
    info = {"epoch": epoch, "config": cfg.to_dict(), "metrics": metrics}
    write_atomic(directory / "checkpoint.json", json.dumps(info, indent=2).encode())


def train_one_epoch(
    step: Step,
    data: TrainingData,
    cfg: TrainConfig,
    gen: torch.Generator,
    batch: int,
    steps_per_epoch: int,
    should_stop: Callable[[], bool] | None,
) -> tuple[float, int, bool]:
    """One pass over shuffled, augmented train batches: (mean loss, images seen, stopped)."""
    step.model.train()
    x, y = data.x_train, data.y_train
    device = x.device
    if step.draw_weights is None:
        perm = torch.randperm(x.shape[0], generator=gen).to(device)
    else:  # class-balanced epoch: as many draws as images, with replacement
        draws = torch.multinomial(step.draw_weights, x.shape[0], True, generator=gen)
        perm = draws.to(device)
    loss_sum = torch.zeros((), device=device)
    seen = 0
    for i in range(steps_per_epoch):
        if should_stop is not None and should_stop():
            return float(loss_sum) / max(seen, 1), seen, True
        idx = perm[i * batch : (i + 1) * batch]
        loss = train_step(step, augment(x[idx], cfg, gen, data.mean, data.std), y[idx])
        loss_sum += loss.detach() * len(idx)  # stays on device: no sync per step
        seen += len(idx)
    return float(loss_sum) / max(seen, 1), seen, False


def evaluate(
    step: Step, data: TrainingData, class_names: list[str], batch_size: int
) -> tuple[float, ev.EvalResult] | None:
    """Validation loss and metrics of the model as it stands; None without a val split."""
    if data.x_val is None or data.y_val is None:
        return None
    probs = predict_tensor(
        step.model, data.x_val, data.mean, data.std, batch_size, step.amp, step.channels_last
    ).cpu()
    y_val = torch.from_numpy(data.y_val)
    val_loss = float(F.nll_loss(torch.log(probs.clamp_min(1e-12)), y_val))
    pred = probs.argmax(1).numpy()
    return val_loss, ev.evaluate(data.y_val, pred, class_names, probs.numpy())


def fit(
    config: TrainConfig,
    snapshot: SnapshotLike,
    on_progress: Callable[[EpochReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_dir: Path | None = None,
    *,
    limits: DecodeLimits | None = None,
) -> TrainResult:
    """Train ``config.arch`` on the snapshot's train split; keep the epoch with the best val F1.

    The product passes the configured decode limits (``DecodeLimits.from_settings``); None
    means the defaults (benchmark scripts).
    """
    cfg = config
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    size = resolve_img_size(cfg, snapshot.entries, device.type)
    img_size = size.img_size
    log.info("input %s, %s", size.reason, cfg.resize)
    in_channels = 1 if snapshot.grayscale else 3
    class_names = list(snapshot.class_names)
    if len(class_names) < 2:
        raise DatasetError(f"training needs at least 2 classes, the snapshot has {class_names}")
    old_threads = torch.get_num_threads()
    if not cuda:
        torch.set_num_threads(cfg.num_threads or os.cpu_count() or 1)
    try:
        if cuda:
            torch.backends.cudnn.benchmark = True  # fixed input shapes: pick the fastest once
        torch.manual_seed(cfg.seed)
        gen = torch.Generator().manual_seed(cfg.seed)
        data = load_training_data(snapshot, cfg, img_size, in_channels, device, limits)
        counts = torch.bincount(data.y_train.cpu(), minlength=len(class_names)).tolist()
        balance = choose_balance(cfg.balance, dict(zip(class_names, counts, strict=True)))
        log.info("class balance: %s", balance.reason)
        n_val = 0 if data.x_val is None else int(data.x_val.shape[0])
        key = resume.fingerprint(config, class_names, int(data.x_train.shape[0]), n_val)
        earlier = resume.load_state(checkpoint_dir, key)
        if earlier is None:
            epochs = speed.plan_epochs(cfg, device, len(class_names), in_channels, data, balance)
        else:  # the plan of the first attempt: the schedule goes on where it stopped
            epochs = plan.EpochChoice.from_dict(earlier.epochs_choice)
        log.info("epochs: %s", epochs.reason)
        cfg = dataclasses.replace(cfg, epochs=epochs.epochs)
        torch.manual_seed(cfg.seed)  # the same initial weights whether or not the plan probed
        step = prepare(cfg, device, len(class_names), in_channels, data, balance)
        if earlier is not None:
            resume.restore(earlier, step.model, step.opt, step.sched, gen)
            log.warning("resuming after epoch %d of %d from %s (%.0f s trained before)",
                        earlier.epoch, cfg.epochs, checkpoint_dir, earlier.seconds)  # fmt: skip
        # A given epoch count runs in full unless a budget was given too.
        guard = (
            epochs.budget_seconds
            if config.epochs is None or cfg.budget_minutes is not None
            else None
        )
        run = _run_epochs(cfg, step, data, gen, class_names, on_progress, should_stop,
                          checkpoint_dir, guard,
                          _Resumable(key, epochs.to_dict(), earlier))  # fmt: skip
        if run.best_state is not None:
            step.model.load_state_dict(run.best_state)
        temperature, calibration_report, acceptance_report = calibrate(
            step.model, data, cfg.eval_batch_size, step.channels_last,
            class_names=class_names, false_reject=cfg.false_reject,
        )  # fmt: skip
        model = step.model.cpu().to(memory_format=torch.contiguous_format).eval()
    finally:
        torch.set_num_threads(old_threads)
    return TrainResult(
        model=model,
        arch=cfg.arch,
        class_names=class_names,
        in_channels=in_channels,
        img_size=img_size,
        resize=cfg.resize,
        img_size_reason=size.reason,
        arch_reason=plan.arch_reason(cfg.arch),
        epochs_choice=epochs.to_dict(),
        budget_stopped=run.budget_stopped,
        normalisation=data.normalisation,
        best_epoch=run.best_epoch,
        metrics=run.best_metrics,
        history=run.history,
        train_seconds=run.seconds,
        load_seconds=data.seconds,
        device=str(device),
        stopped=run.stopped,
        config=cfg,
        temperature=temperature,
        calibration=calibration_report,
        acceptance=acceptance_report,
        balance=balance.to_dict(),
    )


def _batching(cfg: TrainConfig, data: TrainingData) -> tuple[int, int]:
    """(batch size, steps per epoch) of this run (plan.batching)."""
    return plan.batching(cfg.batch_size, data.x_train.shape[0])


@dataclass
class _Epochs:
    """How the epochs went: their reports and the best one's weights and metrics."""

    history: list[EpochReport] = field(default_factory=list)
    best_score: float = -1.0
    best_epoch: int = 0
    best_state: dict[str, Any] | None = None
    best_metrics: ev.EvalResult | None = None
    stopped: bool = False
    budget_stopped: bool = False
    seconds: float = 0.0


@dataclass
class _Resumable:
    """What the loop needs to write resume states, and the state of an earlier attempt."""

    key: str
    epochs_choice: dict[str, Any]
    earlier: resume.ResumeState | None


def _start(
    resumable: _Resumable | None, on_progress: Callable[[EpochReport], None] | None
) -> tuple[_Epochs, int, float]:
    """(the run so far, the first epoch to train, seconds trained before) of this attempt."""
    run = _Epochs()
    earlier = resumable.earlier if resumable is not None else None
    if earlier is None:
        return run, 1, 0.0
    run.history = list(earlier.history)
    run.best_score, run.best_epoch = earlier.best_score, earlier.best_epoch
    run.best_metrics, run.best_state = earlier.best_metrics, earlier.best_model
    if on_progress is not None and run.history:
        on_progress(run.history[-1])  # the job's row catches up with the restored epoch
    return run, earlier.epoch + 1, earlier.seconds


def _run_epochs(
    cfg: TrainConfig,
    step: Step,
    data: TrainingData,
    gen: torch.Generator,
    class_names: list[str],
    on_progress: Callable[[EpochReport], None] | None,
    should_stop: Callable[[], bool] | None,
    checkpoint_dir: Path | None,
    budget_s: float | None = None,
    resumable: _Resumable | None = None,
) -> _Epochs:
    """Train epoch by epoch, evaluating each and keeping (and checkpointing) the best.

    Past ``budget_s`` seconds the loop ends after the current epoch, keeping the best so far.
    With a checkpoint folder, the state after each epoch is saved there for a resumed attempt
    (core.training.resume), which goes on from ``resumable.earlier``.
    """
    assert cfg.epochs is not None  # fit has planned them
    batch, steps_per_epoch = _batching(cfg, data)
    run, first, before_s = _start(resumable, on_progress)
    t_train = time.perf_counter() - before_s
    for epoch in range(first, cfg.epochs + 1):
        t_epoch = time.perf_counter()
        train_loss, seen, run.stopped = train_one_epoch(
            step, data, cfg, gen, batch, steps_per_epoch, should_stop
        )
        train_time = time.perf_counter() - t_epoch
        if run.stopped and seen == 0:
            break
        evaluated = evaluate(step, data, class_names, cfg.eval_batch_size)
        val_loss, metrics = evaluated if evaluated is not None else (None, None)
        report = EpochReport(
            epoch=epoch,
            train_loss=train_loss,
            val_loss=val_loss,
            val_accuracy=metrics.accuracy if metrics else None,
            macro_f1=metrics.macro_f1 if metrics else None,
            lr=float(step.opt.param_groups[0]["lr"]),
            images_per_second=seen / train_time if train_time > 0 else 0.0,
            seconds=time.perf_counter() - t_epoch,
            recall={c: m.recall for c, m in metrics.per_class.items()} if metrics else None,
            epochs=cfg.epochs,
        )
        run.history.append(report)
        # Without a val split the last epoch wins (score -> epoch number). Ties go to the later
        # epoch: a small validation split often scores several epochs alike, and the later one
        # has trained further down the annealed schedule.
        score = report.macro_f1 if report.macro_f1 is not None else float(epoch)
        if score >= run.best_score:
            run.best_score, run.best_epoch, run.best_metrics = score, epoch, metrics
            run.best_state = copy.deepcopy(step.model.state_dict())
            if checkpoint_dir is not None:
                save_checkpoint(
                    Path(checkpoint_dir), step.model, epoch, cfg,
                    metrics.to_dict() if metrics else {},
                )  # fmt: skip
        if checkpoint_dir is not None and resumable is not None and not run.stopped:
            resume.save_state(
                Path(checkpoint_dir), resumable.key, epoch=epoch,
                epochs_choice=resumable.epochs_choice, history=run.history,
                best_score=run.best_score, best_epoch=run.best_epoch,
                best_metrics=run.best_metrics, seconds=time.perf_counter() - t_train,
                model=step.model, best_model=run.best_state, opt=step.opt, sched=step.sched,
                generator=gen,
            )  # fmt: skip
        log.info(
            "epoch %d/%d loss %.4f val_acc %s f1 %s %.0f img/s %.1f s",
            epoch, cfg.epochs, report.train_loss, report.val_accuracy, report.macro_f1,
            report.images_per_second, report.seconds,
        )  # fmt: skip
        if on_progress is not None:
            on_progress(report)
        if run.stopped:
            break
        elapsed = time.perf_counter() - t_train
        if budget_s is not None and elapsed > budget_s and epoch < cfg.epochs:
            log.warning(
                "time budget of %.0f s used after epoch %d of %d (%.0f s): stopping, keeping "
                "epoch %d", budget_s, epoch, cfg.epochs, elapsed, run.best_epoch,
            )  # fmt: skip
            run.budget_stopped = True
            break
    if data.x_train.device.type == "cuda":
        torch.cuda.synchronize()
    run.seconds = time.perf_counter() - t_train
    return run
