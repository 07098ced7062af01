"""Train / val / test splits: the stratified split by seed, and split files (CSV: file,split).

A split file names each image by its path inside the source (class folder first). It is read
and written with the csv module, so a class folder called ``scratch, deep`` (or one with quotes
or a line break in its name) stays one field.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path, PurePosixPath

from core.datasets.snapshot import ManifestEntry
from core.errors import DatasetError, ValidationError

SPLITS = ("train", "val", "test")
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
# When one image belongs to several splits (the casting set has 64 in both train and test), it
# goes to the evaluation side: a held-out image must never also be trained on.
_SPLIT_PRIORITY = {"test": 0, "val": 1, "train": 2}


def _split_rank(seed: int, sha: str) -> str:
    # Hash-based order: deterministic for a seed, and adding images does not reshuffle the rest.
    return hashlib.sha256(f"{seed}:{sha}".encode()).hexdigest()


# A class's validation images, at least: with 3, its recall reads in thirds instead of all or
# nothing, so one lucky or unlucky image cannot decide the best epoch for a rare class.
MIN_VAL_PER_CLASS = 3


def _val_target(n: int, val_fraction: float) -> int:
    """Validation images for a class of n: the fraction, raised to min(3, n // 2), at most n - 1.

    The floor never takes more than half a tiny class (2 -> 1, 4 -> 2, 6 -> 3), and at least one
    image always stays in training.
    """
    if val_fraction <= 0 or n < 2:
        return 0
    return min(max(round(n * val_fraction), min(MIN_VAL_PER_CLASS, n // 2)), n - 1)


def stratified_split(
    entries: Sequence[ManifestEntry], val_fraction: float, seed: int
) -> list[ManifestEntry]:
    """Assign train/val per class (deterministic by seed); identical images stay on one side."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValidationError(f"val_fraction={val_fraction} must be at least 0 and below 1")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(entries):
        groups[e.sha256].append(i)
    by_class: dict[str, list[str]] = defaultdict(list)
    for sha, idx in groups.items():
        by_class[entries[idx[0]].cls].append(sha)
    split_of: dict[str, str] = {}
    for shas in by_class.values():
        target = _val_target(sum(len(groups[s]) for s in shas), val_fraction)
        taken = 0
        for sha in sorted(shas, key=lambda s: _split_rank(seed, s)):
            size = len(groups[sha])
            if taken + size <= target:
                split_of[sha] = "val"
                taken += size
            else:
                split_of[sha] = "train"
    return [replace(e, split=split_of[e.sha256]) for e in entries]


# A split file without a validation part (the casting set's published split is train/test) gets
# one carved out of its training part: training needs it to pick the best epoch and to fit the
# temperature that makes confidences honest. A tenth keeps most images for training.
CARVED_VAL_FRACTION = 0.1


def carve_validation(
    entries: Sequence[ManifestEntry], seed: int, val_fraction: float = CARVED_VAL_FRACTION
) -> tuple[list[ManifestEntry], int]:
    """Entries with a stratified val part taken from train when none has one: (entries, carved).

    Test images are never touched; when some entry is already ``val`` nothing changes.
    """
    if any(e.split == "val" for e in entries):
        return list(entries), 0
    train = [e for e in entries if e.split == "train"]
    split_train = iter(stratified_split(train, val_fraction, seed))
    out = [next(split_train) if e.split == "train" else e for e in entries]
    return out, sum(1 for e in out if e.split == "val")


def write_split_file(path: Path, rows: Iterable[tuple[str, str]]) -> None:
    """Write (file, split) rows as a split file that read_split_file reads back unchanged."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("file", "split"))
        writer.writerows(rows)


def read_split_file(path: Path) -> dict[str, str]:
    """Read a file,split CSV (the split column may be called split or original_split)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return _parse_split_rows(path, csv.DictReader(f))
    except OSError as e:
        raise DatasetError(f"{path}: cannot read split file ({e.strerror or e})") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not a readable CSV ({e})") from None


def _parse_split_rows(path: Path, reader: csv.DictReader[str]) -> dict[str, str]:
    fields = [c.strip() for c in reader.fieldnames or []]
    col = next((c for c in ("split", "original_split") if c in fields), None)
    if "file" not in fields or col is None:
        raise DatasetError(
            f"{path}: needs columns 'file' and 'split' (or 'original_split'); "
            f"found {', '.join(fields) or 'none'}"
        )
    out: dict[str, str] = {}
    for lineno, raw in enumerate(reader, start=2):
        if None in raw:
            # More fields than the header: an unquoted comma in a file name, most likely.
            raise DatasetError(
                f"{path}, line {lineno}: more fields than the header's {len(fields)} "
                "(quote file names that contain commas)"
            )
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        values = [v.strip().lower() for v in re.split(r"[;|]", row[col]) if v.strip()]
        splits = [_SPLIT_ALIASES.get(v) for v in values]
        if not splits or None in splits:
            raise DatasetError(
                f"{path}, line {lineno}: split {row[col]!r} is not train, val or test"
            )
        out[_norm_rel(row["file"])] = min(
            (s for s in splits if s), key=lambda s: _SPLIT_PRIORITY[s]
        )
    return out


def _norm_rel(p: str) -> str:
    rel = PurePosixPath(p.replace("\\", "/")).as_posix()
    return rel[2:] if rel.startswith("./") else rel


def apply_split_file(
    entries: list[ManifestEntry], sources: Iterable[tuple[str, str]], splits: dict[str, str]
) -> tuple[list[ManifestEntry], int]:
    """Splits from the file, by each (source path, sha256) found; (entries, how many unlisted).

    An image listed under several names takes the evaluation side; unlisted images go to train.
    """
    per_sha: dict[str, str] = {}
    for rel, sha in sources:
        sp = splits.get(rel)
        if sp is not None and (
            sha not in per_sha or _SPLIT_PRIORITY[sp] < _SPLIT_PRIORITY[per_sha[sha]]
        ):
            per_sha[sha] = sp
    missing = sum(1 for e in entries if e.sha256 not in per_sha)
    return [replace(e, split=per_sha.get(e.sha256, "train")) for e in entries], missing
