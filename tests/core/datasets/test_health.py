"""The health report's class warnings, on real image folders: too small, copied, imbalanced."""

from __future__ import annotations

from core.config import Settings
from core.datasets import health
from core.datasets.importer import import_dataset
from tests.core.datasets.support import MakeDataset


def _class_warnings(warnings: list[str]) -> list[str]:
    words = ("usable image", "also filed under", "extreme imbalance")
    return [w for w in warnings if any(x in w for x in words)]


def test_a_small_class_is_told_how_many_more_images_it_needs(
    settings: Settings, make_dataset: MakeDataset
) -> None:
    snap = import_dataset(make_dataset({"good": 30, "pit": 4, "dent": 1}), "x", settings)
    warns = snap.health.warnings
    assert (
        "class 'pit' has 4 usable images; at least 20 (16 more) are needed for a useful model"
        in warns
    )
    assert (
        "class 'dent' has 1 usable image; at least 20 (19 more) are needed for a useful model"
        in warns
    )
    assert not any("'good' has 30 usable" in w for w in warns)
    assert snap.health.small_classes == ["dent", "pit"]  # the list keeps its < 10 rule


def test_a_balanced_dataset_of_useful_classes_has_no_class_warnings(
    settings: Settings, make_dataset: MakeDataset
) -> None:
    snap = import_dataset(
        make_dataset({"a": health.USEFUL_CLASS, "b": health.USEFUL_CLASS + 5}), "x", settings
    )
    assert _class_warnings(snap.health.warnings) == []


def test_extreme_imbalance_is_named_with_its_ratio(
    settings: Settings, make_dataset: MakeDataset
) -> None:
    snap = import_dataset(make_dataset({"good": 231, "pit": 21}), "x", settings)
    assert snap.health.imbalance_ratio == 11.0
    assert (
        "extreme imbalance: class 'good' has 231 images, 11x 'pit' (21); training balances "
        "the classes, but more 'pit' images help most"
    ) in snap.health.warnings
    ten = import_dataset(make_dataset({"good": 200, "pit": 20}, root=settings.home / "t"), "t",
                         settings)  # fmt: skip
    assert ten.health.imbalance_ratio == 10.0
    assert not any("extreme imbalance" in w for w in ten.health.warnings)


def test_a_class_copied_from_another_is_named(
    settings: Settings, make_dataset: MakeDataset
) -> None:
    src = make_dataset({"scratch": 24, "ok": 24})
    (src / "scratch_copy").mkdir()
    for i in range(5):
        name = f"scratch_{i:03d}.png"
        (src / "scratch_copy" / name).write_bytes((src / "scratch" / name).read_bytes())
    snap = import_dataset(src, "x", settings)
    assert snap.class_names == ["ok", "scratch"]
    assert (
        "every image of class 'scratch_copy' is also filed under 'scratch': the class has no "
        "images of its own (a copied folder?) and was left out"
    ) in snap.health.warnings
    # The source keeps its other images and gets no such warning.
    assert not any("class 'scratch' is also" in w for w in snap.health.warnings)
