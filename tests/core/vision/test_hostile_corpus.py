"""Every case of the hostile-input corpus (issue 12) ends in a clean result or a clear rejection
through the decode path. A hang fails the case by its timeout."""

from __future__ import annotations

import io
import os
import re
import stat
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.errors import InvalidImageError
from core.vision import images
from tests.core.vision import hostile_corpus, hostile_formats
from tests.core.vision.fuzz_seeds import seeds
from tests.core.vision.hostile_corpus import Case

CASES = [
    *hostile_corpus.earlier_issues(),
    *hostile_corpus.bombs(),
    *hostile_corpus.lying_headers(),
    *hostile_formats.refused_plugins(),
    *hostile_formats.exif_orientation(),
    *hostile_formats.many_frames(),
    *hostile_formats.pixel_modes(),
]
CATEGORIES = {"earlier", "bomb", "lying", "plugin", "exif", "frames", "mode"}
CASE_TIMEOUT_S = 20  # the slowest case takes a fraction of a second; more is a hang


def by_id(case: Case) -> str:
    return case.id


def test_the_corpus_is_large_and_covers_every_category() -> None:
    assert len(CASES) >= 100
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.category for c in CASES} == CATEGORIES
    for outcome in ("ok", "rejected"):
        assert sum(c.expect == outcome for c in CASES) >= 30


@pytest.mark.parametrize("case", [c for c in CASES if c.category == "plugin"], ids=by_id)
def test_refused_formats_are_ones_pillow_would_open(case: Case) -> None:
    # The refusal is the allow-list's doing: Pillow on its own takes every one of these.
    with Image.open(io.BytesIO(case.data)) as im:
        assert im.size[0] > 0


def _assert_valid(info: images.ImageInfo, rgb: np.ndarray, gray: np.ndarray) -> None:
    """What every clean decode returns: writable uint8 RGB and L of the header's size."""
    assert rgb.dtype == np.uint8 and gray.dtype == np.uint8
    assert rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.flags.writeable
    assert rgb.shape[:2] == gray.shape == (info.height, info.width)
    assert info.width * info.height <= images.DecodeLimits().max_pixels
    assert info.format in images.FORMAT_EXTENSIONS and info.frames >= 1


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize("case", CASES, ids=by_id)
def test_decoding_ends_in_a_clean_result_or_a_clear_rejection(case: Case) -> None:
    if case.expect == "ok":
        info, rgb = images.decode_with_info(case.data, name=case.name)
        gray = images.decode(case.data, name=case.name, grayscale=True)
        _assert_valid(info, rgb, gray)
        assert images.probe(case.data, name=case.name) == info
        # What ingest asks for: luma at about the model's size (JPEGs decode smaller).
        small = images.decode(case.data, name=case.name, grayscale=True, max_side=32)
        assert small.ndim == 2 and min(small.shape) >= min(32, *gray.shape)
        if case.check is not None:
            case.check(info, rgb)
        return
    with pytest.raises(InvalidImageError) as refused:
        images.decode_with_info(case.data, name=case.name)
    message = str(refused.value)
    assert message.startswith(f"{case.name}: ") and len(message) > len(case.name) + 2
    assert re.search(case.reason, message), message
    try:  # some damage shows only once pixels are decoded; the header check may pass
        images.probe(case.data, name=case.name)
    except InvalidImageError as e:
        assert str(e).startswith(f"{case.name}: ")


def test_a_tiff_of_20000_pages_is_counted_quickly() -> None:
    # Pillow's page walk is quadratic: counting all 20,000 took 6 s before the count was capped.
    data = hostile_corpus.tiff(1, 1, b"\x80", pages=20000)
    started = time.perf_counter()
    assert images.probe(data).frames == images.MAX_COUNTED_FRAMES
    assert images.decode(data).shape == (1, 1, 3)
    assert time.perf_counter() - started < 1.0


def _special_file(kind: str, path: Path) -> Path:
    """A file on disk that is not what a reader expects."""
    png = seeds()["png_rgb"]
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "sparse_60mb":
        with open(path, "wb") as f:
            f.truncate(60 * 1024 * 1024)
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "symlink":
        (path.parent / "real.png").write_bytes(png)
        path.symlink_to(path.parent / "real.png")
    elif kind == "hostile_name":
        path = path.with_name("new\nline\u202egnp.exe")
        path.write_bytes(png)
    return path


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("empty", None),
        ("sparse_60mb", r"60 MB exceeds the 50 MB limit"),
        ("folder", r"is a folder|Is a directory"),
        ("fifo", r"not a regular file"),
        ("symlink", r"is a symbolic link, not followed"),
        ("missing", r"file not found"),
        ("hostile_name", None),
    ],
)
def test_files_on_disk_are_read_within_limits_or_refused(
    kind: str, reason: str | None, tmp_path: Path
) -> None:
    path = _special_file(kind, tmp_path / "part.png")
    if reason is None:
        data = images.read_file_limited(path, follow_symlinks=False)
        assert stat.S_ISREG(path.stat().st_mode) and len(data) == path.stat().st_size
        return
    with pytest.raises(InvalidImageError, match=reason):
        images.read_file_limited(path, name="part.png", follow_symlinks=False)
