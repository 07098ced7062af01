"""What shapes a training run and what it reports; importable without torch (pages read it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from core.training.metrics import EvalResult

if TYPE_CHECKING:
    from torch import nn

# The CLI's default on CUDA: with bf16 numerics the 30-epoch CPU recipe peaks at 98.6-98.9 % on
# NEU there, while 40 epochs reach 99 % (about 9 s of training loop on an H200).
GPU_DEFAULT_EPOCHS = 40

# Every registered architecture and its default input side, readable without torch (the training
# page offers them). core.vision.architectures registers the models under these names;
# tests/core/training/test_config.py checks that the two agree.
DEFAULT_IMG_SIZES: Mapping[str, int] = MappingProxyType({"defectnet": 96, "resnet18": 128})
ARCHITECTURE_NAMES: tuple[str, ...] = tuple(DEFAULT_IMG_SIZES)


@dataclass
class TrainConfig:
    """Everything that shapes a training run; defaults are the benchmarked CPU recipe."""

    arch: str = "defectnet"
    epochs: int = 30
    img_size: int | None = None  # None: the architecture's default_img_size
    batch_size: int = 64
    lr: float = 4e-3  # peak of the one-cycle schedule
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.15
    label_smoothing: float = 0.1
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None  # None: every core (CPU path)
    channels_last: bool | None = None  # None: on for CUDA; off on CPU (no reliable gain measured)
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

    def resolved_img_size(self) -> int:
        """The input side in pixels actually used."""
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
    train_seconds: float = 0.0
    load_seconds: float = 0.0
    device: str = "cpu"
    stopped: bool = False
    config: TrainConfig = field(default_factory=TrainConfig)
    # Temperature scaling fitted on the validation split after training (core.vision.calibration);
    # T = 1 and a report saying why when there is none.
    temperature: float = 1.0
    calibration: dict[str, Any] = field(default_factory=dict)
    balance: dict[str, Any] | None = None  # core.training.balance.BalanceChoice.to_dict()

    @property
    def images_per_second(self) -> float:
        """Mean training throughput over the completed epochs."""
        rates = [h.images_per_second for h in self.history if h.images_per_second > 0]
        return float(sum(rates) / len(rates)) if rates else 0.0
