"""core.demo.images: procedural part images (shapes, determinism, what each defect looks like,
process conditions) and the demo dataset as the real importer sees it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from core.auth import permissions
from core.datasets import service
from core.demo.images import CLASSES, Conditions, image_rng, part_image, write_dataset

SEEDS = range(40)


def _defect_region(cls: str, seed: int, **kw: object) -> tuple[np.ndarray, np.ndarray]:
    """(difference to the ok part of the same generator state, pixels it changes by > 12)."""
    ok = part_image("ok", np.random.default_rng(seed), **kw).astype(np.int16)  # type: ignore[arg-type]
    bad = part_image(cls, np.random.default_rng(seed), **kw).astype(np.int16)  # type: ignore[arg-type]
    diff = bad - ok
    return diff, np.abs(diff) > 12


def _shape_stats(cls: str) -> dict[str, np.ndarray]:
    """Per seed: area, sign (dark -1 / bright +1), elongation and spread across the main axis."""
    rows = []
    for seed in SEEDS:
        diff, region = _defect_region(cls, seed)
        ys, xs = np.nonzero(region)
        minor, major = np.sqrt(np.maximum(np.linalg.eigvalsh(np.cov(np.stack([xs, ys]))), 1e-6))
        rows.append((region.sum(), np.sign(diff[region].mean()), major / minor, minor))
    return dict(zip(("area", "sign", "elongation", "across"), np.array(rows).T, strict=True))


def _gradient_energy(img: np.ndarray) -> float:
    gy, gx = np.gradient(img.astype(np.float64))
    return float(np.mean(gx * gx + gy * gy))


def test_every_class_is_a_uint8_grayscale_image_of_the_asked_size() -> None:
    for cls in CLASSES:
        square = part_image(cls, np.random.default_rng(1))
        strip = part_image(cls, np.random.default_rng(1), size=(48, 80))
        assert square.shape == (96, 96) and square.dtype == np.uint8
        assert strip.shape == (48, 80) and strip.dtype == np.uint8
        assert 40 < square.mean() < 200 and square.std() > 2  # exposed, textured, not clipped
    with pytest.raises(ValueError, match="unknown class"):
        part_image("dent", np.random.default_rng(0))
    with pytest.raises(ValueError, match="at least 16 px"):
        part_image("ok", np.random.default_rng(0), size=(8, 96))


def test_the_same_generator_state_gives_the_same_image() -> None:
    for cls in CLASSES:
        a = part_image(cls, np.random.default_rng(5))
        assert np.array_equal(a, part_image(cls, np.random.default_rng(5)))
        assert not np.array_equal(a, part_image(cls, np.random.default_rng(6)))
    rng = np.random.default_rng(5)
    assert not np.array_equal(part_image("ok", rng), part_image("ok", rng))  # rng advances
    assert np.array_equal(image_rng(0, "pit", 3).random(4), image_rng(0, "pit", 3).random(4))


def test_every_defect_is_visible_against_the_same_part_without_it() -> None:
    for cls in CLASSES[1:]:
        for seed in range(10):
            _diff, region = _defect_region(cls, seed)
            assert region.sum() >= 4, (cls, seed)
            _diff, region = _defect_region(cls, seed, size=(48, 80))
            assert region.sum() >= 2, (cls, seed, "non-square")


def test_each_defect_has_its_own_shape_size_and_polarity() -> None:
    s = {cls: _shape_stats(cls) for cls in CLASSES[1:]}
    side2 = 96 * 96
    # Pits: dark, round, small; some only a few pixels.
    assert (s["pit"]["sign"] < 0).all()
    assert np.median(s["pit"]["elongation"]) < 2 and np.median(s["pit"]["area"]) < 60
    assert s["pit"]["area"].min() <= 15
    # Scratches: long thin straight lines, dark grooves or bright burnishes.
    assert s["scratch"]["elongation"].min() > 6 and np.median(s["scratch"]["across"]) < 1.2
    assert {-1.0, 1.0} <= set(s["scratch"]["sign"])
    # Cracks: dark, jagged and branching, so spread wider across their axis than scratches.
    assert (s["crack"]["sign"] < 0).all()
    assert np.median(s["crack"]["across"]) > 2 * np.median(s["scratch"]["across"])
    # Inclusions: dark or bright blobs, between pits and patches in size.
    assert {-1.0, 1.0} <= set(s["inclusion"]["sign"])
    assert np.median(s["pit"]["area"]) < np.median(s["inclusion"]["area"])
    assert np.median(s["inclusion"]["area"]) < np.median(s["patch"]["area"])
    # Patches: large regions, a few percent of the part at least.
    assert s["patch"]["area"].min() > 0.03 * side2 and np.median(s["patch"]["area"]) > 0.08 * side2


def test_no_class_is_told_from_ok_by_the_image_mean_alone() -> None:
    """The light varies more than any defect shifts the mean: a small pit stays small."""
    means = {
        cls: np.array([part_image(cls, image_rng(3, cls, i)).mean() for i in range(60)])
        for cls in CLASSES
    }
    for cls in CLASSES[1:]:
        ok, bad = means["ok"], means[cls]
        best = max(
            max(np.mean(bad >= t) + np.mean(ok < t), np.mean(bad < t) + np.mean(ok >= t)) / 2
            for t in np.concatenate([ok, bad])
        )
        assert best < 0.75, cls


def test_conditions_change_brightness_contrast_blur_and_noise_measurably() -> None:
    def img(seed: int, **kw: float) -> np.ndarray:
        return part_image("ok", np.random.default_rng(seed), conditions=Conditions(**kw))

    for seed in range(5):
        nominal = img(seed).astype(np.float64)
        assert np.array_equal(img(seed), part_image("ok", np.random.default_rng(seed)))
        assert 0.77 < img(seed, brightness=0.8).mean() / nominal.mean() < 0.83
        assert 1.35 < img(seed, contrast=1.5).std() / nominal.std() < 1.6
        # Blur is measured without sensor noise, which is added after the optics.
        quiet = img(seed, noise=0.0).astype(np.float64)
        assert _gradient_energy(img(seed, blur=1.2, noise=0.0)) < 0.5 * _gradient_energy(quiet)
        # Same sensor draws: the noise itself is what differs, 1.6 times as strong.
        ratio = np.var(img(seed, noise=1.6) - quiet) / np.var(nominal - quiet)
        assert 2.2 < ratio < 2.9


def test_tool_wear_deepens_the_machining_marks() -> None:
    def energy(wear: float) -> float:
        return float(
            np.mean(
                [
                    _gradient_energy(
                        part_image("ok", np.random.default_rng(s), conditions=Conditions(wear=wear))
                    )
                    for s in range(20)
                ]
            )
        )

    assert energy(1.0) > 1.2 * energy(0.0)


def test_write_dataset_is_deterministic_and_refuses_a_used_folder(tmp_path: Path) -> None:
    def digests(root: Path) -> dict[str, str]:
        return {
            p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.png"))
        }

    a = digests(write_dataset(tmp_path / "a", per_class=2, seed=4, size=32))
    assert a == digests(write_dataset(tmp_path / "b", per_class=2, seed=4, size=32))
    assert sorted(a) == sorted(f"{c}/{c}_{i:04d}.png" for c in CLASSES for i in range(2))
    assert a != digests(write_dataset(tmp_path / "c", per_class=2, seed=5, size=32))
    assert not list(tmp_path.rglob(".*"))  # no temporary files left behind
    with pytest.raises(FileExistsError, match="not empty"):
        write_dataset(tmp_path / "a", per_class=2)
    with pytest.raises(ValueError, match="per_class"):
        write_dataset(tmp_path / "d", per_class=0)


def test_the_demo_dataset_imports_with_a_clean_health_report(tmp_path: Path, db, settings) -> None:  # type: ignore[no-untyped-def]
    source = write_dataset(tmp_path / "demo", per_class=20, seed=0)
    record, snap, created = service.import_dataset(db, settings, permissions.SYSTEM, source, "d")
    assert created and record.counts == {cls: 20 for cls in CLASSES}
    assert sorted(snap.class_names) == sorted(CLASSES)
    health = snap.health
    assert health.warnings == [] and health.unreadable == [] and health.duplicates == []
    assert health.small_classes == [] and health.empty_classes == []
    assert health.grayscale and health.modes == {"L": 120}
    assert health.sizes["by_size"] == {"96x96": 120}
    val = [e for e in snap.entries if e.split == "val"]
    assert {e.cls for e in val} == set(CLASSES)  # every class keeps validation images
