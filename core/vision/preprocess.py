"""The one preprocess from image to model input, shared by training, inference and Grad-CAM.

A model sees ``(pixels / 255 - mean) / std`` of a ``C x S x S`` uint8 image made by
``resize_for_model``; mean and std are the training images' per-channel statistics, stored in the
model's metadata. Training, evaluation, the torch and ONNX classifiers and Grad-CAM all go
through these functions, so a model is never fed differently from how it was trained.

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


def model_input(
    data: bytes, *, name: str, limits: images.DecodeLimits, img_size: int, in_channels: int
) -> np.ndarray:
    """Encoded image bytes -> the model's CxSxS uint8 input (InvalidImageError when unsafe)."""
    pixels = images.decode(
        data, name=name, limits=limits, grayscale=in_channels == 1, max_side=img_size
    )
    return resize_for_model(pixels, img_size, in_channels)


def file_model_input(
    path: Path, *, limits: images.DecodeLimits, img_size: int, in_channels: int
) -> np.ndarray:
    """An image file -> the model's input; oversized files are refused before they are read."""
    data = images.read_file_limited(path, limits)
    return model_input(
        data, name=str(path), limits=limits, img_size=img_size, in_channels=in_channels
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
