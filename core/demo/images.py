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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

CLASSES = ("ok", "scratch", "pit", "crack", "inclusion", "patch")
REF_SIDE = 96  # the image side the defect sizes below are given for
MIN_SIDE = 16

Float = npt.NDArray[np.float32]
_SS = 4  # supersampling of drawn shapes: sub-pixel widths and anti-aliased edges


@dataclass(frozen=True)
class Conditions:
    """The process conditions of a production period, as the camera sees them."""

    brightness: float = 1.0  # lighting gain
    contrast: float = 1.0  # spread around the image's mean
    blur: float = 0.0  # extra Gaussian blur, sigma in px: a defocused camera, a dirty lens
    noise: float = 1.0  # sensor-noise multiplier
    wear: float = 0.0  # tool wear: machining marks deeper, more deep grooves (0: a new tool)


NOMINAL = Conditions()


@dataclass(frozen=True)
class _Frame:
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


def _frame(size: int | tuple[int, int]) -> _Frame:
    h, w = (size, size) if isinstance(size, int) else size
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"image size must be at least {MIN_SIDE} px a side, not {h}x{w}")
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return _Frame(int(h), int(w), min(h, w), min(h, w) / REF_SIDE, x, y)


def _value_noise(rng: np.random.Generator, fr: _Frame, cells: float) -> Float:
    """Smooth noise with about ``cells`` random values across the shorter side (unit scale)."""
    gh = max(2, round(cells * fr.h / fr.side)) + 1
    gw = max(2, round(cells * fr.w / fr.side)) + 1
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return np.asarray(cv2.resize(grid, (fr.w, fr.h), interpolation=cv2.INTER_CUBIC))


