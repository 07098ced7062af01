"""Helpers and fixtures that make real image files and dataset folders under tmp_path.

The `settings` fixture (a fresh data directory under tmp_path) comes from tests/conftest.py.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def image_bytes(
    arr: np.ndarray, fmt: str = "PNG", mode: str | None = None, **save: object
) -> bytes:
    """Encode an array (or a Pillow image made from it) in the given format."""
    im = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt, **save)
    return buf.getvalue()


def noise(seed: int, size: tuple[int, int] = (24, 24), gray: bool = False) -> np.ndarray:
    """A distinct random image for each seed, so every file has its own SHA-256."""
    rng = np.random.default_rng(seed)
    shape = size if gray else (*size, 3)
    return rng.integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Build a folder with one sub-folder per class of distinct PNG images."""
    counter = iter(range(10**9))

    def make(counts: dict[str, int], root: Path | None = None, fmt: str = "PNG") -> Path:
        root = root or tmp_path / "src"
        for cls, n in counts.items():
            folder = root / cls
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                ext = "jpg" if fmt == "JPEG" else fmt.lower()
                data = image_bytes(noise(next(counter)), fmt)
                (folder / f"{cls}_{i:03d}.{ext}").write_bytes(data)
        return root

    return make
