"""How long a run trains when nobody says: epochs from the dataset's size and the time budget.

Torch-free (the Training page and the CLI read the defaults). fit measures the step time on the
machine (a few throwaway steps) and calls ``choose_epochs`` with it; the choice and its reason
go into the training log and ``train --json`` (the model records the resolved epochs in its
train_config).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

# The benchmarked recipes: 30 epochs on the CPU (NEU 99.2 %); with bf16 numerics on CUDA the same
# recipe peaks at 98.6-98.9 % on NEU while 40 epochs reach 99 % (seconds on an H200).
DEFAULT_EPOCHS: Mapping[str, int] = MappingProxyType({"cpu": 30, "cuda": 40})

# Optimiser steps a run needs at least: the NEU recipe makes 22 steps x 30 epochs = 660. A small
# dataset (a few hundred images: 5 steps per epoch) would otherwise stop after 150 steps, still
# at a high learning rate's noise level, so its epochs are raised to reach this many steps.
MIN_STEPS = 600
MAX_AUTO_EPOCHS = 200
# Class-balanced draws (core.training.balance) fill half an epoch or more with the smaller
# classes, so the largest class is seen half as often: the recipe's epochs are doubled to give it
# the exposure of the unbalanced recipe (casting with defects cut to 5 %: 30 epochs leave the
# good and the escaped parts' calibrated P(ok) overlapping, 60 separate them; docs/benchmarks.md).
SAMPLER_EPOCH_FACTOR = 2
# Below this many epochs the one-cycle schedule has no room to warm up and anneal.
MIN_EPOCHS_IN_BUDGET = 5

# The default time budget for the training loop, in minutes: on this project's 2-core CPU NEU
# takes about 2 minutes and casting about 10; a GPU trains either in seconds.
DEFAULT_BUDGET_MINUTES: Mapping[str, float] = MappingProxyType({"cpu": 15.0, "cuda": 10.0})


@dataclass(frozen=True)
class EpochChoice:
    """The epochs of a run, why, and the budget it keeps to (None: no budget)."""

    epochs: int
    reason: str
    budget_seconds: float | None = None
    estimated_seconds: float | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "value": self.epochs,
            "reason": self.reason,
            "budget_seconds": self.budget_seconds,
            "estimated_seconds": self.estimated_seconds,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EpochChoice:
        """The inverse of to_dict (a resumed run keeps its first attempt's plan)."""
        return cls(int(d["value"]), str(d["reason"]), d.get("budget_seconds"),
                   d.get("estimated_seconds"))  # fmt: skip


DEFAULT_ARCH = "defectnet"


def arch_reason(arch: str) -> str:
    """Why the run uses this architecture (the default's case, or the user's choice)."""
    if arch != DEFAULT_ARCH:
        return f"{arch}: given"
    return (
        f"{arch}: the default on CPU and GPU, the benchmarked recipe (1.2 M parameters; "
        "docs/benchmarks.md); resnet18 is offered with --arch"
    )


def batching(batch_size: int, n_train: int) -> tuple[int, int]:
    """(batch size, steps per epoch); the ragged last batch is dropped: tiny batches upset BN."""
    batch = max(1, min(batch_size, n_train))
    return batch, max(1, n_train // batch)


def device_kind(device_type: str) -> str:
    """'cuda' or 'cpu': the key of the per-device defaults."""
    return "cuda" if device_type == "cuda" else "cpu"


def budget_seconds(budget_minutes: float | None, device_type: str) -> float:
    """The loop's budget in seconds: the one given, else the device's default."""
    minutes = (
        DEFAULT_BUDGET_MINUTES[device_kind(device_type)]
        if budget_minutes is None
        else budget_minutes
    )
    return float(minutes) * 60.0


def choose_epochs(
    steps_per_epoch: int,
    device_type: str,
    *,
    budget_s: float,
    epoch_seconds: float | None,
    given: int | None = None,
    sampler: bool = False,
) -> EpochChoice:
    """Epochs for a run of ``steps_per_epoch`` steps per epoch, within ``budget_s`` seconds.

    ``given`` (the user's --epochs) is used as is: a given number is never changed, and the
    budget only stops such a run early if it overruns. Otherwise the device's recipe (30 on the
    CPU, 40 on CUDA), doubled when class-balanced draws are on (``sampler``: an epoch of as many
    draws as images then shows the largest class half as often, or less), raised for small
    datasets to reach MIN_STEPS optimiser steps (at most MAX_AUTO_EPOCHS), then lowered, if
    ``epoch_seconds`` (measured) says it would not fit, to what fits (at least
    MIN_EPOCHS_IN_BUDGET).
    """
    steps = max(1, steps_per_epoch)
    if given is not None:
        est = None if epoch_seconds is None else given * epoch_seconds
        return EpochChoice(given, f"{given} epochs: given", budget_s, est)
    base = DEFAULT_EPOCHS[device_kind(device_type)]
    why = f"{base} epochs: the {device_kind(device_type).upper()} recipe ({base * steps} steps)"
    if sampler:
        base *= SAMPLER_EPOCH_FACTOR
        why = (
            f"{base} epochs: the {device_kind(device_type).upper()} recipe, doubled for "
            f"class-balanced draws, which show the largest class half as often per epoch "
            f"({base * steps} steps)"
        )
    epochs = base
    if base * steps < MIN_STEPS:
        epochs = min(MAX_AUTO_EPOCHS, math.ceil(MIN_STEPS / steps))
        why = (
            f"{epochs} epochs: a small training set ({steps} steps per epoch) needs about "
            f"{MIN_STEPS} steps, more than {base} epochs give"
        )
    if epoch_seconds is not None and epoch_seconds > 0:
        fits = int(budget_s // epoch_seconds)
        if fits < epochs:
            cut = max(MIN_EPOCHS_IN_BUDGET, fits)
            why += (
                f"; cut to {cut} to fit the {budget_s / 60:g}-minute budget "
                f"(about {epoch_seconds:.1f} s per epoch here)"
            )
            epochs = cut
        else:
            minutes = epochs * epoch_seconds / 60
            why += f"; about {minutes:.1f} min here, within the {budget_s / 60:g}-minute budget"
    est = None if epoch_seconds is None else epochs * epoch_seconds
    return EpochChoice(epochs, why, budget_s, est)
