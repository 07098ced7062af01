"""What shapes a training run and what it reports; importable without torch (pages read it)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from core.training.metrics import EvalResult

if TYPE_CHECKING:
    from torch import nn

# Every registered architecture and its default input side, readable without torch (the training
# page offers them). core.vision.architectures registers the models under these names;
# tests/core/training/test_config.py checks that the two agree.
DEFAULT_IMG_SIZES: Mapping[str, int] = MappingProxyType({"defectnet": 96, "resnet18": 128})
ARCHITECTURE_NAMES: tuple[str, ...] = tuple(DEFAULT_IMG_SIZES)


@dataclass
class TrainConfig:
    """Everything that shapes a training run; defaults are the benchmarked CPU recipe."""

    arch: str = "defectnet"
    epochs: int | None = None  # None: chosen from the dataset and the budget (core.training.plan)
    budget_minutes: float | None = None  # None: the device's default (plan.DEFAULT_BUDGET_MINUTES)
    img_size: int | None = None  # None: chosen from the dataset's image sizes (choose_img_size)
    resize: str = "letterbox"  # or "stretch" (core.vision.preprocess); saved models record it
    batch_size: int = 64
    lr: float = 4e-3  # peak of the one-cycle schedule
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.15
    label_smoothing: float = 0.1
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None  # None: every core (CPU path)
    # None: on for CUDA; off on the CPU, whose benchmarked recipe (NEU 99.17 %) ran without it.
    # It is 20-25 % faster there (bench/train_step.py) and the demo uses it; NEU seed 0 with it
    # gave 98.89 % (one image less; docs/benchmarks.md), so the default waits for more seeds.
    channels_last: bool | None = None
    amp: bool | None = None  # bf16 autocast; None: on for CUDA and for CPUs with native bf16
    compile: bool = False  # torch.compile (CUDA only); pays only for long runs
    # Augmentation strengths (surface inspection: orientation carries no label).
    flips: bool = True
    rot90: bool = False  # NEU's classes have a rolling direction: 90-degree turns cost accuracy
    translate: float = 0.08  # max shift, fraction of the image side (rounded to whole pixels)
    scale: float = 0.0  # max zoom in/out, fraction; resampling blurs texture, so off by default
    brightness: float = 0.1  # max additive change on [0, 1] intensities
    contrast: float = 0.15  # max multiplicative change
    weights_path: Path | None = None  # optional local init for fine-tuning (safetensors only)
    eval_batch_size: int = 256
    # Class imbalance (core.training.balance): auto, sampler, weights or none; auto balances only
    # when the largest train class has more than 3x the images of the smallest.
    balance: str = "auto"
    # The share of good parts the acceptance threshold may send to review (core.vision.acceptance):
    # a part is called good only when its calibrated P(good) reaches what all but this share of
    # the good validation parts reach. Models without a good class decide by argmax.
    false_reject: float = 0.005

    def resolved_img_size(self) -> int:
        """The input side given, else the architecture's default (the base of choose_img_size)."""
        if self.img_size is not None:
            return self.img_size
        # Deferred: the registry imports torch, and may hold architectures registered at run
        # time (bench/sweep_neu.py); this runs only when training starts.
        from core.vision.architectures import get_spec

        return get_spec(self.arch).default_img_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (for job rows and checkpoints)."""
        d = asdict(self)
        d["weights_path"] = str(self.weights_path) if self.weights_path else None
        return d


# Bounds of a chosen input side: below 64 px the networks' stride-32 features have almost no
# spatial extent; above 256 px a CPU epoch on a few thousand images takes minutes (compute grows
# with the square of the side), while a GPU trains 384 px in seconds per epoch.
IMG_SIZE_BOUNDS: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"cpu": (64, 256), "cuda": (64, 384)}
)


@dataclass(frozen=True)
class SizeChoice:
    """The input side of a run and why."""

    img_size: int
    reason: str


def _round32(x: float) -> int:
    return max(32, int(round(x / 32)) * 32)


def choose_img_size(
    sizes: Sequence[tuple[int, int]], base: int, device_type: str = "cpu"
) -> SizeChoice:
    """The input side for images of these (width, height) sizes, from the architecture's base.

    The architectures' defaults (``base``) are the benchmarked cost and accuracy on square
    images, so a square dataset keeps them: NEU (200x200) stays at 96 px. A letterboxed image of
    aspect ratio a fills only S x S/a of the input, so the side grows by sqrt(a) to give the
    image itself as many input pixels as a square one gets at ``base``. The side never exceeds
    the images' median longer side (upsampling adds no detail), is rounded to a multiple of 32
    (the networks' total stride) and kept within IMG_SIZE_BOUNDS for the device.
    """
    lo, hi = IMG_SIZE_BOUNDS["cuda" if device_type == "cuda" else "cpu"]
    known = [(w, h) for w, h in sizes if w > 0 and h > 0]
    if not known:
        return SizeChoice(base, f"{base} px: the architecture's default (no image sizes known)")
    longer = statistics.median(max(w, h) for w, h in known)
    aspect = statistics.median(max(w, h) / min(w, h) for w, h in known)
    want = base * math.sqrt(aspect)
    side = min(hi, max(lo, _round32(min(want, longer))))
    why = f"{side} px: median image {longer:g} px on the longer side, aspect ratio {aspect:.2f}:1"
    if aspect > 1.05:
        why += f"; {base} px x sqrt(aspect) keeps {base}x{base} px of image after letterboxing"
    else:
        why += f"; the architecture's {base} px"
    if longer < want:
        why += "; capped at the images' own size"
    if side in (lo, hi) and side != _round32(min(want, longer)):
        why += f"; kept within {lo}-{hi} px on {device_type}"
    return SizeChoice(side, why)


def resolve_img_size(
    cfg: TrainConfig, entries: Sequence[Any], device_type: str = "cpu"
) -> SizeChoice:
    """The run's input side: ``cfg.img_size`` when given, else chosen from the train images."""
    if cfg.img_size is not None:
        return SizeChoice(cfg.img_size, f"{cfg.img_size} px: given")
    train = [e for e in entries if getattr(e, "split", "train") == "train"]
    sizes = [(getattr(e, "width", 0), getattr(e, "height", 0)) for e in train]
    return choose_img_size(sizes, cfg.resolved_img_size(), device_type)


@dataclass(frozen=True)
class EpochReport:
    """Progress after one epoch."""

    epoch: int  # 1-based
    train_loss: float
    val_loss: float | None
    val_accuracy: float | None
    macro_f1: float | None
    lr: float
    images_per_second: float
    seconds: float  # wall time of the epoch, validation included
    recall: dict[str, float] | None = None  # per-class validation recall (None: no val split)
    epochs: int = 0  # the run's planned epochs (chosen when the config left them open)

    def lowest_recall(self) -> tuple[str, float] | None:
        """The class recalled worst this epoch and its recall (None without a val split)."""
        recall = self.recall
        if not recall:
            return None
        cls = min(recall, key=recall.__getitem__)
        return cls, recall[cls]


@dataclass
class TrainResult:
    """What fit returns: the best model (on CPU, eval mode) and how it got there."""

    model: nn.Module
    arch: str
    class_names: list[str]
    in_channels: int
    img_size: int
    normalisation: tuple[list[float], list[float]]  # (mean, std) per channel on [0, 1] scale
    best_epoch: int
    metrics: EvalResult | None  # validation metrics of the best epoch (None: no val split)
    history: list[EpochReport] = field(default_factory=list)
    resize: str = "stretch"  # how images were fitted to the input (core.vision.preprocess)
    img_size_reason: str = ""  # why this input size (SizeChoice.reason)
    arch_reason: str = ""  # why this architecture (plan.arch_reason)
    train_seconds: float = 0.0
    load_seconds: float = 0.0
    device: str = "cpu"
    stopped: bool = False
    config: TrainConfig = field(default_factory=TrainConfig)
    # Temperature scaling fitted on the validation split after training (core.vision.calibration);
    # T = 1 and a report saying why when there is none.
    temperature: float = 1.0
    calibration: dict[str, Any] = field(default_factory=dict)
    # The good-class acceptance threshold fitted after T (core.vision.acceptance.fit_threshold).
    acceptance: dict[str, Any] = field(default_factory=dict)
    balance: dict[str, Any] | None = None  # core.training.balance.BalanceChoice.to_dict()
    epochs_choice: dict[str, Any] = field(default_factory=dict)  # plan.EpochChoice.to_dict()
    budget_stopped: bool = False  # the loop ran past its time budget and kept the best so far

    @property
    def images_per_second(self) -> float:
        """Mean training throughput over the completed epochs."""
        rates = [h.images_per_second for h in self.history if h.images_per_second > 0]
        return float(sum(rates) / len(rates)) if rates else 0.0
