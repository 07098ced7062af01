"""Class balancing on an imbalanced NEU subset: macro-F1 and per-class recall for each mode.

One class (--major) keeps --major-train training images, the other five --minor-train each
(seeded choice); every other image validates. The same run trains balance=none, sampler and
weights (same seed, same data) and prints one JSON object. It chose core.training.balance's
AUTO_MODE.

Usage: python bench/imbalance.py [--img-size 48] [--epochs 30] [--modes none,sampler,weights]
"""

from __future__ import annotations

import argparse
import logging
import random
import time
from pathlib import Path

from common import Entry, FolderSnapshot, dataset_dir, emit

from core.training.config import TrainConfig
from core.training.loop import fit

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def imbalanced_snapshot(
    root: Path, major: str, major_train: int, minor_train: int, seed: int
) -> FolderSnapshot:
    """Train: major_train images of major, minor_train of each other class; the rest: val."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if major not in classes:
        raise SystemExit(f"--major {major!r} is not one of {classes}")
    rng = random.Random(seed)
    entries: list[Entry] = []
    for cls in classes:
        files = sorted(f"{cls}/{p.name}" for p in (root / cls).iterdir() if p.suffix in SUFFIXES)
        rng.shuffle(files)
        k = major_train if cls == major else minor_train
        entries += [Entry(f, cls, "train") for f in files[:k]]
        entries += [Entry(f, cls, "val") for f in files[k:]]
    return FolderSnapshot(root, classes, entries, True, root.name, "")


def main() -> None:
    """Train each mode on the same subset and print one JSON object."""
    p = argparse.ArgumentParser()
    p.add_argument("--major", default="patches")
    p.add_argument("--major-train", type=int, default=240)  # NEU has 300 per class
    p.add_argument("--minor-train", type=int, default=20)
    p.add_argument("--img-size", type=int, default=48)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modes", default="none,sampler,weights")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    snap = imbalanced_snapshot(
        dataset_dir("neu_surface"), args.major, args.major_train, args.minor_train, args.seed
    )
    runs = {}
    for mode in args.modes.split(","):
        cfg = TrainConfig(
            epochs=args.epochs,
            img_size=args.img_size,
            batch_size=args.batch_size,
            seed=args.seed,
            device="cpu",
            balance=mode,
        )
        t0 = time.perf_counter()
        res = fit(cfg, snap)
        assert res.metrics is not None
        runs[mode] = {
            "macro_f1": round(res.metrics.macro_f1, 4),
            "accuracy": round(res.metrics.accuracy, 4),
            "recall": {c: round(m.recall, 3) for c, m in res.metrics.per_class.items()},
            "min_recall": round(min(m.recall for m in res.metrics.per_class.values()), 3),
            "last_epoch_macro_f1": round(res.history[-1].macro_f1 or 0.0, 4),
            "best_epoch": res.best_epoch,
            "balance": res.balance,
            "seconds": round(time.perf_counter() - t0, 1),
        }
    counts: dict[str, dict[str, int]] = {}
    for e in snap.entries:
        counts.setdefault(e.split, {}).setdefault(e.cls, 0)
        counts[e.split][e.cls] += 1
    emit({"benchmark": "imbalance", "args": vars(args), "counts": counts, "runs": runs})


if __name__ == "__main__":
    main()
