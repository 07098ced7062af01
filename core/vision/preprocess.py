"""The one preprocess from image to model input, shared by training, inference and Grad-CAM.

A model sees ``(pixels / 255 - mean) / std`` of a ``C x S x S`` uint8 image made by
``resize_for_model``; mean and std are the training images' per-channel statistics, stored in the
model's metadata. Training, evaluation, the torch and ONNX classifiers and Grad-CAM all go
through these functions, so a model is never fed differently from how it was trained.

Two resize modes, recorded in the model's metadata (``ModelMetadata.resize``):

- ``"letterbox"`` (new trainings): the longer side is scaled to S keeping the aspect ratio and the
  rest of the square is filled with the image's own mean grey (per channel), the content centred.
  A 600x100 strip with a small defect keeps its round pits round. The fill is deliberate: a flat
  field at the image's average level has no texture and the smallest possible step at the
  border, and after normalisation it sits near zero, so it reads as "nothing here". Black (or any
  fixed) fill draws a hard dark edge that looks like an inclusion; edge replication smears the
  border row into long streaks that look like scratches; reflection shows a defect near the
  border twice. The fill depends only on the image, so training and inference pad identically.
- ``"stretch"``: the image is resized to S x S whatever its shape; every model saved before
  letterboxing existed was trained this way and keeps it (metadata without the field).

Square images give the same array in both modes.

Importing this module does not import torch: the tensor functions only call methods of the
tensors they are given, and ``normalisation_tensors`` imports torch when first called.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from core.vision import images

if TYPE_CHECKING:
    import torch


RESIZE_MODES = ("letterbox", "stretch")


def letterbox_box(height: int, width: int, img_size: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of an image's content inside its letterboxed S x S input."""
    scale = img_size / max(height, width)
    h = min(img_size, max(1, round(height * scale)))
    w = min(img_size, max(1, round(width * scale)))
    return (img_size - h) // 2, (img_size - w) // 2, h, w


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    # INTER_AREA averages when shrinking, keeping fine scratches visible instead of aliasing.
    shrink = h >= height and w >= width
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def _letterbox(image: np.ndarray, img_size: int) -> np.ndarray:
    top, left, h, w = letterbox_box(image.shape[0], image.shape[1], img_size)
    content = _resize(image, h, w)
    if (h, w) == (img_size, img_size):
        return content
    # The fill: the image's own mean per channel (see the module docstring for why).
    fill = np.round(content.reshape(h * w, -1).mean(axis=0)).astype(np.uint8)
    canvas = np.empty((img_size, img_size, *image.shape[2:]), dtype=np.uint8)
    canvas[...] = fill if image.ndim == 3 else fill[0]
    canvas[top : top + h, left : left + w] = content
    return canvas


def resize_for_model(
    image: np.ndarray, img_size: int, in_channels: int, resize: str = "stretch"
) -> np.ndarray:
    """HxW or HxWx3 uint8 -> CxSxS uint8, the one resize used by training and inference.

    ``resize`` is the model's mode, "letterbox" or "stretch" (see the module docstring).
    """
    if resize not in RESIZE_MODES:
        raise ValueError(f"resize must be one of {', '.join(RESIZE_MODES)}, not {resize!r}")
    if image.ndim == 3 and in_channels == 1:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    elif image.ndim == 2 and in_channels == 3:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if resize == "letterbox":
        image = _letterbox(image, img_size)
    else:
        image = _resize(image, img_size, img_size)
    if image.ndim == 2:
        return np.ascontiguousarray(image[None])
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def decode_for_model(
    data: bytes, *, name: str, limits: images.DecodeLimits, img_size: int, in_channels: int
) -> np.ndarray:
    """Encoded image bytes -> the decoded pixels ``resize_for_model`` takes (InvalidImageError)."""
    return images.decode(
        data, name=name, limits=limits, grayscale=in_channels == 1, max_side=img_size
    )


def model_input(
    data: bytes,
    *,
    name: str,
    limits: images.DecodeLimits,
    img_size: int,
    in_channels: int,
    resize: str = "stretch",
) -> np.ndarray:
    """Encoded image bytes -> the model's CxSxS uint8 input (InvalidImageError when unsafe)."""
    pixels = decode_for_model(
        data, name=name, limits=limits, img_size=img_size, in_channels=in_channels
    )
    return resize_for_model(pixels, img_size, in_channels, resize)


def file_model_input(
    path: Path,
    *,
    limits: images.DecodeLimits,
    img_size: int,
    in_channels: int,
    resize: str = "stretch",
) -> np.ndarray:
    """An image file -> the model's input; oversized files are refused before they are read."""
    data = images.read_file_limited(path, limits)
    return model_input(
        data,
        name=str(path),
        limits=limits,
        img_size=img_size,
        in_channels=in_channels,
        resize=resize,
    )


def normalisation_tensors(
    mean: Sequence[float], std: Sequence[float], device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std as 1 x C x 1 x 1 tensors, ready to broadcast over a batch."""
    import torch  # deferred: this module is imported by torch-free code (ingest, Grad-CAM setup)

    return (
        torch.tensor(list(mean), device=device).view(1, -1, 1, 1),
        torch.tensor(list(std), device=device).view(1, -1, 1, 1),
    )


def standardise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Pixels on the [0, 1] scale -> what the network sees."""
    return (x - mean) / std


def normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """A uint8 N x C x S x S batch -> the float batch the network sees."""
    return standardise(x.float() / 255.0, mean, std)


def unit_pixels(batch: np.ndarray) -> np.ndarray:
    """uint8 batch -> float32 on [0, 1]: the input of an exported (ONNX) graph, which has
    ``standardise`` folded in."""
    return batch.astype(np.float32) * np.float32(1 / 255)
