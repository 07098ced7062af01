"""Training data: a snapshot's splits decoded once into uint8 tensors, and batch augmentation.

The whole dataset is decoded once into a uint8 tensor (resized to ``img_size``) that lives on the
training device; every batch is augmented there with tensor ops. On a small CPU this avoids the
DataLoader's worker processes competing with the model for the same cores, and on a GPU it keeps
the device fed without any host round trips.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from core.errors import DatasetError
from core.training.config import TrainConfig
from core.vision import preprocess
from core.vision.images import DecodeLimits

log = logging.getLogger(__name__)


class EntryLike(Protocol):
    """What training needs from a manifest entry (core.datasets.snapshot.ManifestEntry)."""

    file: str
    cls: str
    split: str


class SnapshotLike(Protocol):
    """What training needs from a dataset snapshot (core.datasets.snapshot.DatasetSnapshot)."""

    @property
    def path(self) -> Path: ...
    @property
    def class_names(self) -> Sequence[str]: ...
    @property
    def entries(self) -> Sequence[Any]: ...
    @property
    def grayscale(self) -> bool: ...


@dataclass
class TensorSplit:
    """One split's images and labels."""

    x: torch.Tensor  # N x C x S x S uint8
    y: torch.Tensor  # N int64


@dataclass
class TrainingData:
    """The training and validation tensors on the training device, and their normalisation."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor | None
    y_val: np.ndarray | None
    normalisation: tuple[list[float], list[float]]
    mean: torch.Tensor
    std: torch.Tensor
    seconds: float


def load_split_tensors(
    snapshot: SnapshotLike,
    img_size: int,
    in_channels: int,
    splits: Sequence[str],
    num_threads: int | None = None,
    *,
    limits: DecodeLimits | None = None,
    resize: str = "stretch",
) -> dict[str, TensorSplit]:
    """Decode every entry of the named splits once, resized, into uint8 tensors.

    ``resize`` is the model's mode (core.vision.preprocess): pass the one it was trained with.

    The product passes the configured limits (``DecodeLimits.from_settings``): a snapshot's
    files are checked like any other image before their pixels are decoded. None: the defaults
    (benchmark scripts).
    """
    checked = limits or DecodeLimits()
    class_index = {c: i for i, c in enumerate(snapshot.class_names)}
    root = Path(snapshot.path)
    wanted = [e for e in snapshot.entries if e.split in splits]

    def load(entry: Any) -> np.ndarray:
        return preprocess.file_model_input(
            root / entry.file,
            limits=checked,
            img_size=img_size,
            in_channels=in_channels,
            resize=resize,
        )

    # OpenCV releases the GIL while decoding and resizing, so threads use every core.
    with ThreadPoolExecutor(max_workers=num_threads or os.cpu_count() or 1) as pool:
        arrays = list(pool.map(load, wanted))
    out: dict[str, TensorSplit] = {}
    for split in splits:
        idx = [i for i, e in enumerate(wanted) if e.split == split]
        if not idx:
            continue
        x = torch.from_numpy(np.stack([arrays[i] for i in idx]))
        y = torch.tensor([class_index[wanted[i].cls] for i in idx], dtype=torch.int64)
        out[split] = TensorSplit(x, y)
    return out


def load_training_data(
    snapshot: SnapshotLike,
    cfg: TrainConfig,
    img_size: int,
    in_channels: int,
    device: torch.device,
    limits: DecodeLimits | None,
) -> TrainingData:
    """Decode the train and val splits onto the device, with the train images' statistics."""
    t0 = time.perf_counter()
    splits = ("train", "val")
    data = load_split_tensors(
        snapshot, img_size, in_channels, splits, cfg.num_threads, limits=limits, resize=cfg.resize
    )
    if "train" not in data:
        raise DatasetError("the snapshot has no images in its train split")
    train, val = data["train"], data.get("val")
    if len(set(train.y.tolist())) < 2:
        raise DatasetError("the train split holds fewer than 2 classes")
    mean_l, std_l = channel_statistics(train.x)
    mean, std = preprocess.normalisation_tensors(mean_l, std_l, device)
    loaded = TrainingData(
        x_train=train.x.to(device),
        y_train=train.y.to(device),
        x_val=val.x.to(device) if val is not None else None,
        y_val=val.y.numpy() if val is not None else None,
        normalisation=(mean_l, std_l),
        mean=mean,
        std=std,
        seconds=time.perf_counter() - t0,
    )
    log.info(
        "loaded %d train / %d val images at %d px (%s) in %.1f s",
        len(train.y), 0 if val is None else len(val.y), img_size, cfg.resize, loaded.seconds,
    )  # fmt: skip
    return loaded


def channel_statistics(x: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (on [0, 1]) of uint8 training images, stored with the model."""
    xs = x.float().div_(255.0)
    mean = xs.mean(dim=(0, 2, 3)).tolist()
    std = [max(s, 1e-3) for s in xs.std(dim=(0, 2, 3)).tolist()]
    return mean, std


def augment(
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
    return preprocess.standardise(xf, mean, std)
