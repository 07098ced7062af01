"""core.training.plan: epochs from the dataset's size and the budget, and the budget in fit."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import ValidationError
from core.jobs.queue import validate_config
from core.training import plan
from core.training.config import TrainConfig
from core.training.loop import fit
from tests.core.training.test_loop import make_snapshot


def test_a_dataset_like_neu_keeps_the_benchmarked_recipe() -> None:
    # NEU: 1440 train images, batch 64 -> 22 steps; 30 epochs make 660 steps.
    c = plan.choose_epochs(22, "cpu", budget_s=900, epoch_seconds=4.5)
    assert c.epochs == 30
    assert "CPU recipe" in c.reason and "within the 15-minute budget" in c.reason
    assert plan.choose_epochs(22, "cuda", budget_s=600, epoch_seconds=0.3).epochs == 40


def test_a_small_dataset_trains_more_epochs_to_reach_the_minimum_steps() -> None:
    c = plan.choose_epochs(5, "cpu", budget_s=900, epoch_seconds=1.0)
    assert c.epochs == 120  # 600 steps / 5 per epoch
    assert "small training set" in c.reason
    assert plan.choose_epochs(1, "cpu", budget_s=900, epoch_seconds=0.1).epochs == (
        plan.MAX_AUTO_EPOCHS
    )


def test_the_budget_cuts_chosen_epochs_but_never_below_the_floor() -> None:
    c = plan.choose_epochs(100, "cpu", budget_s=600, epoch_seconds=60)
    assert c.epochs == 10 and "cut to 10 to fit the 10-minute budget" in c.reason
    assert c.estimated_seconds == pytest.approx(600)
    tiny = plan.choose_epochs(100, "cpu", budget_s=60, epoch_seconds=60)
    assert tiny.epochs == plan.MIN_EPOCHS_IN_BUDGET


def test_class_balanced_draws_double_the_recipe_within_the_budget() -> None:
    # casting with defects cut to 5 %: about 2,700 train images, 42 steps per epoch.
    c = plan.choose_epochs(42, "cpu", budget_s=900, epoch_seconds=5.0, sampler=True)
    assert c.epochs == 60 and "doubled for class-balanced draws" in c.reason
    gpu = plan.choose_epochs(42, "cuda", budget_s=600, epoch_seconds=0.3, sampler=True)
    assert gpu.epochs == 80
    # The budget still rules, and a small set's step minimum is not doubled on top.
    short = plan.choose_epochs(42, "cpu", budget_s=200, epoch_seconds=5.0, sampler=True)
    assert short.epochs == 40
    small = plan.choose_epochs(5, "cpu", budget_s=900, epoch_seconds=1.0, sampler=True)
    assert small.epochs == 120
    assert plan.choose_epochs(42, "cpu", budget_s=900, epoch_seconds=5.0, sampler=True,
                              given=30).epochs == 30  # fmt: skip


def test_given_epochs_are_used_as_given() -> None:
    c = plan.choose_epochs(100, "cpu", budget_s=60, epoch_seconds=60, given=12)
    assert c.epochs == 12 and c.reason == "12 epochs: given"


def test_budget_defaults_per_device() -> None:
    assert plan.budget_seconds(None, "cpu") == 15 * 60
    assert plan.budget_seconds(None, "cuda") == 10 * 60
    assert plan.budget_seconds(2.5, "cuda") == 150


def test_batching_drops_the_ragged_batch_and_handles_tiny_sets() -> None:
    assert plan.batching(64, 1440) == (64, 22)
    assert plan.batching(64, 10) == (10, 1)
    assert plan.batching(64, 0) == (1, 1)


@pytest.mark.parametrize("minutes", [0, -1, 20_000])
def test_a_job_refuses_a_budget_that_could_never_hold(minutes: float) -> None:
    with pytest.raises(ValidationError, match="time budget"):
        validate_config(TrainConfig(budget_minutes=minutes))


def test_fit_chooses_epochs_measures_the_speed_and_keeps_a_tight_budget(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path, n_per_class=8)  # 18 train images: one step per epoch
    res = fit(TrainConfig(img_size=32, device="cpu", budget_minutes=1e-5), snap)
    choice = res.epochs_choice
    assert choice["value"] == plan.MIN_EPOCHS_IN_BUDGET  # 200 wanted, 0.6 ms fit none: the floor
    assert "cut to 5" in choice["reason"] and choice["estimated_seconds"] > 0
    assert res.config.epochs == 5 and 1 <= len(res.history) <= 5
    assert all(h.epochs == 5 for h in res.history)
    assert res.arch_reason.startswith("defectnet: the default")


def test_a_run_past_its_budget_stops_after_the_epoch_and_keeps_its_best(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path, n_per_class=8)
    res = fit(TrainConfig(img_size=32, device="cpu", epochs=40, budget_minutes=1e-6), snap)
    assert res.budget_stopped and not res.stopped
    assert len(res.history) == 1 and res.best_epoch == 1
    assert res.epochs_choice["reason"] == "40 epochs: given"


def test_given_epochs_without_a_budget_run_in_full(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path, n_per_class=8)
    res = fit(TrainConfig(img_size=32, device="cpu", epochs=3), snap)
    assert len(res.history) == 3 and not res.budget_stopped
