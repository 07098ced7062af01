"""Every case of the hostile-input corpus (issue 12) ends in a clean result or a clear rejection:
through the decode path, uploads.iter_upload, and (a representative subset) ingest into a real
database, where nothing may be left half-stored. A hang fails the case by its timeout."""

from __future__ import annotations

import io
import os
import re
import stat
import time
import tracemalloc
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from core import setup
from core.auth import permissions
from core.config import Settings, load_settings
from core.errors import InvalidImageError
from core.quality import ingest, uploads
from core.quality.ingest import Traceability
from core.quality.uploads import Rejection
from core.vision import images
from db.engine import Database
from db.models import Inspection
from db.queries import images as image_queries
from db.queries import inspections as inspection_queries
from tests.core.inspection_support import Active, register_active_model, stored_files
from tests.core.vision import hostile_corpus, hostile_formats, hostile_uploads
from tests.core.vision.fuzz_seeds import mutant, seeds
from tests.core.vision.hostile_corpus import Case

CASES = [
    *hostile_corpus.earlier_issues(),
    *hostile_corpus.bombs(),
    *hostile_corpus.lying_headers(),
    *hostile_formats.refused_plugins(),
    *hostile_formats.exif_orientation(),
    *hostile_formats.many_frames(),
    *hostile_formats.pixel_modes(),
    *hostile_uploads.hostile_names(),
    *hostile_uploads.archives(),
]
UPLOADS = [c for c in CASES if c.accepted is not None]
INGESTED = [c for c in UPLOADS if c.ingest]
CATEGORIES = {"earlier", "bomb", "lying", "plugin", "exif", "frames", "mode", "name", "zip"}
CASE_TIMEOUT_S = 20  # the slowest case takes a fraction of a second; more is a hang


def by_id(case: Case) -> str:
    return case.id


def test_the_corpus_is_large_and_covers_every_category() -> None:
    assert len(CASES) >= 100
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.category for c in CASES} == CATEGORIES
    for outcome in ("ok", "rejected"):
        assert sum(c.expect == outcome for c in CASES) >= 30
    assert len(INGESTED) >= 10


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


def test_an_animated_webp_on_the_widest_canvas_decodes_in_linear_time() -> None:
    # 278 bytes, a 16,777,216×1 canvas (WebP's widest): decoded in 64 KB reads, 30 s.
    data = hostile_formats.wide_webp(1 << 24)
    started = time.perf_counter()
    assert images.decode(data).shape == (1, 1 << 24, 3)
    assert time.perf_counter() - started < 3.0


def test_a_tiny_float_tiff_declaring_millions_of_rows_decodes_lean() -> None:
    # The case the 10-minute fuzz run stalled on: 390 bytes, 8×4,194,312 floats (zero-filled
    # past its one strip). Converted through float64 copies it took 800 MB and 2 s.
    data = mutant("tiff_float", [("flip", 32, 1882541446, 22681)], fix_crcs=True)
    assert len(data) == 390
    tracemalloc.start()
    try:
        assert images.decode(data).shape == (4_194_312, 8, 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 550 * 1024 * 1024  # a float32 copy, the bytes Pillow hands numpy, the result


def _shown_safely(file: str) -> None:
    """A name as shown and stored: no control, format or surrogate characters, capped."""
    assert 0 < len(file) <= uploads.MAX_SOURCE_NAME
    assert not any(unicodedata.category(ch) in ("Cc", "Cf", "Cs") for ch in file), file


def run_upload(case: Case, source: bytes | io.BufferedReader, settings: Settings) -> tuple:
    """What iter_upload plus decoding make of an upload: (accepted names, rejections)."""
    limits = images.DecodeLimits.from_settings(settings)
    accepted: list[str] = []
    rejected: list[Rejection] = []
    for item in uploads.iter_upload(case.name, source, settings, browser=False):
        if isinstance(item, Rejection):
            rejected.append(item)
            continue
        shown = uploads.display_name(item[0])
        try:
            images.decode(item[1], name=shown, limits=limits)
        except InvalidImageError as e:
            rejected.append(Rejection.from_error(shown, e))
        else:
            accepted.append(shown)
    return accepted, rejected


def assert_rejections(case: Case, rejected: list[Rejection]) -> None:
    """The rejections the case expects, in order, each naming its file and saying why."""
    assert [r.file for r in rejected] == [file for file, _ in case.rejected], rejected
    for r, (_file, reason) in zip(rejected, case.rejected, strict=True):
        _shown_safely(r.file)
        assert r.reason and not r.reason.startswith(r.file), r
        assert re.search(reason, r.reason), r


@pytest.mark.timeout(CASE_TIMEOUT_S)
@pytest.mark.parametrize("case", UPLOADS, ids=by_id)
def test_uploads_take_whole_images_and_name_what_they_refuse(
    case: Case, settings: Settings, tmp_path: Path
) -> None:
    accepted, rejected = run_upload(case, case.data, settings)
    assert accepted == list(case.accepted)
    for name in accepted:
        _shown_safely(name)
    assert_rejections(case, rejected)
    # The CLI hands iter_upload an open file instead of bytes: the same images. A damaged
    # archive may be refused entry by entry instead of whole (a seek before its start is an
    # OSError on a file, which reading an entry catches, and a ValueError on bytes).
    path = tmp_path / "upload.bin"
    path.write_bytes(case.data)
    with open(path, "rb") as f:
        from_file, refused = run_upload(case, f, settings)
    assert from_file == accepted
    assert bool(refused) == bool(rejected)
    for r in refused:
        _shown_safely(r.file)
        assert r.reason


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Database, Settings, Active]]:
    """One real SQLite database with an active model for every ingested case: each case checks
    its own rows, and the store as a whole must match the rows after each."""
    home = tmp_path_factory.mktemp("hostile") / "home"
    settings = load_settings({"DEFECTLENS_HOME": str(home)})
    setup.migrate(settings)
    db = setup.open_database(settings)
    register_active_model(db, settings)
    yield db, settings, ingest.load_active(db, settings)
    db.dispose()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", INGESTED, ids=by_id)
def test_ingest_stores_whole_parts_or_nothing(
    case: Case, plant: tuple[Database, Settings, Active]
) -> None:
    db, settings, active = plant
    with db.read() as session:
        rows_before = session.scalar(select(func.count()).select_from(Inspection))
    summary = ingest.ingest_many(
        db,
        settings,
        permissions.SYSTEM,
        uploads.iter_upload(case.name, case.data, settings),
        Traceability(line="L1"),
        classifier=active,
    )
    assert_rejections(case, summary.rejected)
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Inspection)) == rows_before + len(
            case.accepted
        )
        records = [inspection_queries.get_inspection(session, i) for i in summary.processed_ids]
        referenced = image_queries.referenced_paths(session)
    assert [r.source_name for r in records if r] == list(case.accepted)
    for record in records:
        assert record is not None and record.image_path is not None
        data = (settings.images_dir / record.image_path).read_bytes()
        assert images.sha256_bytes(data) == record.image_sha256
        if record.heatmap_path:
            assert (settings.images_dir / record.heatmap_path).is_file()
    # Nothing half-stored: every file in the store is one a row points at (no temp files,
    # nothing of a rejected file), and every row's file is there.
    stored = {p.relative_to(settings.images_dir).as_posix() for p in stored_files(settings)}
    assert stored == referenced


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
