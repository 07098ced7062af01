"""The pixel grid the demo's images are drawn on, and the smooth random textures (value noise,
fractal noise) that the surfaces and the defects are made of."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

REF_SIDE = 96  # the image side the defect sizes are given for
MIN_SIDE = 16

Float = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Frame:
    """Pixel coordinates of an image (x right, y down); scale: its shorter side / REF_SIDE."""

    h: int
    w: int
    side: int
    scale: float
    x: Float
    y: Float

    def point(self, rng: np.random.Generator, margin: float) -> np.ndarray:
        """A random (x, y) at least ``margin`` of each side away from the border."""
        return np.array([rng.uniform(margin, 1 - margin) * n for n in (self.w, self.h)])


def make_frame(size: int | tuple[int, int]) -> Frame:
    h, w = (size, size) if isinstance(size, int) else size
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"image size must be at least {MIN_SIDE} px a side, not {h}x{w}")
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return Frame(int(h), int(w), min(h, w), min(h, w) / REF_SIDE, x, y)


def value_noise(rng: np.random.Generator, fr: Frame, cells: float) -> Float:
    """Smooth noise with about ``cells`` random values across the shorter side (unit scale)."""
    gh = max(2, round(cells * fr.h / fr.side)) + 1
    gw = max(2, round(cells * fr.w / fr.side)) + 1
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return np.asarray(cv2.resize(grid, (fr.w, fr.h), interpolation=cv2.INTER_CUBIC))


def fractal(rng: np.random.Generator, fr: Frame, cells: float, octaves: int = 5) -> Float:
    """Multi-scale value noise (each octave twice as fine, 0.55 times as strong), unit variance."""
    out = np.zeros((fr.h, fr.w), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        out += amp * value_noise(rng, fr, cells)
        total += amp * amp
        cells, amp = cells * 2, amp * 0.55
    return out / math.sqrt(total)
