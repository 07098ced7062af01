"""core.datasets.importer: safe import of folders and zips, and the health report it writes."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from core.config import Settings
from core.datasets.importer import import_dataset
from core.datasets.snapshot import load_snapshot
from core.errors import DatasetError
from tests.conftest import SHARED_DATASETS
from tests.core.conftest import image_bytes, noise
from tests.core.datasets.support import MakeDataset, contents

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
    # 20 % of 10, 15 and 12 (2, 3, 2), each raised to the split's floor of 3 per class.
    assert len(snap.split_entries("val")) == 3 + 3 + 3
    # Nothing but the snapshot is left in the data dir (the temp folder is gone).
    assert [p.name for p in settings.datasets_dir.iterdir()] == [snap.path.name]


def test_one_class_is_refused_and_leaves_nothing(
    settings: Settings, make_dataset: MakeDataset
) -> None:
    src = make_dataset({"only": 12})
    before = contents(settings)
    with pytest.raises(DatasetError, match="need at least two classes with images; found only"):
        import_dataset(src, "x", settings)
    assert contents(settings) == before


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


def test_not_a_zip_or_folder(settings: Settings, tmp_path: Path) -> None:
    f = tmp_path / "data.tar"
    f.write_bytes(b"not an archive")
    with pytest.raises(DatasetError, match="not a folder or a zip archive"):
        import_dataset(f, "x", settings)
    with pytest.raises(DatasetError, match="not found"):
        import_dataset(tmp_path / "missing", "x", settings)


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