def _fractal(rng: np.random.Generator, fr: _Frame, cells: float, octaves: int = 5) -> Float:
    """Multi-scale value noise (each octave twice as fine, 0.55 times as strong), unit variance."""
    out = np.zeros((fr.h, fr.w), np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        out += amp * _value_noise(rng, fr, cells)
        total += amp * amp
        cells, amp = cells * 2, amp * 0.55
    return out / math.sqrt(total)


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


def _marks(rng: np.random.Generator, fr: _Frame, wear: float) -> tuple[Float, float]:
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
    marks *= np.clip(0.7 + 0.5 * _value_noise(rng, fr, 3), 0.2, 1.5)
    return marks, rng.uniform(0.01, 0.035) * (1 + wear)


def _surface(rng: np.random.Generator, fr: _Frame, wear: float) -> Float:
    """Reflectance of a bare part: its level, mottling, marks or grain, and fine static grain."""
    level = rng.uniform(0.42, 0.54)
    mottle = _fractal(rng, fr, rng.uniform(2.0, 4.0)) * rng.uniform(0.02, 0.06)
    marks, strength = _marks(rng, fr, wear)
    fine = rng.standard_normal((fr.h, fr.w)).astype(np.float32) * rng.uniform(0.004, 0.012)
    return (level * (1 + mottle + strength * marks + fine)).astype(np.float32)


def _canvas_points(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates (N x 2) -> the supersampled canvas's, with 2 fractional bits."""
    # Pixel centres sit at integers, and at _SS * p + (_SS - 1) / 2 in the canvas.
    return np.round((points * _SS + (_SS - 1) / 2) * 4).astype(np.int32)


def _coverage(fr: _Frame, draw: Callable[[np.ndarray], object]) -> Float:
    """Coverage in [0, 1] of what ``draw`` paints (255) on a supersampled uint8 canvas."""
    canvas = np.zeros((fr.h * _SS, fr.w * _SS), np.uint8)
    draw(canvas)
    small = cv2.resize(canvas, (fr.w, fr.h), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def _strokes(fr: _Frame, strokes: Sequence[tuple[np.ndarray, float, np.ndarray]]) -> Float:
    """Coverage of polylines, each (points N x 2 in px, width in px, value of each segment)."""

    def draw(canvas: np.ndarray) -> None:
        for points, width, values in strokes:
            pts, thick = _canvas_points(points), max(1, round(width * _SS))
            for k in range(len(pts) - 1):
                p, q = (int(pts[k, 0]), int(pts[k, 1])), (int(pts[k + 1, 0]), int(pts[k + 1, 1]))
                cv2.line(canvas, p, q, int(np.clip(values[k], 0, 1) * 255), thick, cv2.LINE_8, 2)

    return _coverage(fr, draw)


def _scratch(rng: np.random.Generator, fr: _Frame, refl: Float) -> Float:
    """A thin line or shallow arc, dark (a groove with a bright lip) or bright (a burnish)."""
    length = fr.side * rng.uniform(0.4, 1.0)
    angle = rng.uniform(0, math.pi)
    d = np.array([math.cos(angle), math.sin(angle)])
    n = np.array([-d[1], d[0]])
    c = fr.point(rng, 0.2)
    bend = rng.uniform(-0.06, 0.06) * length
    t = np.linspace(0.0, 1.0, 24)[:, None]
    p0, p1, p2 = c - d * length / 2, c + n * 2 * bend, c + d * length / 2
    pts = (1 - t) ** 2 * p0 + 2 * t * (1 - t) * p1 + t**2 * p2
    # Tapered ends and an uneven depth, sometimes broken where the tool skipped.
    mid = (t[:-1, 0] + t[1:, 0]) / 2
    along = np.sin(math.pi * mid) ** 0.4 * rng.uniform(0.6, 1.0, len(mid))
    along[rng.random(len(mid)) < 0.05] *= 0.2
    width = rng.uniform(0.7, 1.5) * fr.scale
    groove = _strokes(fr, [(pts, width, along)])
    amp = rng.uniform(0.3, 0.55)
    if rng.random() < 0.5:
        return refl * (1 + amp * groove)
    lip = _strokes(fr, [(pts + n * (width + 0.6), 0.8 * fr.scale, along)])
    return refl * (1 - amp * groove + 0.35 * amp * lip * (1 - groove))


def _pits(rng: np.random.Generator, fr: _Frame, refl: Float) -> Float:
    """One to three round dark cavities with a soft, one-sided bright rim; many are tiny."""
    first = fr.point(rng, 0.15)
    count = int(rng.choice([1, 1, 1, 2, 3]))
    lit = rng.uniform(0, 2 * math.pi)  # the side of the rim that catches the light
    delta = np.zeros_like(refl)
    for k in range(count):
        c = first if k == 0 else first + rng.normal(0.0, 7.0 * fr.scale, 2)
        small = rng.random() < 0.4
        radius = rng.uniform(1.2, 2.0) if small else rng.uniform(2.0, 3.2)
        radius *= fr.scale
        depth = rng.uniform(0.45, 0.75)
        dx, dy = fr.x - c[0], fr.y - c[1]
        r = np.hypot(dx, dy) / radius
        bowl = np.exp(-(r**3))
        side_lit = 0.6 + 0.4 * np.cos(np.arctan2(dy, dx) - lit)
        rim = np.exp(-(((r - 1.3) / 0.35) ** 2)) * side_lit
        delta += -depth * bowl + 0.45 * depth * rim
    return refl * (1 + np.maximum(delta, -0.9))


def _walk(
    rng: np.random.Generator, start: np.ndarray, heading: float, length: float, step: float
) -> np.ndarray:
    """A jagged path: each step turns at random about a heading it keeps coming back to."""
    steps = max(2, int(length / step))
    turn, pts = 0.0, [start]
    for _ in range(steps):
        turn = 0.4 * turn + rng.normal(0.0, 0.8)
        a = heading + turn
        pts.append(pts[-1] + step * np.array([math.cos(a), math.sin(a)]))
    return np.array(pts)


def _crack(rng: np.random.Generator, fr: _Frame, refl: Float) -> Float:
    """A dark, jagged, branching line that runs both ways from where it started."""
    start = fr.point(rng, 0.25)
    heading = rng.uniform(0, 2 * math.pi)
    length = fr.side * rng.uniform(0.22, 0.4)  # each way from the start
    step = 3.2 * fr.scale
    width = rng.uniform(0.7, 1.5) * fr.scale
    arms = [
        _walk(rng, start, heading, length, step),
        _walk(rng, start, heading + math.pi, length * rng.uniform(0.4, 1.0), step),
    ]
    strokes = [(arm, width, np.linspace(1.0, 0.5, len(arm) - 1)) for arm in arms]
    for _ in range(int(rng.integers(1, 4))):
        arm = arms[int(rng.integers(0, 2))]
        at = arm[int(rng.integers(len(arm) // 4, len(arm) - 1))]
        turn = rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.1)
        sub = _walk(rng, at, heading + turn, length * rng.uniform(0.25, 0.5), step)
        strokes.append((sub, 0.7 * width, np.linspace(0.8, 0.3, len(sub) - 1)))
    mask = _strokes(fr, strokes)
    return refl * (1 - rng.uniform(0.45, 0.75) * mask)


def _inclusion(rng: np.random.Generator, fr: _Frame, refl: Float) -> Float:
    """An irregular, sharp-edged blob of foreign material, dark (slag) or bright (oxide)."""
    small = rng.random() < 0.3
    radius = rng.uniform(3.0, 4.0) if small else rng.uniform(4.0, 8.0)
    # Rolling draws inclusions out along one direction, never thinner than 2.2 px across
    # (thinner, it would be a crack).
    stretch = rng.uniform(1.8, max(1.8, min(3.0, (radius / 2.2) ** 2)))
    radius *= fr.scale
    phi = rng.uniform(0, math.pi)
    n = int(rng.integers(7, 13))
    theta = np.sort(rng.uniform(0, 2 * math.pi, n))
    radii = radius * np.clip(1 + 0.3 * rng.standard_normal(n), 0.45, 1.6)
    u, v = radii * np.cos(theta) * stretch, radii * np.sin(theta) / math.sqrt(stretch)
    c = fr.point(rng, 0.18)
    xs = c[0] + u * math.cos(phi) - v * math.sin(phi)
    ys = c[1] + u * math.sin(phi) + v * math.cos(phi)
    pts = _canvas_points(np.stack([xs, ys], axis=1))
    mask = _coverage(fr, lambda canvas: cv2.fillPoly(canvas, [pts], 255, cv2.LINE_8, 2))
    grain = 1 + 0.2 * _value_noise(rng, fr, 12)
    amp = rng.uniform(0.3, 0.6) if rng.random() < 0.65 else -rng.uniform(0.25, 0.5)
    return refl * (1 - amp * mask * grain)


def _patch(rng: np.random.Generator, fr: _Frame, refl: Float) -> Float:
    """A large soft-edged region of other texture and brightness: a stain or rolled-in scale."""
    radius = fr.side * rng.uniform(0.15, 0.35)
    stretch = rng.uniform(1.0, 1.8)
    phi = rng.uniform(0, math.pi)
    c = fr.point(rng, 0.25)
    dx, dy = fr.x - c[0], fr.y - c[1]
    u = (dx * math.cos(phi) + dy * math.sin(phi)) / stretch
    v = (-dx * math.sin(phi) + dy * math.cos(phi)) * math.sqrt(stretch)
    edge = 1 - np.hypot(u, v) / radius + 0.3 * _value_noise(rng, fr, 5)
    softness = rng.uniform(0.08, 0.3)
    m = np.clip(edge / softness, 0.0, 1.0)
    m = m * m * (3 - 2 * m)
    covered = np.asarray(cv2.GaussianBlur(refl, (0, 0), 2.5 * fr.scale))  # marks filled in
    mottle = 1 + rng.uniform(0.03, 0.08) * _fractal(rng, fr, 8.0, octaves=3)
    shift = rng.uniform(0.1, 0.28) * (-1 if rng.random() < 0.6 else 1)
    inside = covered * (1 + shift) * mottle
    return (refl * (1 - m) + inside * m).astype(np.float32)


# CLASSES[1:], in order.
_DEFECTS = dict(zip(CLASSES[1:], (_scratch, _pits, _crack, _inclusion, _patch), strict=True))


def _illumination(rng: np.random.Generator, fr: _Frame) -> Float:
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
    rng: np.random.Generator, refl: Float, light: Float, fr: _Frame, cond: Conditions
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
    fr = _frame(size)
    surface, defect, light, sensor = (
        np.random.default_rng(int(s)) for s in rng.integers(0, 2**63 - 1, size=4)
    )
    refl = _surface(surface, fr, conditions.wear)
    if cls != "ok":
        refl = _DEFECTS[cls](defect, fr, refl)
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
