"""core.datasets.splits: the stratified split and split files (CSV, read and written)."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from core.config import Settings
from core.datasets.importer import import_dataset
from core.datasets.snapshot import ManifestEntry
from core.datasets.splits import (
    carve_validation,
    read_split_file,
    stratified_split,
    write_split_file,
)
from core.errors import DatasetError
from tests.core.datasets.support import MakeDataset


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
    # c: 20 % of 11 rounds to 2, raised to the 3 validation images every class keeps.
    assert val == {"a": 20, "b": 10, "c": 3}
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


@pytest.mark.parametrize(
    ("n", "val"), [(1, 0), (2, 1), (3, 1), (4, 2), (5, 2), (6, 3), (10, 3), (15, 3), (20, 4)]
)
def test_small_classes_keep_a_few_val_images_and_most_for_training(n: int, val: int) -> None:
    split = stratified_split(_entries({"big": 100, "small": n}), 0.2, seed=0)
    counts = Counter((e.cls, e.split) for e in split)
    assert counts[("small", "val")] == val
    assert counts[("small", "train")] == n - val >= max(1, n // 2)


def test_no_val_fraction_means_no_val_images() -> None:
    split = stratified_split(_entries({"a": 10, "b": 3}), 0.0, seed=0)
    assert {e.split for e in split} == {"train"}


def test_val_floor_keeps_identical_images_together_and_a_train_image() -> None:
    # 6 images in 3 identical pairs: the floor of 3 cannot split a pair, so 2 go to val.
    for seed in range(5):
        split = stratified_split(_entries({"a": 6, "b": 30}, dup_groups=3), 0.2, seed)
        sides: dict[str, set[str]] = {}
        for e in split:
            sides.setdefault(e.sha256, set()).add(e.split)
        assert all(len(s) == 1 for s in sides.values())
        a = Counter(e.split for e in split if e.cls == "a")
        assert a["val"] == 2 and a["train"] == 4


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


def test_split_file_round_trips_names_with_commas_quotes_and_newlines(tmp_path: Path) -> None:
    rows = [
        ("scratch, deep/a.png", "train"),
        ('dent "big"/b.png', "val"),
        ("two\nlines/c.png", "test"),
        ("ok/d.png", "train"),
    ]
    path = tmp_path / "splits.csv"
    write_split_file(path, rows)
    assert read_split_file(path) == dict(rows)


def test_unquoted_comma_in_a_split_file_is_a_readable_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("file,split\nok/a.png,train\nscratch, deep/b.png,val\n")
    with pytest.raises(DatasetError, match="line 3: more fields than the header's 2"):
        read_split_file(bad)


def test_folder_with_a_comma_in_its_class_name_imports_with_its_split_file(
    settings: Settings, make_dataset: MakeDataset, tmp_path: Path
) -> None:
    src = make_dataset({"scratch, deep": 4, "ok": 4})
    rows = [
        (f"{c}/{c}_{i:03d}.png", {0: "test", 1: "val"}.get(i, "train"))
        for c in ("scratch, deep", "ok")
        for i in range(4)
    ]
    split_csv = tmp_path / "splits.csv"
    write_split_file(split_csv, rows)
    snap = import_dataset(src, "x", settings, split_file=split_csv)
    assert snap.class_names == ["ok", "scratch, deep"]
    assert {e.source: e.split for e in snap.entries} == dict(rows)
    assert not any("not in the split file" in w for w in snap.health.warnings)


def _entry(cls: str, i: int, split: str) -> ManifestEntry:
    return ManifestEntry(f"{cls}/{i}.png", cls, f"{cls}-{i}", split, 8, 8, "L", f"{cls}/{i}.png")


def test_carve_validation_takes_a_stratified_tenth_of_train_and_leaves_test_alone() -> None:
    entries = [_entry("def", i, "test" if i < 10 else "train") for i in range(110)]
    entries += [_entry("ok", i, "test" if i < 5 else "train") for i in range(25)]
    out, carved = carve_validation(entries, seed=0)
    by = Counter((e.cls, e.split) for e in out)
    assert by[("def", "val")] == 10 and by[("def", "test")] == 10  # a tenth of 100 train
    assert by[("ok", "val")] == 3 and by[("ok", "test")] == 5  # the floor of 3 per class
    assert carved == 13
    assert [e.file for e in out] == [e.file for e in entries]  # same images, same order
    assert all(e.split == "test" for e, o in zip(entries, out, strict=True) if o.split == "test")
    assert carve_validation(entries, seed=0)[0] == out  # deterministic


def test_carve_validation_keeps_a_file_that_has_its_own_val_part() -> None:
    entries = [_entry("a", i, "val" if i == 0 else "train") for i in range(20)]
    entries += [_entry("b", i, "train") for i in range(20)]
    out, carved = carve_validation(entries, seed=0)
    assert out == entries and carved == 0


def test_split_file_without_val_gets_one_carved_and_the_manifest_says_so(
    settings: Settings, make_dataset: MakeDataset, tmp_path: Path
) -> None:
    src = make_dataset({"def": 12, "ok": 12})
    rows = [
        (f"{c}/{c}_{i:03d}.png", "test" if i < 2 else "train")
        for c in ("def", "ok")
        for i in range(12)
    ]
    split_csv = tmp_path / "splits.csv"
    write_split_file(split_csv, rows)
    snap = import_dataset(src, "x", settings, split_file=split_csv)
    got = Counter((e.cls, e.split) for e in snap.entries)
    assert got == {
        ("def", "test"): 2, ("def", "val"): 3, ("def", "train"): 7,
        ("ok", "test"): 2, ("ok", "val"): 3, ("ok", "train"): 7,
    }  # fmt: skip
    tests = {e.source for e in snap.entries if e.split == "test"}
    assert tests == {r for r, sp in rows if sp == "test"}
    manifest = (snap.path / "manifest.json").read_text()
    assert '"val_carved_from_train"' in manifest
