"""Helpers for the dataset tests: zips of class folders and what the datasets folder holds."""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

from core.config import Settings
from tests.core.conftest import image_bytes, noise

MakeDataset = Callable[..., Path]


def contents(settings: Settings) -> set[str]:
    """Every path under the datasets folder (to check a refused import left nothing)."""
    d = settings.datasets_dir
    return {str(p.relative_to(d)) for p in d.rglob("*")} if d.exists() else set()


def zip_folder(root: Path, dest: Path, prefix: str = "") -> Path:
    """Zip a folder, entry names optionally under a wrapping prefix."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(root).as_posix())
    return dest


def zip_with(dest: Path, extra: dict[str, bytes], base: dict[str, bytes] | None = None) -> Path:
    """A zip of two valid classes plus the given extra entries."""
    base = base or {
        f"{c}/{c}{i}.png": image_bytes(noise(100 + 10 * j + i))
        for j, c in enumerate("ab")
        for i in range(3)
    }
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in {**base, **extra}.items():
            zf.writestr(name, data)
    return dest
