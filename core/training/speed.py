"""How fast training runs here: a few throwaway steps time an epoch, and the plan follows."""

from __future__ import annotations

import dataclasses
import time

import torch

from core.training import plan
from core.training.balance import BalanceChoice
from core.training.config import TrainConfig
from core.training.data import TrainingData, augment
from core.training.predict import predict_tensor
from core.training.step import prepare, train_step


def plan_epochs(
    cfg: TrainConfig,
    device: torch.device,
    num_classes: int,
    in_channels: int,
    data: TrainingData,
    balance: BalanceChoice,
) -> plan.EpochChoice:
    """The run's epochs: the given number, or chosen from the dataset with the measured speed."""
    budget = plan.budget_seconds(cfg.budget_minutes, device.type)
    steps = plan.batching(cfg.batch_size, data.x_train.shape[0])[1]
    if cfg.epochs is not None:
        return plan.choose_epochs(steps, device.type, budget_s=budget, epoch_seconds=None,
                                  given=cfg.epochs)  # fmt: skip
    seconds = measure_epoch_seconds(cfg, device, num_classes, in_channels, data, balance)
    return plan.choose_epochs(steps, device.type, budget_s=budget, epoch_seconds=seconds,
                              sampler=balance.used == "sampler")  # fmt: skip


def measure_epoch_seconds(
    cfg: TrainConfig,
    device: torch.device,
    num_classes: int,
    in_channels: int,
    data: TrainingData,
    balance: BalanceChoice,
) -> float:
    """Seconds one epoch (training steps and validation) takes here, from a few throwaway steps.

    The steps are the run's own (core.training.step) on a separate Step and generator, so the
    run itself starts untouched.
    """
    cuda = device.type == "cuda"
    warm, timed = (2, 5) if cuda else (1, 3)
    # Enough scheduled steps for the probe whatever the dataset's size (one-cycle refuses more).
    probe = prepare(dataclasses.replace(cfg, epochs=warm + timed), device, num_classes,
                    in_channels, data, balance)  # fmt: skip
    x, y = data.x_train, data.y_train
    batch, steps_per_epoch = plan.batching(cfg.batch_size, x.shape[0])
    gen = torch.Generator().manual_seed(cfg.seed + 1)

    def one_step() -> None:
        idx = torch.randint(0, x.shape[0], (batch,), generator=gen).to(x.device)
        train_step(probe, augment(x[idx], cfg, gen, data.mean, data.std), y[idx])

    probe.model.train()
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
        predict_tensor(probe.model, sample, data.mean, data.std, cfg.eval_batch_size, probe.amp,
                       probe.channels_last)  # fmt: skip
        if cuda:
            torch.cuda.synchronize()
        val_s = (time.perf_counter() - t0) / sample.shape[0] * data.x_val.shape[0]
    return train_s + val_s
