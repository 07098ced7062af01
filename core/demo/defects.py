"""The five defects of the demo's parts, painted into a surface's reflectance: scratches, pits,
cracks, inclusions and patches, each varied in size, position, contrast and orientation (sizes
are pixels of a 96 px image, scaled by the frame). Shapes are drawn supersampled, so thin lines
have sub-pixel widths and soft edges."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from core.demo.texture import Float, Frame, fractal, value_noise

CLASSES = ("ok", "scratch", "pit", "crack", "inclusion", "patch")
_SS = 4  # supersampling of drawn shapes: sub-pixel widths and anti-aliased edges


def _canvas_points(points: np.ndarray) -> np.ndarray:
    """Pixel coordinates (N x 2) -> the supersampled canvas's, with 2 fractional bits."""
    # Pixel centres sit at integers, and at _SS * p + (_SS - 1) / 2 in the canvas.
    return np.round((points * _SS + (_SS - 1) / 2) * 4).astype(np.int32)


def _coverage(fr: Frame, draw: Callable[[np.ndarray], object]) -> Float:
    """Coverage in [0, 1] of what ``draw`` paints (255) on a supersampled uint8 canvas."""
    canvas = np.zeros((fr.h * _SS, fr.w * _SS), np.uint8)
    draw(canvas)
    small = cv2.resize(canvas, (fr.w, fr.h), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32) / 255.0


def _strokes(fr: Frame, strokes: Sequence[tuple[np.ndarray, float, np.ndarray]]) -> Float:
    """Coverage of polylines, each (points N x 2 in px, width in px, value of each segment)."""

    def draw(canvas: np.ndarray) -> None:
        for points, width, values in strokes:
            pts, thick = _canvas_points(points), max(1, round(width * _SS))
            for k in range(len(pts) - 1):
                p, q = (int(pts[k, 0]), int(pts[k, 1])), (int(pts[k + 1, 0]), int(pts[k + 1, 1]))
                cv2.line(canvas, p, q, int(np.clip(values[k], 0, 1) * 255), thick, cv2.LINE_8, 2)

    return _coverage(fr, draw)


def _scratch(rng: np.random.Generator, fr: Frame, refl: Float) -> Float:
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


def _pits(rng: np.random.Generator, fr: Frame, refl: Float) -> Float:
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


def _crack(rng: np.random.Generator, fr: Frame, refl: Float) -> Float:
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


def _inclusion(rng: np.random.Generator, fr: Frame, refl: Float) -> Float:
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
    grain = 1 + 0.2 * value_noise(rng, fr, 12)
    amp = rng.uniform(0.3, 0.6) if rng.random() < 0.65 else -rng.uniform(0.25, 0.5)
    return refl * (1 - amp * mask * grain)


def _patch(rng: np.random.Generator, fr: Frame, refl: Float) -> Float:
    """A large soft-edged region of other texture and brightness: a stain or rolled-in scale."""
    radius = fr.side * rng.uniform(0.15, 0.35)
    stretch = rng.uniform(1.0, 1.8)
    phi = rng.uniform(0, math.pi)
    c = fr.point(rng, 0.25)
    dx, dy = fr.x - c[0], fr.y - c[1]
    u = (dx * math.cos(phi) + dy * math.sin(phi)) / stretch
    v = (-dx * math.sin(phi) + dy * math.cos(phi)) * math.sqrt(stretch)
    edge = 1 - np.hypot(u, v) / radius + 0.3 * value_noise(rng, fr, 5)
    softness = rng.uniform(0.08, 0.3)
    m = np.clip(edge / softness, 0.0, 1.0)
    m = m * m * (3 - 2 * m)
    covered = np.asarray(cv2.GaussianBlur(refl, (0, 0), 2.5 * fr.scale))  # marks filled in
    mottle = 1 + rng.uniform(0.03, 0.08) * fractal(rng, fr, 8.0, octaves=3)
    shift = rng.uniform(0.1, 0.28) * (-1 if rng.random() < 0.6 else 1)
    inside = covered * (1 + shift) * mottle
    return (refl * (1 - m) + inside * m).astype(np.float32)


# CLASSES[1:], in order.
DEFECTS = dict(zip(CLASSES[1:], (_scratch, _pits, _crack, _inclusion, _patch), strict=True))
