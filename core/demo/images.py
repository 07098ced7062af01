"""Procedural surface-inspection images for the synthetic demo: metal parts and their defects.

An image is formed the way a camera sees a part: the surface's reflectance (mottling, machining
marks or casting grain, and the defect), times an uneven light, through slightly soft optics,
plus sensor noise. Each stage draws from its own generator, seeded from the caller's, so equal
generator states give the same surface, light and noise for every class: ``part_image("ok", g)``
and ``part_image("pit", g2)`` with ``g`` and ``g2`` in the same state differ only by the pit.
Defect sizes are pixels of a 96 px image and scale with the image's shorter side.

``Conditions`` change what the camera sees, not what the part is. Measured on a model trained
on the nominal images (bench/demo_model.py): blur mostly hides scratches, pits and cracks (they
pass as ok; good parts look no different), while tool wear makes good parts look scratched
(more defects called, more unsure), which is what a worn tool does on a line.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.demo.defects import CLASSES, DEFECTS
from core.demo.texture import REF_SIDE, Float, Frame, fractal, make_frame, value_noise

__all__ = ["CLASSES", "NOMINAL", "REF_SIDE", "Conditions", "image_rng", "part_image",
           "write_dataset"]  # fmt: skip


@dataclass(frozen=True)
class Conditions:
    """The process conditions of a production period, as the camera sees them."""

    brightness: float = 1.0  # lighting gain
    contrast: float = 1.0  # spread around the image's mean
    blur: float = 0.0  # extra Gaussian blur, sigma in px: a defocused camera, a dirty lens
    noise: float = 1.0  # sensor-noise multiplier
    wear: float = 0.0  # tool wear: machining marks deeper, more deep grooves (0: a new tool)


NOMINAL = Conditions()


def _grooves(rng: np.random.Generator, across: Float, period: float, wear: float) -> Float:
    """Parallel grooves: a random profile read along ``across`` (px across the grooves)."""
    lo = float(across.min())
    n = int((float(across.max()) - lo) / period) + 4
    profile = rng.standard_normal(n)
    # A few deeper grooves, as a coarse grit leaves; a worn insert leaves more, and deeper.
    deep = rng.random(n) < 0.03 + 0.05 * wear
    profile += deep * rng.normal(0.0, 2.0 * (1 + wear), n)
    pos = ((across - lo) / period).ravel()
    return np.interp(pos, np.arange(n), profile).reshape(across.shape).astype(np.float32)


def _marks(rng: np.random.Generator, fr: Frame, wear: float) -> tuple[Float, float]:
    """Machining marks or casting grain (unit scale) and how strong they are on this part."""
    kind = rng.choice(3, p=[0.4, 0.25, 0.35])
    if kind == 2:  # sand-cast: granular, no direction
        white = rng.standard_normal((fr.h, fr.w)).astype(np.float32)
        grain = np.asarray(cv2.GaussianBlur(white, (0, 0), 0.8 * fr.scale))
        return (grain / max(float(grain.std()), 1e-6)).astype(np.float32), rng.uniform(0.03, 0.06)
    angle = rng.uniform(0, math.pi)
    if kind == 0:  # ground or milled: straight marks
        across = fr.x * math.cos(angle) + fr.y * math.sin(angle)
    else:  # turned: arcs about a centre outside the image
        radius = rng.uniform(1.5, 5.0) * fr.side
        cx = fr.w / 2 + radius * math.cos(angle)
        cy = fr.h / 2 + radius * math.sin(angle)
        across = np.hypot(fr.x - cx, fr.y - cy)
    marks = _grooves(rng, across, rng.uniform(0.8, 2.2) * fr.scale, wear)
    # Marks come and go along their length: the tool's pressure is never even.
    marks *= np.clip(0.7 + 0.5 * value_noise(rng, fr, 3), 0.2, 1.5)
    return marks, rng.uniform(0.01, 0.035) * (1 + wear)


def _surface(rng: np.random.Generator, fr: Frame, wear: float) -> Float:
    """Reflectance of a bare part: its level, mottling, marks or grain, and fine static grain."""
    level = rng.uniform(0.42, 0.54)
    mottle = fractal(rng, fr, rng.uniform(2.0, 4.0)) * rng.uniform(0.02, 0.06)
    marks, strength = _marks(rng, fr, wear)
    fine = rng.standard_normal((fr.h, fr.w)).astype(np.float32) * rng.uniform(0.004, 0.012)
    return (level * (1 + mottle + strength * marks + fine)).astype(np.float32)


def _illumination(rng: np.random.Generator, fr: Frame) -> Float:
    """Uneven light: a gain, a gradient, a vignette and sometimes a specular band."""
    u, v = fr.x / fr.side - fr.w / fr.side / 2, fr.y / fr.side - fr.h / fr.side / 2
    a = rng.uniform(0, 2 * math.pi)
    light = 1 + rng.uniform(0.0, 0.25) * (u * math.cos(a) + v * math.sin(a))
    cx, cy = rng.uniform(-0.25, 0.25, 2)
    light *= 1 - rng.uniform(0.0, 0.4) * ((u - cx) ** 2 + (v - cy) ** 2)
    band, b = rng.random() < 0.5, rng.uniform(0, math.pi)
    pos, width, height = rng.uniform(-0.4, 0.4), rng.uniform(0.1, 0.35), rng.uniform(0.05, 0.3)
    if band:
        across = u * math.cos(b) + v * math.sin(b) - pos
        light += height * np.exp(-(across**2) / (2 * width * width))
    return (rng.uniform(0.9, 1.1) * light).astype(np.float32)


def _expose(
    rng: np.random.Generator, refl: Float, light: Float, fr: Frame, cond: Conditions
) -> np.ndarray:
    """Reflectance x light through the optics and the sensor, under the period's conditions."""
    img = refl * light * cond.brightness
    if cond.contrast != 1.0:
        mean = float(img.mean())
        img = mean + (img - mean) * cond.contrast
    # Optics are never perfectly sharp; a defocus adds in quadrature.
    sigma = math.hypot(rng.uniform(0.35, 0.7) * fr.scale, cond.blur)
    img = np.asarray(cv2.GaussianBlur(img, (0, 0), sigma))
    # Read noise plus shot noise that grows with the signal.
    read = rng.uniform(1.5, 3.5) / 255.0 * cond.noise
    noise = rng.standard_normal((fr.h, fr.w)).astype(np.float32)
    img = img + noise * read * np.sqrt(0.5 + np.maximum(img, 0.0))
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def part_image(
    cls: str,
    rng: np.random.Generator,
    size: int | tuple[int, int] = REF_SIDE,
    conditions: Conditions = NOMINAL,
) -> np.ndarray:
    """A uint8 grayscale image (size x size, or (height, width)) of a part of this class."""
    if cls not in CLASSES:
        raise ValueError(f"unknown class {cls!r}; one of {', '.join(CLASSES)}")
    fr = make_frame(size)
    surface, defect, light, sensor = (
        np.random.default_rng(int(s)) for s in rng.integers(0, 2**63 - 1, size=4)
    )
    refl = _surface(surface, fr, conditions.wear)
    if cls != "ok":
        refl = DEFECTS[cls](defect, fr, refl)
    return _expose(sensor, refl, _illumination(light, fr), fr, conditions)


def image_rng(seed: int, cls: str, index: int) -> np.random.Generator:
    """The generator of image ``index`` of class ``cls`` in the dataset of ``seed``."""
    return np.random.default_rng([seed, CLASSES.index(cls), index])


def write_dataset(
    root: Path,
    per_class: int,
    seed: int = 0,
    size: int | tuple[int, int] = REF_SIDE,
    conditions: Conditions = NOMINAL,
) -> Path:
    """Write ``root/<class>/<class>_0000.png``... for every class (root must be empty); root."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, not {per_class}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty; write the demo dataset into a new folder")
    for cls in CLASSES:
        folder = root / cls
        folder.mkdir()
        for i in range(per_class):
            image = part_image(cls, image_rng(seed, cls, i), size, conditions)
            _write_png(folder / f"{cls}_{i:04d}.png", image)
    return root


def _write_png(path: Path, image: np.ndarray) -> None:
    # Written under a hidden name, then renamed: a reader (the importer skips hidden files)
    # never sees half a file.
    tmp = path.with_name(f".{path.stem}.tmp.png")
    if not cv2.imwrite(str(tmp), image):
        raise OSError(f"could not write {path}")
    os.replace(tmp, path)
