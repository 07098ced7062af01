"""How fast training runs here: a few throwaway steps time an epoch, and the plan follows."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from core.training import plan
from core.training.config import TrainConfig
from core.training.data import TrainingData, augment
from core.training.predict import predict_tensor
from core.vision.architectures import build_model
from core.vision.device import cpu_has_native_bf16


def plan_epochs(
    cfg: TrainConfig, device: torch.device, num_classes: int, in_channels: int, data: TrainingData
) -> plan.EpochChoice:
    """The run's epochs: the given number, or chosen from the dataset with the measured speed."""
    budget = plan.budget_seconds(cfg.budget_minutes, device.type)
    steps = plan.batching(cfg.batch_size, data.x_train.shape[0])[1]
    if cfg.epochs is not None:
        return plan.choose_epochs(steps, device.type, budget_s=budget, epoch_seconds=None,
                                  given=cfg.epochs)  # fmt: skip
    seconds = measure_epoch_seconds(cfg, device, num_classes, in_channels, data)
    return plan.choose_epochs(steps, device.type, budget_s=budget, epoch_seconds=seconds)


def measure_epoch_seconds(
    cfg: TrainConfig, device: torch.device, num_classes: int, in_channels: int, data: TrainingData
) -> float:
    """Seconds one epoch (training steps and validation) takes here, from a few throwaway steps.

    A separate model, optimizer and generator: the run itself starts untouched.
    """
    cuda = device.type == "cuda"
    amp = (cuda or cpu_has_native_bf16()) if cfg.amp is None else cfg.amp
    channels_last = cuda if cfg.channels_last is None else cfg.channels_last
    model = build_model(cfg.arch, num_classes, in_channels).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, fused=True if cuda else None)
    x, y = data.x_train, data.y_train
    batch, steps_per_epoch = plan.batching(cfg.batch_size, x.shape[0])
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    warm, timed = (2, 5) if cuda else (1, 3)

    def one_step() -> None:
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen).to(x.device)
        xb = augment(x[idx], cfg, gen, data.mean, data.std)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(model(xb).float(), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    model.train()
    for _ in range(warm):
        one_step()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(timed):
        one_step()
    if cuda:
        torch.cuda.synchronize()
    train_s = (time.perf_counter() - t0) / timed * steps_per_epoch
    val_s = 0.0
    if data.x_val is not None and data.x_val.shape[0] > 0:
        sample = data.x_val[: cfg.eval_batch_size]
        t0 = time.perf_counter()
        predict_tensor(model, sample, data.mean, data.std, cfg.eval_batch_size, amp, channels_last)
        if cuda:
            torch.cuda.synchronize()
        val_s = (time.perf_counter() - t0) / sample.shape[0] * data.x_val.shape[0]
    return train_s + val_s
