"""The health report: what an engineer should know about a dataset before training on it.

Exact duplicates are stored once; an image filed under two classes is a labelling conflict and
is left out of training; empty and small classes, unreadable files and image sizes are reported.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from core.datasets.sources import ScannedImage

SMALL_CLASS = 10  # fewer usable images than this and a class is listed in small_classes
# Fewer usable images than this and the report says how many more a class needs: after the
# split's 3 validation images (core.datasets.splits) 17 remain to learn from, about the count at
# which bench/imbalance.py's rare NEU classes (20 training images each) reach useful recall.
USEFUL_CLASS = 20
# Largest / smallest class above this is called extreme: training then balances the classes
# (core.training.balance balances from 3:1), but only more rare images fix what it cannot see.
EXTREME_RATIO = 10.0
# An image whose longer side is under this fraction of the dataset's median longer side is a
# size outlier: one input size is chosen from the median (core.training.config), so such an
# image is enlarged over 4x more than the others, two octaves, and its fine detail (the scale
# at which defects show) is interpolated rather than seen.
SIZE_OUTLIER_FRACTION = 0.25
# Modes that import converts (core.vision.images decodes everything to 8-bit L or RGB): what
# they are and how they were converted, in words.
_SIXTEEN = ("16-bit", "converted to 8 bits (the top byte of each pixel kept)")
_CONVERSIONS = {
    "I;16": _SIXTEEN,
    "I;16B": _SIXTEEN,
    "I;16L": _SIXTEEN,
    "I;16N": _SIXTEEN,
    "I": ("32-bit integer", "converted to 8 bits by their range"),
    "F": ("floating-point", "converted to 8 bits by their range"),
    "P": ("palette", "converted to RGB (any transparency onto white)"),
    "PA": ("palette with transparency", "converted to RGB onto white"),
    "RGBA": ("RGB with transparency", "flattened onto white"),
    "LA": ("grayscale with transparency", "flattened onto white"),
    "1": ("1-bit", "converted to 8-bit grayscale"),
}


@dataclass(frozen=True)
class HealthReport:
    """What an engineer should know about a dataset before training on it."""

    class_counts: dict[str, int]
    imbalance_ratio: float
    unreadable: list[tuple[str, str]]  # (file, reason)
    duplicates: list[list[str]]
    conflicting_duplicates: list[dict[str, Any]]
    small_classes: list[str]
    sizes: dict[str, Any]  # min/max/median width and height, count by size
    modes: dict[str, int]
    grayscale: bool
    warnings: list[str]
    empty_classes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        d = asdict(self)
        d["unreadable"] = [list(u) for u in self.unreadable]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HealthReport:
        """Inverse of to_dict."""
        return cls(
            class_counts={str(k): int(v) for k, v in d["class_counts"].items()},
            imbalance_ratio=float(d["imbalance_ratio"]),
            unreadable=[(str(f), str(r)) for f, r in d["unreadable"]],
            duplicates=[list(g) for g in d["duplicates"]],
            conflicting_duplicates=list(d["conflicting_duplicates"]),
            small_classes=list(d["small_classes"]),
            sizes=dict(d["sizes"]),
            modes={str(k): int(v) for k, v in d["modes"].items()},
            grayscale=bool(d["grayscale"]),
            warnings=list(d["warnings"]),
            empty_classes=list(d.get("empty_classes", [])),
        )


@dataclass(frozen=True)
class Deduplicated:
    """The scanned images with exact duplicates and label conflicts sorted out."""

    kept: list[ScannedImage]  # one per image, in source order; conflicting images left out
    duplicates: list[list[str]]  # groups of source paths with identical content
    conflicts: list[dict[str, Any]]  # {"sha256", "classes", "files"} per conflicting image
    conflicting: frozenset[str]  # sha256 of every image filed under two classes


def deduplicate(scanned: Sequence[ScannedImage]) -> Deduplicated:
    """Group identical images: keep one per image, leave out those filed under two classes."""
    by_sha: dict[str, list[ScannedImage]] = defaultdict(list)
    for s in scanned:
        by_sha[s.sha].append(s)
    duplicates = sorted(sorted(s.rel for s in g) for g in by_sha.values() if len(g) > 1)
    conflicts: list[dict[str, Any]] = []
    for sha, group in sorted(by_sha.items()):
        labels = sorted({s.cls for s in group})
        if len(labels) > 1:
            conflicts.append(
                {"sha256": sha, "classes": labels, "files": sorted(s.rel for s in group)}
            )
    conflicting = frozenset(c["sha256"] for c in conflicts)
    # One entry per (class, image): exact copies in the same class would only weight it twice.
    kept: dict[str, ScannedImage] = {}
    for s in scanned:
        if s.sha not in conflicting and s.sha not in kept:
            kept[s.sha] = s
    return Deduplicated(list(kept.values()), duplicates, conflicts, conflicting)


def class_counts(kept: Sequence[ScannedImage], folder_classes: set[str]) -> dict[str, int]:
    """Usable images per class folder, empty folders included, sorted by name."""
    counts = Counter(s.cls for s in kept)
    return {c: counts.get(c, 0) for c in sorted(folder_classes)}


def assess(
    images: Deduplicated,
    counts_by_folder: dict[str, int],
    unreadable: list[tuple[str, str]],
    *,
    stray: int,
    unsplit: int,
) -> HealthReport:
    """The report for a dataset of at least one class with images.

    stray counts files outside the class folders; unsplit, images a split file did not list.
    """
    class_names = [c for c, n in counts_by_folder.items() if n > 0]
    counts = [counts_by_folder[c] for c in class_names]
    small = [c for c in class_names if counts_by_folder[c] < SMALL_CLASS]
    empty = [c for c, n in counts_by_folder.items() if n == 0]
    return HealthReport(
        class_counts=counts_by_folder,
        imbalance_ratio=round(max(counts) / min(counts), 3),
        unreadable=sorted(unreadable),
        duplicates=images.duplicates,
        conflicting_duplicates=images.conflicts,
        small_classes=small,
        sizes=size_stats(images.kept),
        modes=dict(sorted(Counter(s.mode for s in images.kept).items())),
        grayscale=all(s.gray for s in images.kept),
        warnings=_warnings(images, empty, len(unreadable), stray, unsplit)
        + _class_warnings(images, counts_by_folder)
        + _size_warnings(images.kept)
        + _mode_notes(images.kept),
        empty_classes=empty,
    )


def _warnings(
    images: Deduplicated,
    empty: list[str],
    unreadable: int,
    stray: int,
    unsplit: int,
) -> list[str]:
    warns: list[str] = []
    if stray:
        warns.append(f"{stray} files outside the class folders were ignored")
    if images.conflicts:
        warns.append(
            f"{len(images.conflicts)} images appear under more than one class and were left out "
            "of training; check their labels"
        )
    if images.duplicates:
        extra = sum(len(g) - 1 for g in images.duplicates)
        warns.append(f"{extra} duplicate files were stored once ({len(images.duplicates)} groups)")
    if empty:
        warns.append(f"class folders with no usable images were left out: {', '.join(empty)}")
    if unreadable:
        warns.append(f"{unreadable} files could not be read and were skipped")
    if unsplit:
        warns.append(f"{unsplit} images not in the split file were put in train")
    return warns


def _class_warnings(images: Deduplicated, counts: dict[str, int]) -> list[str]:
    """Classes too small to learn, copies of another class, and extreme imbalance, in words."""
    warns: list[str] = []
    for cls, n in counts.items():
        if 0 < n < USEFUL_CLASS:
            warns.append(
                f"class '{cls}' has {n} usable image{'s' if n != 1 else ''}; at least "
                f"{USEFUL_CLASS} ({USEFUL_CLASS - n} more) are needed for a useful model"
            )
        if n == 1:
            # core.datasets.splits keeps a class's only image in training.
            warns.append(
                f"class '{cls}' has a single image: it is trained on but has no validation "
                "image, so its recall cannot be measured"
            )
    shared_with: dict[str, set[str]] = defaultdict(set)
    for conflict in images.conflicts:
        for cls in conflict["classes"]:
            shared_with[cls].update(c for c in conflict["classes"] if c != cls)
    for cls in sorted(shared_with):
        if counts.get(cls, 0) == 0:
            others = ", ".join(f"'{c}'" for c in sorted(shared_with[cls]))
            warns.append(
                f"every image of class '{cls}' is also filed under {others}: the class has no "
                "images of its own (a copied folder?) and was left out"
            )
    present = {c: n for c, n in counts.items() if n > 0}
    if len(present) >= 2:
        big = max(present, key=lambda c: present[c])
        small = min(present, key=lambda c: present[c])
        ratio = present[big] / present[small]
        if ratio > EXTREME_RATIO:
            warns.append(
                f"extreme imbalance: class '{big}' has {present[big]} images, {ratio:.0f}x "
                f"'{small}' ({present[small]}); training balances the classes, but more "
                f"'{small}' images help most"
            )
    return warns


def _size_warnings(kept: Sequence[ScannedImage]) -> list[str]:
    """Images far smaller than the dataset's median (SIZE_OUTLIER_FRACTION), named."""
    if len(kept) < 2:
        return []
    median = statistics.median(max(s.width, s.height) for s in kept)
    small = sorted(
        (s for s in kept if max(s.width, s.height) < SIZE_OUTLIER_FRACTION * median),
        key=lambda s: (max(s.width, s.height), s.rel),
    )
    if not small:
        return []
    mw = statistics.median(s.width for s in kept)
    mh = statistics.median(s.height for s in kept)
    sizes = ", ".join(sorted({f"{s.width}x{s.height}" for s in small}))
    factor = median / max(small[0].width, small[0].height)
    files = ", ".join(s.rel for s in small[:5]) + (", ..." if len(small) > 5 else "")
    n = len(small)
    return [
        f"{n} image{'s are' if n != 1 else ' is'} far smaller than the others ({sizes} px vs a "
        f"median of {mw:g}x{mh:g} px): {files}; {'they are' if n != 1 else 'it is'} enlarged "
        f"up to {factor:.0f}x more than the others and lose{'' if n != 1 else 's'} detail"
    ]


def _mode_notes(kept: Sequence[ScannedImage]) -> list[str]:
    """One note per converted pixel mode, with its count."""
    notes: list[str] = []
    for mode, n in sorted(Counter(s.mode for s in kept).items()):
        if mode in {"L", "RGB"}:
            continue
        kind, how = _CONVERSIONS.get(mode, ("in another colour model", "converted to RGB"))
        were = "were" if n != 1 else "was"
        notes.append(f"{n} image{'s' if n != 1 else ''} {were} {kind} ({mode}) and {were} {how}")
    return notes


def size_stats(scanned: Sequence[ScannedImage]) -> dict[str, Any]:
    """Min/max/median width and height and the most common sizes (empty for no images)."""
    if not scanned:
        return {}
    ws = [s.width for s in scanned]
    hs = [s.height for s in scanned]
    by_size = Counter(f"{s.width}x{s.height}" for s in scanned)
    return {
        "width": {"min": min(ws), "max": max(ws), "median": statistics.median(ws)},
        "height": {"min": min(hs), "max": max(hs), "median": statistics.median(hs)},
        # The 20 most common sizes are enough to see whether resizing will distort anything.
        "by_size": dict(by_size.most_common(20)),
        "distinct_sizes": len(by_size),
    }
