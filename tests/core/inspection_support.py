"""Helpers for the inspection, review, watcher and threshold tests: an active model, images."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from core.auth import permissions
from core.config import Settings
from core.registry import catalog
from core.vision.architectures import build_model
from core.vision.artifacts import ModelMetadata, save_model
from core.vision.classifier import Classifier
from db.engine import Database
from db.queries.catalog import ModelRecord

# The active model and its loaded classifier, as ingest takes it.
Active = tuple[ModelRecord, Classifier]


def register_active_model(
    db: Database,
    settings: Settings,
    *,
    class_names: tuple[str, ...] = ("ok", "scratch"),
    dataset_id: int | None = None,
    seed: int = 0,
    img_size: int = 32,
    explainable: bool = False,
    resize: str = "stretch",
    acceptance: dict[str, object] | None = None,
) -> ModelRecord:
    """An untrained (but real, verified) defectnet saved, registered and promoted.

    Untrained is enough where the test controls the flagging rule; tests that need a model
    that sees the difference use the train_tiny fixture. Untrained, defectnet's Grad-CAM maps
    are all zero (each residual branch ends in a batch norm whose weight starts at zero, which
    blocks the gradient at the Grad-CAM layer); ``explainable=True`` sets those weights to one,
    so every image gets a map of its own, as a trained model's would.
    """
    torch.manual_seed(seed)
    model = build_model("defectnet", len(class_names), 1).eval()
    if explainable:
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                torch.nn.init.ones_(module.weight)
    meta = ModelMetadata(
        architecture="defectnet",
        class_names=list(class_names),
        img_size=img_size,
        in_channels=1,
        normalisation={"mean": [0.5], "std": [0.25]},
        resize=resize,
        acceptance=dict(acceptance or {}),
    )
    saved = save_model(model, meta, settings.models_dir / uuid.uuid4().hex)
    record = catalog.register_model(
        db,
        permissions.SYSTEM,
        name="test model",
        architecture="defectnet",
        class_names=list(class_names),
        input_spec={"img_size": img_size, "in_channels": 1, "resize": resize},
        artifact_path=saved.path_meta,
        artifact_sha256=saved.sha256,
        metrics={},
        dataset_id=dataset_id,
    )
    return catalog.promote_model(db, permissions.SYSTEM, record.id)


def png(seed: int, size: tuple[int, int] = (40, 48), scratch: bool = False) -> bytes:
    """A distinct grayscale PNG per seed (optionally with a bright vertical scratch)."""
    rng = np.random.default_rng(seed)
    a = (rng.random(size) * 60 + 100).astype(np.uint8)
    if scratch:
        a[:, size[1] // 2 - 2 : size[1] // 2 + 2] = 250
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(seed: int, size: tuple[int, int] = (40, 48)) -> bytes:
    """A distinct RGB JPEG per seed."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def bomb_png() -> bytes:
    """A tiny PNG whose header claims more pixels than the test limit allows."""
    buf = io.BytesIO()
    Image.new("L", (3000, 3000), 0).save(buf, format="PNG")
    return buf.getvalue()


def stored_files(settings: Settings) -> list[Path]:
    """Every file in the image store (images and heatmaps)."""
    root = settings.images_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def png_of(a: np.ndarray) -> bytes:
    """A PNG of a uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def blob_strip(h: int = 40, w: int = 120, at: tuple[int, int] = (6, 100)) -> np.ndarray:
    """A dark non-square image whose only structure is a bright disc centred at ``at``."""
    img = np.full((h, w), 40, np.uint8)
    yy, xx = np.mgrid[:h, :w]
    img[(yy - at[0]) ** 2 + (xx - at[1]) ** 2 <= 16] = 250
    return img


def peak(heat: np.ndarray) -> tuple[float, float]:
    """Centroid (y, x) of the hottest part of a heatmap."""
    ys, xs = np.nonzero(heat >= 0.9 * heat.max())
    return float(ys.mean()), float(xs.mean())


def brightness_cam(
    _self: object, inputs: list[np.ndarray], choose: object
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """A stand-in Grad-CAM whose map is the model input's own brightness: its peak is wherever
    the bright structure sits in the (letterboxed) input, so the geometry is known."""
    probs = np.tile(np.array([[0.3, 0.7]], np.float32), (len(inputs), 1))
    wanted = list(choose(probs))  # type: ignore[operator]
    maps = {r: inputs[r][0].astype(np.float32) - float(inputs[r][0].min()) for r, _ in wanted}
    return probs, {r: np.round(m / m.max() * 255).astype(np.uint8) for r, m in maps.items()}
