"""core.datasets.importer: safe import (folders and zips), health report, splits, snapshots."""

from __future__ import annotations

import csv
import json
import os
import stat
import struct
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from core.config import Settings, load_settings
from core.datasets.importer import ManifestEntry, import_dataset, load_snapshot, stratified_split
from core.errors import DatasetError
from tests.conftest import SHARED_DATASETS
from tests.core.conftest import image_bytes, noise

MakeDataset = Callable[..., Path]


def _contents(settings: Settings) -> set[str]:
    d = settings.datasets_dir
    return {str(p.relative_to(d)) for p in d.rglob("*")} if d.exists() else set()


def _zip_folder(root: Path, dest: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, prefix + path.relative_to(root).as_posix())
    return dest


def _zip_with(dest: Path, extra: dict[str, bytes], base: dict[str, bytes] | None = None) -> Path:
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


# --------------------------------------------------------------------------- folders


def test_folder_import_makes_a_complete_snapshot(
    settings: Settings, make_dataset: MakeDataset
) -> None:
    src = make_dataset({"scratch": 12, "good": 15, "dent": 10})
    (src / ".DS_Store").write_bytes(b"junk")
    (src / "good" / "Thumbs.db").write_bytes(b"junk")
    (src / "good" / ".hidden.png").write_bytes(image_bytes(noise(999)))
    (src / "__MACOSX" / "good").mkdir(parents=True)
    (src / "__MACOSX" / "good" / "._x.png").write_bytes(b"junk")
    seen: list[tuple[int, int]] = []

    snap = import_dataset(src, "lot 7", settings, on_progress=lambda d, t: seen.append((d, t)))

    assert snap.class_names == ["dent", "good", "scratch"]
    assert snap.counts == {"dent": 10, "good": 15, "scratch": 12}
    assert snap.path == settings.datasets_dir / snap.content_hash[:16]
    assert snap.health.unreadable == []
    assert seen[-1] == (37, 37) and len(seen) == 37
    for e in snap.entries:
        path = snap.path / e.file
        assert path.is_file() and e.file == f"files/{e.cls}/{e.sha256}.png"
        assert e.source.startswith(f"{e.cls}/") and (e.width, e.height) == (24, 24)
        assert not os.access(path, os.W_OK) or os.geteuid() == 0
        assert stat.S_IMODE(path.stat().st_mode) == 0o444
    manifest = json.loads(snap.manifest_path.read_text())
    assert manifest["content_hash"] == snap.content_hash and len(manifest["entries"]) == 37
    assert json.loads((snap.path / "health.json").read_text())["class_counts"] == snap.counts
    assert not snap.grayscale and snap.health.modes == {"RGB": 37}
    assert load_snapshot(snap.path) == snap
    assert {e.split for e in snap.split_entries("val")} == {"val"}
    assert len(snap.split_entries("val")) == 2 + 3 + 2  # 20 % of 10, 15 and 12
    # Nothing but the snapshot is left in the data dir (the temp folder is gone).
    assert [p.name for p in settings.datasets_dir.iterdir()] == [snap.path.name]


def test_import_is_idempotent(settings: Settings, make_dataset: MakeDataset) -> None:
    src = make_dataset({"a": 5, "b": 5})
    first = import_dataset(src, "first", settings)
    second = import_dataset(src, "second name", settings)
    assert second.path == first.path and second.content_hash == first.content_hash
    assert second.name == "first"  # the existing snapshot is returned unchanged
    assert len(list(settings.datasets_dir.iterdir())) == 1
    # Another split is another snapshot.
    third = import_dataset(src, "other split", settings, seed=5)
    assert third.content_hash != first.content_hash


def test_one_class_is_refused_and_leaves_nothing(
    settings: Settings, make_dataset: MakeDataset
) -> None:
    src = make_dataset({"only": 12})
    before = _contents(settings)
    with pytest.raises(DatasetError, match="need at least two classes with images; found only"):
        import_dataset(src, "x", settings)
    assert _contents(settings) == before


def test_empty_class_folder_is_reported(settings: Settings, make_dataset: MakeDataset) -> None:
    src = make_dataset({"a": 10, "b": 11})
    (src / "c").mkdir()
    snap = import_dataset(src, "x", settings)
    assert snap.class_names == ["a", "b"]
    assert snap.health.empty_classes == ["c"]
    assert snap.health.class_counts == {"a": 10, "b": 11, "c": 0}
    assert any("no usable images" in w and "c" in w for w in snap.health.warnings)
    assert snap.health.small_classes == []


