"""Class balancing: the auto rule, the weights' formula, the sampler's draws, and fit using them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from core.errors import ValidationError
from core.training import balance
from core.training.balance import choose_balance, class_weights, sample_weights
from core.training.loop import fit
from tests.core.training.test_loop import make_snapshot, tiny
from tests.core.training_support import Snapshot


def test_auto_balances_only_above_three_to_one() -> None:
    even = choose_balance("auto", {"a": 30, "b": 10})
    assert (even.used, even.ratio) == ("none", 3.0)
    assert "at most 3" in even.reason and "'a' has 30" in even.reason
    skewed = choose_balance("AUTO", {"good": 700, "pit": 32, "empty": 0})
    assert skewed.used == balance.AUTO_MODE and skewed.ratio == pytest.approx(21.875)
    assert "'pit' 32" in skewed.reason and skewed.requested == "auto"
    assert choose_balance("weights", {"a": 5, "b": 5}).used == "weights"
    assert choose_balance("none", {"a": 500, "b": 5}).used == "none"
    with pytest.raises(ValidationError, match="balance must be one of"):
        choose_balance("smote", {"a": 1, "b": 1})


def test_class_weights_follow_the_balanced_formula() -> None:
    # sklearn's compute_class_weight("balanced"): n_samples / (n_classes * bincount(y)).
    # y = [0, 0, 0, 0, 1, 1]: 6 / (2 * 4) = 0.75 and 6 / (2 * 2) = 1.5.
    assert class_weights([0, 0, 0, 0, 1, 1], 2) == [0.75, 1.5]
    # An absent class weighs nothing and does not count in K: 3 / (1 * 3) = 1.
    assert class_weights([1, 1, 1], 3) == [0.0, 1.0, 0.0]
    # Weighted, every class contributes the same total: 4 * 0.75 == 2 * 1.5.
    w = class_weights([0] * 90 + [1] * 10, 2)
    assert 90 * w[0] == pytest.approx(10 * w[1])


def test_sampler_draws_every_class_about_equally() -> None:
    labels = [0] * 300 + [1] * 20 + [2] * 10
    weights = torch.tensor(sample_weights(labels, 3), dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    draws = torch.multinomial(weights, 30_000, True, generator=gen)
    share = torch.bincount(torch.tensor(labels)[draws], minlength=3).double() / 30_000
    # Each class 1/3; binomial sd is sqrt(1/3 * 2/3 / 30000) = 0.0027, so 0.02 is > 7 sd.
    assert torch.allclose(share, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.02)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(pa, pb) for pa, pb in zip(a.parameters(), b.parameters(), strict=True))


def test_balanced_data_trains_bit_identically_with_auto_and_none(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path)
    auto = fit(tiny(epochs=2, balance="auto"), snap)
    none = fit(tiny(epochs=2, balance="none"), snap)
    assert auto.balance is not None and auto.balance["used"] == "none"
    assert auto.balance["ratio"] == 1.0
    assert [h.train_loss for h in auto.history] == [h.train_loss for h in none.history]
    assert _same_weights(auto.model, none.model)


def _skewed(snap: Snapshot) -> Snapshot:
    """Keep 4 training images of 'blob' (18 of the others): about 4.5:1."""
    kept, blobs = [], 0
    for e in snap.entries:
        if e.cls == "blob" and e.split == "train":
            blobs += 1
            if blobs > 4:
                continue
        kept.append(e)
    return Snapshot(snap.path, snap.class_names, kept, snap.grayscale)


def test_imbalanced_data_is_balanced_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snap = _skewed(make_snapshot(tmp_path))
    with caplog.at_level("INFO", logger="core.training.loop"):
        auto = fit(tiny(epochs=1), snap)
    assert auto.balance is not None
    assert auto.balance["used"] == balance.AUTO_MODE and auto.balance["ratio"] == 4.5
    assert any("class balance: auto" in r.getMessage() for r in caplog.records)
    recall = auto.history[0].recall
    assert recall is not None and set(recall) == set(snap.class_names)
    assert auto.metrics is not None
    assert recall == {c: m.recall for c, m in auto.metrics.per_class.items()}
    none = fit(tiny(epochs=1, balance="none"), snap)
    sampler = fit(tiny(epochs=1, balance="sampler"), snap)
    weights = fit(tiny(epochs=1, balance="weights"), snap)
    assert weights.balance is not None and weights.balance["used"] == "weights"
    # Each mechanism changes the run: different draws or a different loss.
    assert not _same_weights(none.model, sampler.model)
    assert not _same_weights(none.model, weights.model)
    assert not _same_weights(sampler.model, weights.model)
