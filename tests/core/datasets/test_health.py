"""The health report's class warnings, on real image folders: too small, copied, imbalanced."""

from __future__ import annotations

import numpy as np
from PIL import Image

from core.config import Settings
from core.datasets import health
from core.datasets.importer import import_dataset
from tests.core.conftest import image_bytes, noise
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


def test_a_one_image_class_is_kept_in_training_and_its_recall_called_unmeasurable(
    settings: Settings, make_dataset: MakeDataset
) -> None:
    snap = import_dataset(make_dataset({"good": 24, "dent": 1}), "x", settings)
    assert [e.split for e in snap.entries if e.cls == "dent"] == ["train"]
    assert (
        "class 'dent' has a single image: it is trained on but has no validation image, so its "
        "recall cannot be measured"
    ) in snap.health.warnings
    assert not any("'good' has a single" in w for w in snap.health.warnings)


def test_images_far_smaller_than_the_median_are_named_with_sizes_and_enlargement(
    settings: Settings, make_dataset: MakeDataset
) -> None:
    src = make_dataset({})
    for j, cls in enumerate("ab"):
        (src / cls).mkdir(parents=True, exist_ok=True)
        for i in range(10):
            big = noise(1000 + 50 * j + i, (400, 400))
            (src / cls / f"big_{i}.png").write_bytes(image_bytes(big))
    for i, side in enumerate((20, 20, 30)):
        (src / "a" / f"small_{i}.png").write_bytes(image_bytes(noise(9000 + i, (side, side))))
    # 100 px is exactly a quarter of the median: enlarged 4x, not an outlier.
    (src / "b" / "quarter.png").write_bytes(image_bytes(noise(9100, (100, 100))))
    snap = import_dataset(src, "x", settings)
    assert (
        "3 images are far smaller than the others (20x20, 30x30 px vs a median of 400x400 px): "
        "a/small_0.png, a/small_1.png, a/small_2.png; they are enlarged up to 20x more than the "
        "others and lose detail"
    ) in snap.health.warnings
    assert not any("quarter" in w for w in snap.health.warnings)
    assert len(snap.entries) == 24  # warned about, never dropped


def test_a_uniform_dataset_has_no_size_warning(
    settings: Settings, make_dataset: MakeDataset
) -> None:
    snap = import_dataset(make_dataset({"a": 3, "b": 3}), "x", settings)
    assert not any("far smaller" in w for w in snap.health.warnings)


def test_converted_pixel_modes_are_noted_once_per_mode_with_a_count(
    settings: Settings, make_dataset: MakeDataset
) -> None:
    src = make_dataset({"a": 4, "b": 4})
    for i in range(3):
        wide = (np.arange(24 * 24, dtype=np.uint16).reshape(24, 24) * 97 + i).astype(np.uint16)
        Image.fromarray(wide).save(src / "a" / f"wide_{i}.png")
    for i in range(2):
        (src / "b" / f"pal_{i}.png").write_bytes(image_bytes(noise(7000 + i), mode="P"))
    (src / "b" / "alpha.png").write_bytes(image_bytes(noise(7100), mode="RGBA"))
    snap = import_dataset(src, "x", settings)
    modes = {e.source: e.mode for e in snap.entries}
    wide_mode = modes["a/wide_0.png"]
    assert wide_mode in {"I;16", "I"}  # Pillow's name for a 16-bit PNG depends on its version
    notes = [w for w in snap.health.warnings if " and were " in w or " and was " in w]
    kind = "16-bit" if wide_mode == "I;16" else "32-bit integer"
    how = "(the top byte of each pixel kept)" if wide_mode == "I;16" else "by their range"
    assert notes == [  # by mode name
        f"3 images were {kind} ({wide_mode}) and were converted to 8 bits {how}",
        "2 images were palette (P) and were converted to RGB (any transparency onto white)",
        "1 image was RGB with transparency (RGBA) and was flattened onto white",
    ]
    assert len(snap.entries) == 14