def test_small_classes_and_imbalance(settings: Settings, make_dataset: MakeDataset) -> None:
    src = make_dataset({"a": 20, "b": 4})
    snap = import_dataset(src, "x", settings)
    assert snap.health.small_classes == ["b"]
    assert snap.health.imbalance_ratio == 5.0


def test_duplicates_and_conflicting_duplicates(
    settings: Settings, make_dataset: MakeDataset
) -> None:
    src = make_dataset({"a": 10, "b": 10})
    same = (src / "a" / "a_000.png").read_bytes()
    (src / "a" / "copy_of_a0.png").write_bytes(same)  # same class: stored once
    clash = (src / "a" / "a_001.png").read_bytes()
    (src / "b" / "mislabelled.png").write_bytes(clash)  # two labels: excluded
    snap = import_dataset(src, "x", settings)

    health = snap.health
    assert ["a/a_000.png", "a/copy_of_a0.png"] in health.duplicates
    assert ["a/a_001.png", "b/mislabelled.png"] in health.duplicates
    assert len(health.conflicting_duplicates) == 1
    conflict = health.conflicting_duplicates[0]
    assert conflict["classes"] == ["a", "b"]
    assert conflict["files"] == ["a/a_001.png", "b/mislabelled.png"]
    shas = {e.sha256 for e in snap.entries}
    assert conflict["sha256"] not in shas
    assert not list(snap.path.rglob(f"{conflict['sha256']}.*"))
    assert snap.counts == {"a": 9, "b": 10}  # a: 11 files - 1 duplicate - 1 conflict
    assert any("more than one class" in w for w in health.warnings)


