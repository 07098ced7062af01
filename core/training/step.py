"""One optimisation step and what it needs: the model on its device, AdamW under a one-cycle
schedule, the loss with the run's class balancing, and the step's numerics. fit trains with it;
core.training.speed times a few of the same steps on a throwaway Step to plan the run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from core.training import plan
from core.training.balance import BalanceChoice, class_weights, sample_weights
from core.training.config import TrainConfig
from core.training.data import TrainingData
from core.vision.architectures import build_model
from core.vision.device import cpu_has_native_bf16


@dataclass
class Step:
    """What one optimisation step needs besides the batch."""

    model: nn.Module
    run_model: Callable[[torch.Tensor], torch.Tensor]  # the model, or its compiled form
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    loss_fn: nn.Module
    amp: bool
    channels_last: bool
    draw_weights: torch.Tensor | None = None  # balance="sampler": per-image draw weights (CPU)


def make_optimizer(
    model: nn.Module, cfg: TrainConfig, total_steps: int, fused: bool
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.OneCycleLR]:
    """AdamW (no weight decay on BN and biases) under a one-cycle cosine schedule."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=cfg.lr,
        fused=True if fused else None,
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=cfg.lr,
        total_steps=max(total_steps, 1),
        pct_start=cfg.warmup_fraction,
        anneal_strategy="cos",
        div_factor=20.0,
        final_div_factor=200.0,
    )
    return opt, sched


def prepare(
    cfg: TrainConfig,
    device: torch.device,
    num_classes: int,
    in_channels: int,
    data: TrainingData,
    balance: BalanceChoice,
) -> Step:
    """The model on the device, its optimizer and schedule, the loss and the step's numerics."""
    cuda = device.type == "cuda"
    amp = (cuda or cpu_has_native_bf16()) if cfg.amp is None else cfg.amp
    channels_last = cuda if cfg.channels_last is None else cfg.channels_last
    model = build_model(cfg.arch, num_classes, in_channels, cfg.weights_path).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    run_model: Callable[[torch.Tensor], torch.Tensor] = model
    if cfg.compile and cuda:
        run_model = torch.compile(model)
    _batch, steps_per_epoch = plan.batching(cfg.batch_size, data.x_train.shape[0])
    assert cfg.epochs is not None  # fit has planned them
    opt, sched = make_optimizer(model, cfg, cfg.epochs * steps_per_epoch, fused=cuda)
    labels = data.y_train.cpu().tolist()
    weight = None
    if balance.used == "weights":
        weight = torch.tensor(class_weights(labels, num_classes), device=device)
    draw = None
    if balance.used == "sampler":
        draw = torch.tensor(sample_weights(labels, num_classes), dtype=torch.float64)
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=cfg.label_smoothing)
    return Step(model, run_model, opt, sched, loss_fn, amp, channels_last, draw)


def train_step(step: Step, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    """Forward, backward and an optimiser and schedule step on one augmented batch; its loss."""
    if step.channels_last:
        xb = xb.contiguous(memory_format=torch.channels_last)
    with torch.autocast(xb.device.type, dtype=torch.bfloat16, enabled=step.amp):
        loss = step.loss_fn(step.run_model(xb).float(), yb)
    step.opt.zero_grad(set_to_none=True)
    loss.backward()
    step.opt.step()
    step.sched.step()
    return loss
