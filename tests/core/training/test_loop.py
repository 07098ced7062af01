"""fit() on tiny synthetic sets: learns, stops on request, repeats with a seed, checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import DatasetError, InvalidImageError, ValidationError
from core.training.config import EpochReport, TrainConfig
from core.training.loop import fit
from core.vision.artifacts import metadata_from_result
from core.vision.device import resolve_device
from core.vision.images import DecodeLimits
from core.vision.preprocess import resize_for_model
from tests.core.training_support import Entry, Snapshot


def pattern(cls: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Rotation- and flip-invariant patterns, so the augmentations keep the label."""
    img = rng.normal(128, 12, (size, size))
    yy, xx = np.mgrid[:size, :size]
    if cls == "checker":
        img += np.where(((yy // 8) + (xx // 8)) % 2 == 0, 60, -60)
    elif cls == "blob":
        r = rng.uniform(6, 9)
        cy, cx = rng.uniform(11, size - 11, 2)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = 240
    return np.clip(img, 0, 255).astype(np.uint8)


def make_snapshot(
    root: Path,
    n_per_class: int = 24,
    classes: tuple[str, ...] = ("blob", "checker", "plain"),
    rgb: bool = False,
    seed: int = 0,
) -> Snapshot:
    """Write PNGs (3/4 train, 1/4 val) and describe them like a snapshot."""
    rng = np.random.default_rng(seed)
    entries = []
    for cls in classes:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            arr = pattern(cls, rng)
            if rgb:
                arr = np.stack([arr, arr, np.flipud(arr)], axis=2)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
            split = "val" if i % 4 == 0 else "train"
            entries.append(Entry(f"{cls}/{i}.png", cls, split))
    return Snapshot(root, list(classes), entries, grayscale=not rgb)


def tiny(**kw: object) -> TrainConfig:
    base: dict[str, object] = dict(
        epochs=4, img_size=32, batch_size=16, lr=3e-3, device="cpu", num_threads=1
    )
    base.update(kw)
    return TrainConfig(**base)  # type: ignore[arg-type]


def test_learns_a_separable_set(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path)
    reports: list[EpochReport] = []
    res = fit(tiny(epochs=8), snap, on_progress=reports.append)
    assert [r.epoch for r in reports] == list(range(1, 9))
    # 18 val images: one or two can still sit on the wrong side while BN statistics settle.
    assert res.metrics is not None and res.metrics.accuracy >= 0.9
    assert reports[-1].train_loss < reports[0].train_loss
    assert res.best_epoch >= 1 and not res.stopped
    assert res.in_channels == 1 and res.img_size == 32 and res.class_names == snap.class_names
    assert not next(res.model.parameters()).is_cuda and not res.model.training
    assert all(r.images_per_second > 0 and r.seconds > 0 for r in reports)
    mean, std = res.normalisation
    assert len(mean) == len(std) == 1 and 0 < mean[0] < 1


def test_should_stop_stops_mid_epoch(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path)
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 5  # 54 train images / 16 = 3 batches an epoch: stops in epoch 2

    res = fit(tiny(epochs=10), snap, should_stop=stop)
    assert res.stopped
    assert len(res.history) == 2
    assert calls["n"] == 6


def test_same_seed_same_run(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path)
    a = fit(tiny(epochs=2, seed=3), snap)
    b = fit(tiny(epochs=2, seed=3), snap)
    c = fit(tiny(epochs=2, seed=4), snap)
    assert [h.train_loss for h in a.history] == [h.train_loss for h in b.history]
    for pa, pb in zip(a.model.parameters(), b.model.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert [h.train_loss for h in a.history] != [h.train_loss for h in c.history]


def test_rgb_snapshot_trains_three_channels_and_checkpoints(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path / "data", rgb=True, n_per_class=12)
    res = fit(tiny(epochs=1), snap, checkpoint_dir=tmp_path / "ckpt")
    assert res.in_channels == 3
    assert (tmp_path / "ckpt" / "checkpoint.safetensors").is_file()
    assert (tmp_path / "ckpt" / "checkpoint.json").is_file()


def test_no_val_split_keeps_last_epoch(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path, n_per_class=8)
    snap.entries = [Entry(e.file, e.cls, "train") for e in snap.entries]
    res = fit(tiny(epochs=2), snap)
    assert res.metrics is None and res.best_epoch == 2


def test_refuses_one_class_and_bad_device(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path, n_per_class=4, classes=("a", "b"))
    snap.entries = [e for e in snap.entries if e.cls == "a"]
    with pytest.raises(DatasetError):
        fit(tiny(), snap)
    with pytest.raises(ValidationError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValidationError, match="no CUDA"):
            resolve_device("cuda")


def test_fit_decodes_with_the_limits_it_is_given(tmp_path: Path) -> None:
    snap = make_snapshot(tmp_path, n_per_class=4, classes=("a", "b"))  # 32 x 32 = 1024 px each
    with pytest.raises(InvalidImageError, match="exceeds the 0.001 Mpx limit"):
        fit(tiny(epochs=1), snap, limits=DecodeLimits(max_pixels=1000))
    with pytest.raises(InvalidImageError, match="exceeds the"):
        fit(tiny(epochs=1), snap, limits=DecodeLimits(max_bytes=100))
    assert fit(tiny(epochs=1), snap, limits=DecodeLimits(max_pixels=1024)).history


def test_resize_for_model_shapes() -> None:
    gray = np.zeros((50, 70), np.uint8)
    rgb = np.zeros((50, 70, 3), np.uint8)
    assert resize_for_model(gray, 32, 1).shape == (1, 32, 32)
    assert resize_for_model(gray, 32, 3).shape == (3, 32, 32)
    assert resize_for_model(rgb, 32, 1).shape == (1, 32, 32)
    assert resize_for_model(rgb, 96, 3).shape == (3, 96, 96)


@dataclass(frozen=True)
class SizedEntry:
    """A manifest entry with its image size, as core.datasets records it."""

    file: str
    cls: str
    split: str
    width: int
    height: int


def test_fit_letterboxes_and_chooses_the_size_from_the_images(tmp_path: Path) -> None:
    """3:1 images and no --img-size: the side comes from the images, the mode is letterbox,
    and both reach the model's metadata."""
    rng = np.random.default_rng(0)
    entries = []
    for cls in ("blob", "plain"):
        (tmp_path / cls).mkdir()
        for i in range(8):
            a = rng.normal(128, 12, (24, 72))
            if cls == "blob":
                a[8:16, 30:38] = 240
            Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(tmp_path / cls / f"{i}.png")
            entries.append(SizedEntry(f"{cls}/{i}.png", cls, "train", 72, 24))
    snap = Snapshot(tmp_path, ["blob", "plain"], entries)  # type: ignore[arg-type]
    result = fit(tiny(epochs=1, img_size=None), snap)
    assert result.img_size == 64 and result.resize == "letterbox"
    assert result.img_size_reason.startswith("64 px: median image 72 px on the longer side")
    meta = metadata_from_result(result)
    assert (meta.img_size, meta.resize, meta.img_size_reason) == (
        64,
        "letterbox",
        result.img_size_reason,
    )
    assert fit(tiny(epochs=1, resize="stretch"), snap).resize == "stretch"
