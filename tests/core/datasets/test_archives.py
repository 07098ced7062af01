"""core.datasets.archives: zip entries are checked before anything is read (traversal, links,
entry count, size and ratio caps, entries that lie about their size)."""

from __future__ import annotations

import stat
import struct
import time
import zipfile
from pathlib import Path

import pytest

from core.config import Settings, load_settings
from core.datasets.archives import is_ignored, read_zip_entry, zip_parts
from core.datasets.importer import import_dataset
from core.errors import DatasetError
from core.vision import images
from tests.core.conftest import image_bytes, noise
from tests.core.datasets.support import MakeDataset, contents, zip_folder, zip_with


def test_zip_with_wrapper_folder(
    settings: Settings, make_dataset: MakeDataset, tmp_path: Path
) -> None:
    src = make_dataset({"a": 4, "b": 5})
    plain = import_dataset(zip_folder(src, tmp_path / "plain.zip"), "x", settings)
    wrapped = zip_folder(src, tmp_path / "wrapped.zip", prefix="my_parts/")
    again = import_dataset(wrapped, "x", settings)
    assert plain.counts == again.counts == {"a": 4, "b": 5}
    assert again.content_hash == plain.content_hash
    assert {e.source for e in again.entries} == {e.source for e in plain.entries}
    assert plain.content_hash == import_dataset(src, "x", settings).content_hash


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("../evil.png", r"points outside the archive"),
        ("a/../../evil.png", r"points outside the archive"),
        ("/etc/evil.png", r"absolute path"),
        ("C:\\Windows\\evil.png", r"absolute path"),
        ("\\\\server\\share\\evil.png", r"absolute path"),
        ("a\\..\\..\\evil.png", r"points outside the archive"),
    ],
)
def test_zip_path_traversal_is_refused(
    settings: Settings, tmp_path: Path, entry: str, reason: str
) -> None:
    archive = zip_with(tmp_path / "bad.zip", {entry: image_bytes(noise(1))})
    before = contents(settings)
    with pytest.raises(DatasetError, match=reason):
        import_dataset(archive, "x", settings)
    assert contents(settings) == before
    assert not (tmp_path / "evil.png").exists()


def test_zip_symlink_entry_is_refused(settings: Settings, tmp_path: Path) -> None:
    archive = zip_with(tmp_path / "link.zip", {})
    with zipfile.ZipFile(archive, "a") as zf:
        info = zipfile.ZipInfo("a/passwd.png")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    before = contents(settings)
    with pytest.raises(DatasetError, match="symbolic link"):
        import_dataset(archive, "x", settings)
    assert contents(settings) == before


def test_zip_with_too_many_entries(tmp_path: Path) -> None:
    settings = load_settings(
        {"DEFECTLENS_HOME": str(tmp_path / "home"), "DEFECTLENS_MAX_ZIP_ENTRIES": "5"}
    )
    archive = zip_with(tmp_path / "many.zip", {})  # 6 entries
    with pytest.raises(DatasetError, match="6 entries exceed the limit of 5"):
        import_dataset(archive, "x", settings)
    assert contents(settings) == set()


def _write_zeros_zip(dest: Path, gib: float) -> Path:
    chunk = bytes(8 * 1024 * 1024)
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a/ok.png", image_bytes(noise(1)))
        zf.writestr("b/ok.png", image_bytes(noise(2)))
        with zf.open("a/zeros.png", "w", force_zip64=True) as f:  # streamed: never in memory
            for _ in range(int(gib * 1024**3) // len(chunk)):
                f.write(chunk)
    return dest


def test_small_zip_bomb_is_refused_by_ratio(settings: Settings, tmp_path: Path) -> None:
    archive = _write_zeros_zip(tmp_path / "bomb.zip", 1 / 32)  # 32 MiB of zeros
    before = contents(settings)
    with pytest.raises(DatasetError, match="looks like a zip bomb"):
        import_dataset(archive, "x", settings)
    assert contents(settings) == before


@pytest.mark.slow
def test_one_gib_zip_bomb_is_refused_quickly(settings: Settings, tmp_path: Path) -> None:
    archive = _write_zeros_zip(tmp_path / "bomb.zip", 1.0)
    assert archive.stat().st_size < 10 * 1024 * 1024
    before = contents(settings)
    start = time.perf_counter()
    with pytest.raises(DatasetError, match="archive refused: .*zip bomb"):
        import_dataset(archive, "x", settings)
    assert time.perf_counter() - start < 2.0
    assert contents(settings) == before


def test_zip_total_size_cap(tmp_path: Path) -> None:
    settings = load_settings(
        {"DEFECTLENS_HOME": str(tmp_path / "home"), "DEFECTLENS_MAX_ZIP_BYTES": "1000"}
    )
    archive = zip_with(tmp_path / "big.zip", {})
    with pytest.raises(DatasetError, match="over the .* GiB limit"):
        import_dataset(archive, "x", settings)
    assert contents(settings) == set()


def test_zip_entry_that_lies_about_its_size(settings: Settings, tmp_path: Path) -> None:
    """An entry larger than its header says is cut off at the declared size and fails its CRC."""
    real = image_bytes(noise(77, (64, 64)))
    archive = zip_with(tmp_path / "liar.zip", {"a/liar.png": real})
    raw = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("a/liar.png")
    declared = len(real) // 2
    struct.pack_into("<I", raw, info.header_offset + 22, declared)  # local header
    central = raw.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", raw, central + 28)[0]
        if raw[central + 46 : central + 46 + name_len] == b"a/liar.png":
            struct.pack_into("<I", raw, central + 24, declared)
            break
        central = raw.find(b"PK\x01\x02", central + 4)
    archive.write_bytes(bytes(raw))
    with zipfile.ZipFile(archive) as zf:
        assert zf.getinfo("a/liar.png").file_size == declared
    snap = import_dataset(archive, "x", settings)
    assert "a/liar.png" in dict(snap.health.unreadable)
    assert snap.counts == {"a": 3, "b": 3}


def test_zip_parts_and_ignored_names() -> None:
    assert zip_parts("a/./b\\c.png") == ["a", "b", "c.png"]
    assert zip_parts("scratch, deep/x.png") == ["scratch, deep", "x.png"]
    with pytest.raises(DatasetError, match="NUL byte"):
        zip_parts("a/b\x00.png")
    assert is_ignored("__MACOSX") and is_ignored(".DS_Store") and is_ignored("Thumbs.db")
    assert not is_ignored("scratch")


def test_read_zip_entry_stops_at_the_shared_budget(tmp_path: Path, settings: Settings) -> None:
    archive = zip_with(tmp_path / "x.zip", {})
    limits = images.DecodeLimits.from_settings(settings)
    with zipfile.ZipFile(archive) as zf:
        size = zf.getinfo("a/a0.png").file_size
        budget = [size]
        assert read_zip_entry(zf, "a/a0.png", "a0", limits, budget) == zf.read("a/a0.png")
        assert budget == [0]
        with pytest.raises(DatasetError, match="more than its headers declare"):
            read_zip_entry(zf, "a/a1.png", "a1", limits, budget)