def test_unreadable_files_are_listed_and_skipped(
    settings: Settings, make_dataset: MakeDataset
) -> None:
    src = make_dataset({"a": 10, "b": 10})
    good = image_bytes(noise(5000, (64, 64)), "JPEG")
    (src / "a" / "cut.jpg").write_bytes(good[: len(good) // 2])
    (src / "a" / "notes.png").write_bytes(b"<html>oops</html>")
    (src / "b" / "empty.png").write_bytes(b"")
    snap = import_dataset(src, "x", settings)
    reasons = dict(snap.health.unreadable)
    assert set(reasons) == {"a/cut.jpg", "a/notes.png", "b/empty.png"}
    assert "truncated or corrupt" in reasons["a/cut.jpg"]
    assert reasons["a/notes.png"] == "not an image (looks like HTML/text)"
    assert reasons["b/empty.png"] == "file is empty"
    assert snap.counts == {"a": 10, "b": 10}


def test_symlinks_in_a_folder_are_not_followed(
    settings: Settings, make_dataset: MakeDataset, tmp_path: Path
) -> None:
    src = make_dataset({"a": 3, "b": 3})
    outside = tmp_path / "secret.png"
    outside.write_bytes(image_bytes(noise(7000)))
    (src / "a" / "link.png").symlink_to(outside)
    snap = import_dataset(src, "x", settings)
    assert "a/link.png" in dict(snap.health.unreadable)
    assert snap.counts == {"a": 3, "b": 3}


def test_grayscale_dataset_is_detected(settings: Settings, make_dataset: MakeDataset) -> None:
    src = make_dataset({"a": 0, "b": 0})
    for cls in "ab":
        for i in range(3):
            gray = noise(300 + i + (10 if cls == "b" else 0), gray=True)
            rgb_of_gray = gray[:, :, None].repeat(3, axis=2)
            (src / cls / f"{i}.jpg").write_bytes(image_bytes(rgb_of_gray, "JPEG"))
    snap = import_dataset(src, "x", settings)
    assert snap.grayscale and snap.health.grayscale
    assert snap.health.modes == {"RGB": 6}


def test_load_snapshot_notices_damage(settings: Settings, make_dataset: MakeDataset) -> None:
    snap = import_dataset(make_dataset({"a": 3, "b": 3}), "x", settings)
    victim = snap.path / snap.entries[0].file
    victim.unlink()
    with pytest.raises(DatasetError, match="1 files missing"):
        load_snapshot(snap.path)
    with pytest.raises(DatasetError, match="not a dataset snapshot"):
        load_snapshot(settings.datasets_dir)


# --------------------------------------------------------------------------- zips


def test_zip_with_wrapper_folder(
    settings: Settings, make_dataset: MakeDataset, tmp_path: Path
) -> None:
    src = make_dataset({"a": 4, "b": 5})
    plain = import_dataset(_zip_folder(src, tmp_path / "plain.zip"), "x", settings)
    wrapped = _zip_folder(src, tmp_path / "wrapped.zip", prefix="my_parts/")
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
    archive = _zip_with(tmp_path / "bad.zip", {entry: image_bytes(noise(1))})
    before = _contents(settings)
    with pytest.raises(DatasetError, match=reason):
        import_dataset(archive, "x", settings)
    assert _contents(settings) == before
    assert not (tmp_path / "evil.png").exists()


def test_zip_symlink_entry_is_refused(settings: Settings, tmp_path: Path) -> None:
    archive = _zip_with(tmp_path / "link.zip", {})
    with zipfile.ZipFile(archive, "a") as zf:
        info = zipfile.ZipInfo("a/passwd.png")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    before = _contents(settings)
    with pytest.raises(DatasetError, match="symbolic link"):
        import_dataset(archive, "x", settings)
    assert _contents(settings) == before


def test_zip_with_too_many_entries(tmp_path: Path) -> None:
    settings = load_settings(
        {"DEFECTLENS_HOME": str(tmp_path / "home"), "DEFECTLENS_MAX_ZIP_ENTRIES": "5"}
    )
    archive = _zip_with(tmp_path / "many.zip", {})  # 6 entries
    with pytest.raises(DatasetError, match="6 entries exceed the limit of 5"):
        import_dataset(archive, "x", settings)
    assert _contents(settings) == set()


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
    before = _contents(settings)
    with pytest.raises(DatasetError, match="looks like a zip bomb"):
        import_dataset(archive, "x", settings)
    assert _contents(settings) == before


@pytest.mark.slow
def test_one_gib_zip_bomb_is_refused_quickly(settings: Settings, tmp_path: Path) -> None:
    archive = _write_zeros_zip(tmp_path / "bomb.zip", 1.0)
    assert archive.stat().st_size < 10 * 1024 * 1024
    before = _contents(settings)
    start = time.perf_counter()
    with pytest.raises(DatasetError, match="archive refused: .*zip bomb"):
        import_dataset(archive, "x", settings)
    assert time.perf_counter() - start < 2.0
    assert _contents(settings) == before


def test_zip_total_size_cap(tmp_path: Path) -> None:
    settings = load_settings(
        {"DEFECTLENS_HOME": str(tmp_path / "home"), "DEFECTLENS_MAX_ZIP_BYTES": "1000"}
    )
    archive = _zip_with(tmp_path / "big.zip", {})
    with pytest.raises(DatasetError, match="over the .* GiB limit"):
        import_dataset(archive, "x", settings)
    assert _contents(settings) == set()


def test_zip_entry_that_lies_about_its_size(settings: Settings, tmp_path: Path) -> None:
    """An entry larger than its header says is cut off at the declared size and fails its CRC."""
    real = image_bytes(noise(77, (64, 64)))
    archive = _zip_with(tmp_path / "liar.zip", {"a/liar.png": real})
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


def test_not_a_zip_or_folder(settings: Settings, tmp_path: Path) -> None:
    f = tmp_path / "data.tar"
    f.write_bytes(b"not an archive")
    with pytest.raises(DatasetError, match="not a folder or a zip archive"):
        import_dataset(f, "x", settings)
    with pytest.raises(DatasetError, match="not found"):
        import_dataset(tmp_path / "missing", "x", settings)


# --------------------------------------------------------------------------- splits


def _entries(counts: dict[str, int], dup_groups: int = 0) -> list[ManifestEntry]:
    out = []
    for cls, n in counts.items():
        for i in range(n):
            # The first dup_groups*2 images of each class come in identical pairs.
            key = i // 2 if i < dup_groups * 2 else i
            sha = f"{cls}-{key}"
            out.append(
                ManifestEntry(f"files/{cls}/{i}", cls, sha, "train", 8, 8, "L", f"{cls}/{i}")
            )
    return out


def test_stratified_split_is_deterministic_and_stratified() -> None:
    entries = _entries({"a": 100, "b": 50, "c": 11})
    one = stratified_split(entries, 0.2, seed=1)
    assert one == stratified_split(entries, 0.2, seed=1)
    assert one != stratified_split(entries, 0.2, seed=2)
    val = Counter(e.cls for e in one if e.split == "val")
    assert val == {"a": 20, "b": 10, "c": 2}
    assert [e.file for e in one] == [e.file for e in entries]  # order kept


def test_identical_images_stay_on_one_side() -> None:
    entries = _entries({"a": 40, "b": 40}, dup_groups=10)
    for seed in range(10):
        sides: dict[str, set[str]] = {}
        for e in stratified_split(entries, 0.3, seed):
            sides.setdefault(e.sha256, set()).add(e.split)
        assert all(len(s) == 1 for s in sides.values())


def test_split_keeps_a_train_image_in_tiny_classes() -> None:
    split = stratified_split(_entries({"a": 2, "b": 1}), 0.9, seed=0)
    assert Counter((e.cls, e.split) for e in split) == {
        ("a", "train"): 1,
        ("a", "val"): 1,
        ("b", "train"): 1,
    }


def test_split_file(settings: Settings, make_dataset: MakeDataset, tmp_path: Path) -> None:
    src = make_dataset({"a": 6, "b": 6})
    dup = (src / "a" / "a_000.png").read_bytes()
    (src / "a" / "again.png").write_bytes(dup)
    rows = [("a/a_000.png", "train"), ("a/again.png", "test")]
    rows += [(f"a/a_{i:03d}.png", "train" if i < 4 else "test") for i in range(1, 6)]
    rows += [(f"b/b_{i:03d}.png", "train;test" if i == 0 else "train") for i in range(5)]
    split_csv = tmp_path / "splits.csv"
    with open(split_csv, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "class", "original_split"])
        w.writerows((file, file[0], split) for file, split in rows)

    snap = import_dataset(src, "x", settings, split_file=split_csv)
    by_source = {e.source: e.split for e in snap.entries}
    assert by_source["a/a_000.png"] == "test"  # its copy is in test: never train on it
    assert by_source["a/a_004.png"] == "test" and by_source["a/a_001.png"] == "train"
    assert by_source["b/b_000.png"] == "test" and by_source["b/b_001.png"] == "train"
    assert by_source["b/b_005.png"] == "train"  # not listed
    assert any("not in the split file" in w for w in snap.health.warnings)


def test_split_file_with_bad_columns(
    settings: Settings, make_dataset: MakeDataset, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("path,fold\na/x.png,1\n")
    with pytest.raises(DatasetError, match="needs columns 'file' and 'split'"):
        import_dataset(make_dataset({"a": 2, "b": 2}), "x", settings, split_file=bad)
    bad.write_text("file,split\na/x.png,holdout\n")
    with pytest.raises(DatasetError, match="line 2: split 'holdout'"):
        import_dataset(make_dataset({"a": 2, "b": 2}), "x", settings, split_file=bad)


# --------------------------------------------------------------------------- real data


@pytest.mark.slow
def test_real_neu_surface_import(settings: Settings) -> None:
    src = SHARED_DATASETS / "neu_surface"
    if not src.is_dir():
        pytest.skip("shared NEU dataset not present")
    start = time.perf_counter()
    snap = import_dataset(src, "NEU", settings)
    elapsed = time.perf_counter() - start
    assert snap.class_names == [
        "crazing",
        "inclusion",
        "patches",
        "pitted_surface",
        "rolled-in_scale",
        "scratches",
    ]
    # 300 files per class; the published set holds one exact duplicate pair in patches.
    files = sum(snap.counts.values()) + sum(len(g) - 1 for g in snap.health.duplicates)
    assert files == 1800
    assert all(299 <= n <= 300 for n in snap.counts.values())
    assert snap.health.unreadable == [] and snap.health.conflicting_duplicates == []
    assert snap.grayscale
    for cls, n in snap.counts.items():
        val = sum(1 for e in snap.entries if e.cls == cls and e.split == "val")
        assert val == round(n * 0.2)
    assert elapsed < 60  # a few seconds normally; generous for a loaded 2-core box
