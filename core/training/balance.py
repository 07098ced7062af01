"""Class balancing: when a training run compensates for an imbalanced train split, and how.

Torch-free (the CLI and pages read BALANCE_MODES). Two mechanisms, both aiming at the same
expected objective, each class counting equally (sklearn's "balanced" weighting):

- ``sampler``: each epoch draws its images with replacement, every class with probability 1/K,
  so a rare image is seen (augmented differently) several times per epoch;
- ``weights``: every image is seen once per epoch, and the loss weighs a class-c image by
  n / (K * n_c).

``auto`` turns balancing on only when the largest class has more than AUTO_RATIO times the
images of the smallest; a balanced dataset (NEU) then trains exactly as without balancing.
Which mechanism ``auto`` uses was chosen by bench/imbalance.py: on NEU with one class at 240
training images and five at 20 (48 px, 30 epochs, seed 0), macro-F1 was 0.83 without balancing,
0.91 with the sampler and 0.81 with loss weights; the worst class's recall 0.66 / 0.81 / 0.60.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from core.errors import ValidationError

BALANCE_MODES: tuple[str, ...] = ("auto", "sampler", "weights", "none")
# Above 3:1 a plain run already loses the rare classes' recall on small data (bench/imbalance.py
# shows the collapse at 15:1); up to 3:1 every class still fills a fair share of each batch.
AUTO_RATIO = 3.0
# The mechanism "auto" picks when the ratio calls for balancing (bench/imbalance.py).
AUTO_MODE = "sampler"


@dataclass(frozen=True)
class BalanceChoice:
    """What a run did about class imbalance, and why (shown in the train report and log)."""

    requested: str  # the TrainConfig value
    used: str  # "sampler", "weights" or "none"
    ratio: float  # largest / smallest class in the train split
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return asdict(self)


def check_mode(mode: str) -> str:
    """The mode, lower-cased; ValidationError for anything but auto/sampler/weights/none."""
    m = mode.strip().lower()
    if m not in BALANCE_MODES:
        raise ValidationError(f"balance must be one of {', '.join(BALANCE_MODES)}, not {mode!r}")
    return m


def choose_balance(requested: str, counts: Mapping[str, int]) -> BalanceChoice:
    """Resolve the configured mode against the train split's images per class."""
    mode = check_mode(requested)
    present = {c: n for c, n in counts.items() if n > 0}
    if not present:
        raise ValidationError("no training images to balance")
    big = max(present, key=lambda c: present[c])
    small = min(present, key=lambda c: present[c])
    ratio = round(present[big] / present[small], 3)
    facts = (
        f"largest class '{big}' has {present[big]} training images, smallest '{small}' "
        f"{present[small]} (ratio {ratio:g})"
    )
    if mode != "auto":
        return BalanceChoice(mode, mode, ratio, f"{mode} requested; {facts}")
    if ratio > AUTO_RATIO:
        return BalanceChoice(
            mode, AUTO_MODE, ratio, f"auto: {facts}, above {AUTO_RATIO:g}: {AUTO_MODE}"
        )
    return BalanceChoice(
        mode, "none", ratio, f"auto: {facts}, at most {AUTO_RATIO:g}: no balancing"
    )


def class_weights(labels: Sequence[int], num_classes: int) -> list[float]:
    """Loss weight per class, n / (K * n_c) over the classes present (absent ones: 0)."""
    counts = [0] * num_classes
    for y in labels:
        counts[y] += 1
    k = sum(1 for c in counts if c)
    n = len(labels)
    return [n / (k * c) if c else 0.0 for c in counts]


def sample_weights(labels: Sequence[int], num_classes: int) -> list[float]:
    """Per-image draw weight 1 / n_c: every present class is drawn with probability 1/K."""
    counts = [0] * num_classes
    for y in labels:
        counts[y] += 1
    return [1.0 / counts[y] for y in labels]
