"""Training: ``fit(config, snapshot)`` with progress and stop callbacks, CPU and CUDA fast paths.

The whole dataset is decoded once into a uint8 tensor (resized to ``img_size``) that lives on the
training device; every batch is augmented there with tensor ops. On a small CPU this avoids the
DataLoader's worker processes competing with the model for the same cores, and on a GPU it keeps
the device fed without any host round trips.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.errors import DatasetError, ValidationError
from core.training import metrics as ev
from core.vision.architectures import build_model, get_spec

log = logging.getLogger(__name__)


class EntryLike(Protocol):
    """What fit needs from a manifest entry (core.datasets.snapshot.ManifestEntry)."""

    file: str
    cls: str
    split: str


class SnapshotLike(Protocol):
    """What fit needs from a dataset snapshot (core.datasets.snapshot.DatasetSnapshot)."""

    @property
    def path(self) -> Path: ...
    @property
    def class_names(self) -> Sequence[str]: ...
    @property
    def entries(self) -> Sequence[Any]: ...
    @property
    def grayscale(self) -> bool: ...


# The CLI's default on CUDA: with bf16 numerics the 30-epoch CPU recipe peaks at 98.6-98.9 % on
# NEU there, while 40 epochs reach 99 % (about 9 s of training loop on an H200).
GPU_DEFAULT_EPOCHS = 40


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
    weights_path: Path | None = None  # optional local init for fine-tuning
    eval_batch_size: int = 256

    def resolved_img_size(self) -> int:
        """The input side in pixels actually used."""
        return self.img_size if self.img_size is not None else get_spec(self.arch).default_img_size

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
    metrics: ev.EvalResult | None  # validation metrics of the best epoch (None: no val split)
    history: list[EpochReport] = field(default_factory=list)
    train_seconds: float = 0.0
    load_seconds: float = 0.0
    device: str = "cpu"
    stopped: bool = False
    config: TrainConfig = field(default_factory=TrainConfig)

    @property
    def images_per_second(self) -> float:
        """Mean training throughput over the completed epochs."""
        rates = [h.images_per_second for h in self.history if h.images_per_second > 0]
        return float(sum(rates) / len(rates)) if rates else 0.0


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available else cpu; 'cuda' without a GPU is a readable error."""
    name = name.lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValidationError("device 'cuda' was requested but no CUDA GPU is available")
        return torch.device("cuda")
    raise ValidationError(f"device must be auto, cpu or cuda, not {name!r}")


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 dot-product instructions (AVX512-BF16 or AMX).

    Without them oneDNN emulates bf16 and autocast gets slower, not faster.
    """
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def resize_for_model(image: np.ndarray, img_size: int, in_channels: int) -> np.ndarray:
    """HxW or HxWx3 uint8 -> CxSxS uint8, the one resize used by training and inference."""
    if image.ndim == 3 and in_channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    elif image.ndim == 2 and in_channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    h, w = image.shape[:2]
    if (h, w) != (img_size, img_size):
        # INTER_AREA averages when shrinking, keeping fine scratches visible instead of aliasing.
        shrink = h >= img_size and w >= img_size
        interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        image = cv2.resize(image, (img_size, img_size), interpolation=interp)
    if image.ndim == 2:
        return np.ascontiguousarray(image[None])
    return np.ascontiguousarray(image.transpose(2, 0, 1))


@dataclass
class _Split:
    x: torch.Tensor  # N x C x S x S uint8
    y: torch.Tensor  # N int64


def load_split_tensors(
    snapshot: SnapshotLike,
    img_size: int,
    in_channels: int,
    splits: Sequence[str],
    num_threads: int | None = None,
) -> dict[str, _Split]:
    """Decode every entry of the named splits once, resized, into uint8 tensors."""
    from core.vision import images

    class_index = {c: i for i, c in enumerate(snapshot.class_names)}
    root = Path(snapshot.path)
    wanted = [e for e in snapshot.entries if e.split in splits]
    limits = images.DecodeLimits()

    def load(entry: Any) -> np.ndarray:
        path = root / entry.file
        img = images.decode_file(path, limits=limits, grayscale=in_channels == 1, max_side=img_size)
        return resize_for_model(img, img_size, in_channels)

    # OpenCV releases the GIL while decoding and resizing, so threads use every core.
    with ThreadPoolExecutor(max_workers=num_threads or os.cpu_count() or 1) as pool:
        arrays = list(pool.map(load, wanted))
    out: dict[str, _Split] = {}
    for split in splits:
        idx = [i for i, e in enumerate(wanted) if e.split == split]
        if not idx:
            continue
        x = torch.from_numpy(np.stack([arrays[i] for i in idx]))
        y = torch.tensor([class_index[wanted[i].cls] for i in idx], dtype=torch.int64)
        out[split] = _Split(x, y)
    return out


def _augment(
    x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator, mean: torch.Tensor, std: torch.Tensor
) -> torch.Tensor:
    """uint8 batch -> augmented, normalised float batch, on x's device.

    Flips, 90-degree turns, zoom and shift are folded into one per-sample affine matrix so the
    whole geometric part is a single grid_sample call (one kernel on a GPU).
    """
    n = x.shape[0]
    dev = x.device
    # Random draws come from a CPU generator so a seed gives the same run on any device.
    r = torch.rand(n, 7, generator=gen)
    sx = torch.where(r[:, 0] < 0.5, -1.0, 1.0) if cfg.flips else torch.ones(n)
    sy = torch.where(r[:, 1] < 0.5, -1.0, 1.0) if cfg.flips else torch.ones(n)
    k = (r[:, 2] * 4).floor() if cfg.rot90 else torch.zeros(n)
    angle = k * (math.pi / 2)
    zoom = 1.0 + (r[:, 3] * 2 - 1) * cfg.scale
    # Whole-pixel shifts (grid coordinates span 2 per side): with no zoom every output pixel is
    # an exact input pixel. Sub-pixel shifts blur fine textures (crazing, pits) in training only,
    # a train/eval mismatch that cost NEU several points of accuracy in the sweep.
    side = x.shape[-1]
    max_shift = round(cfg.translate * side)
    tx = ((r[:, 4] * (2 * max_shift + 1)).floor() - max_shift) * (2.0 / side)
    ty = ((r[:, 5] * (2 * max_shift + 1)).floor() - max_shift) * (2.0 / side)
    cos, sin = torch.cos(angle).round(), torch.sin(angle).round()
    theta = torch.stack(
        [
            torch.stack([cos * sx / zoom, -sin * sy / zoom, tx], 1),
            torch.stack([sin * sx / zoom, cos * sy / zoom, ty], 1),
        ],
        1,
    ).to(dev)
    xf = x.float().div_(255.0)
    grid = F.affine_grid(theta, list(xf.shape), align_corners=False)
    xf = F.grid_sample(xf, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    photo = torch.rand(n, 2, generator=gen).to(dev)
    c = 1.0 + (photo[:, 0] * 2 - 1) * cfg.contrast
    b = (photo[:, 1] * 2 - 1) * cfg.brightness
    img_mean = xf.mean(dim=(1, 2, 3), keepdim=True)
    xf = (xf - img_mean) * c.view(n, 1, 1, 1) + img_mean + b.view(n, 1, 1, 1)
    xf = xf.clamp_(0.0, 1.0)
    return (xf - mean) / std


def _normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x.float() / 255.0 - mean) / std


@torch.no_grad()
def predict_tensor(
    model: nn.Module,
    x: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    batch_size: int = 256,
    amp: bool = False,
    channels_last: bool = False,
) -> torch.Tensor:
    """Softmax probabilities (float32, on x's device) for a uint8 N x C x S x S tensor."""
    model.eval()
    outs = []
    for i in range(0, x.shape[0], batch_size):
        xb = _normalise(x[i : i + batch_size], mean, std)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(xb)
        outs.append(torch.softmax(logits.float(), dim=1))
    return torch.cat(outs) if outs else torch.empty(0)


def _save_checkpoint(
    directory: Path, model: nn.Module, epoch: int, cfg: TrainConfig, metrics: dict[str, Any]
) -> None:
    """Best-so-far weights + a small JSON beside them, each written atomically."""
    import json

    from safetensors.torch import save as st_save

    from core.files import write_atomic

    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_atomic(directory / "checkpoint.safetensors", st_save(state))
    info = {"epoch": epoch, "config": cfg.to_dict(), "metrics": metrics}
    write_atomic(directory / "checkpoint.json", json.dumps(info, indent=2).encode())


def fit(
    config: TrainConfig,
    snapshot: SnapshotLike,
    on_progress: Callable[[EpochReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    checkpoint_dir: Path | None = None,
) -> TrainResult:
    """Train ``config.arch`` on the snapshot's train split; keep the epoch with the best val F1."""
    cfg = config
    device = resolve_device(cfg.device)
    cuda = device.type == "cuda"
    img_size = cfg.resolved_img_size()
    in_channels = 1 if snapshot.grayscale else 3
    class_names = list(snapshot.class_names)
    if len(class_names) < 2:
        raise DatasetError(f"training needs at least 2 classes, the snapshot has {class_names}")
    amp = (cuda or cpu_has_native_bf16()) if cfg.amp is None else cfg.amp
    channels_last = cuda if cfg.channels_last is None else cfg.channels_last
    old_threads = torch.get_num_threads()
    if not cuda:
        torch.set_num_threads(cfg.num_threads or os.cpu_count() or 1)
    try:
        return _fit(
            cfg, snapshot, device, img_size, in_channels, class_names, amp, channels_last,
            on_progress, should_stop, checkpoint_dir,
        )  # fmt: skip
    finally:
        torch.set_num_threads(old_threads)


def _fit(
    cfg: TrainConfig,
    snapshot: SnapshotLike,
    device: torch.device,
    img_size: int,
    in_channels: int,
    class_names: list[str],
    amp: bool,
    channels_last: bool,
    on_progress: Callable[[EpochReport], None] | None,
    should_stop: Callable[[], bool] | None,
    checkpoint_dir: Path | None,
) -> TrainResult:
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True  # fixed input shapes: pick the fastest kernels once
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)

    t0 = time.perf_counter()
    data = load_split_tensors(snapshot, img_size, in_channels, ("train", "val"), cfg.num_threads)
    if "train" not in data:
        raise DatasetError("the snapshot has no images in its train split")
    train, val = data["train"], data.get("val")
    present = set(train.y.tolist())
    if len(present) < 2:
        raise DatasetError("the train split holds fewer than 2 classes")
    # Per-channel statistics of the training images, stored with the model for inference.
    xs = train.x.float().div_(255.0)
    mean_l = xs.mean(dim=(0, 2, 3)).tolist()
    std_l = [max(s, 1e-3) for s in xs.std(dim=(0, 2, 3)).tolist()]
    del xs
    mean = torch.tensor(mean_l, device=device).view(1, -1, 1, 1)
    std = torch.tensor(std_l, device=device).view(1, -1, 1, 1)
    x_train, y_train = train.x.to(device), train.y.to(device)
    x_val = val.x.to(device) if val is not None else None
    y_val_np = val.y.numpy() if val is not None else None
    load_seconds = time.perf_counter() - t0
    log.info(
        "loaded %d train / %d val images at %d px in %.1f s",
        len(train.y), 0 if val is None else len(val.y), img_size, load_seconds,
    )  # fmt: skip

    model = build_model(cfg.arch, len(class_names), in_channels, cfg.weights_path).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    run_model: Callable[[torch.Tensor], torch.Tensor] = model
    if cfg.compile and cuda:
        run_model = torch.compile(model)

    n = x_train.shape[0]
    batch = min(cfg.batch_size, n)
    steps_per_epoch = max(1, n // batch)  # drop the ragged last batch: tiny batches upset BN
    total_steps = cfg.epochs * steps_per_epoch
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)  # no weight decay on BN and biases
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0},
        ],
        lr=cfg.lr,
        fused=True if cuda else None,
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
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)

    history: list[EpochReport] = []
    best_f1, best_epoch, best_state = -1.0, 0, None
    best_metrics: ev.EvalResult | None = None
    stopped = False
    t_train = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        t_epoch = time.perf_counter()
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        loss_sum = torch.zeros((), device=device)
        seen = 0
        for step in range(steps_per_epoch):
            if should_stop is not None and should_stop():
                stopped = True
                break
            idx = perm[step * batch : (step + 1) * batch]
            xb = _augment(x_train[idx], cfg, gen, mean, std)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(run_model(xb).float(), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * len(idx)  # stays on device: no sync per step
            seen += len(idx)
        train_time = time.perf_counter() - t_epoch
        if stopped and seen == 0:
            break
        val_loss = val_acc = val_f1 = None
        metrics: ev.EvalResult | None = None
        if x_val is not None and y_val_np is not None:
            probs = predict_tensor(
                model, x_val, mean, std, cfg.eval_batch_size, amp, channels_last
            ).cpu()
            y_val_t = torch.from_numpy(y_val_np)
            val_loss = float(F.nll_loss(torch.log(probs.clamp_min(1e-12)), y_val_t))
            pred = probs.argmax(1).numpy()
            metrics = ev.evaluate(y_val_np, pred, class_names, probs.numpy())
            val_acc, val_f1 = metrics.accuracy, metrics.macro_f1
        report = EpochReport(
            epoch=epoch,
            train_loss=float(loss_sum) / max(seen, 1),
            val_loss=val_loss,
            val_accuracy=val_acc,
            macro_f1=val_f1,
            lr=float(opt.param_groups[0]["lr"]),
            images_per_second=seen / train_time if train_time > 0 else 0.0,
            seconds=time.perf_counter() - t_epoch,
        )
        history.append(report)
        # Without a val split the last epoch wins (score -> epoch number).
        score = val_f1 if val_f1 is not None else float(epoch)
        if score > best_f1:
            best_f1, best_epoch, best_metrics = score, epoch, metrics
            best_state = copy.deepcopy(model.state_dict())
            if checkpoint_dir is not None:
                _save_checkpoint(
                    Path(checkpoint_dir), model, epoch, cfg,
                    metrics.to_dict() if metrics else {},
                )  # fmt: skip
        log.info(
            "epoch %d/%d loss %.4f val_acc %s f1 %s %.0f img/s %.1f s",
            epoch, cfg.epochs, report.train_loss, val_acc, val_f1,
            report.images_per_second, report.seconds,
        )  # fmt: skip
        if on_progress is not None:
            on_progress(report)
        if stopped:
            break
    if cuda:
        torch.cuda.synchronize()
    train_seconds = time.perf_counter() - t_train

    if best_state is not None:
        model.load_state_dict(best_state)
    model = model.cpu().to(memory_format=torch.contiguous_format).eval()
    return TrainResult(
        model=model,
        arch=cfg.arch,
        class_names=class_names,
        in_channels=in_channels,
        img_size=img_size,
        normalisation=(mean_l, std_l),
        best_epoch=best_epoch,
        metrics=best_metrics,
        history=history,
        train_seconds=train_seconds,
        load_seconds=load_seconds,
        device=str(device),
        stopped=stopped,
        config=cfg,
    )
