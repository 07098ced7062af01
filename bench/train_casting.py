"""Casting impellers: train on the published train split, evaluate on the published test split.

Usage: python bench/train_casting.py [--epochs N] [--img-size S] [--device cpu|cuda]
The snapshot is imported with splits.csv (train / test only, no val), so fit keeps its last
epoch and the test split is touched once, at the end.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch
from common import dataset_dir, emit, snapshot

from core.training import metrics as ev
from core.training.config import TrainConfig
from core.training.data import load_split_tensors
from core.training.loop import fit
from core.training.predict import predict_tensor


def main() -> None:
    """Train, evaluate on test, print one JSON object."""
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--img-size", type=int, default=128)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rot90", action="store_true", help="add 90-degree turns to augmentation")
    p.add_argument("--batch-size", type=int, default=None)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    t0 = time.perf_counter()
    snap = snapshot("casting", split_file=dataset_dir("casting") / "splits.csv")
    import_s = time.perf_counter() - t0
    cfg = TrainConfig(
        epochs=args.epochs,
        img_size=args.img_size,
        device=args.device,
        seed=args.seed,
        rot90=args.rot90,
    )
    if args.batch_size:
        cfg.batch_size = args.batch_size
    res = fit(cfg, snap)
    t1 = time.perf_counter()
    splits = load_split_tensors(snap, res.img_size, res.in_channels, ("test",), resize=res.resize)
    test = splits["test"]
    mean = torch.tensor(res.normalisation[0]).view(1, -1, 1, 1)
    std = torch.tensor(res.normalisation[1]).view(1, -1, 1, 1)
    probs = predict_tensor(res.model, test.x, mean, std)
    metrics = ev.evaluate(test.y.numpy(), probs.argmax(1).numpy(), res.class_names, probs.numpy())
    emit(
        {
            "bench": "train_casting",
            "config": cfg.to_dict(),
            "counts": {
                s: sum(e.split == s for e in snap.entries) for s in ("train", "val", "test")
            },
            "import_seconds": round(import_s, 1),
            "load_seconds": round(res.load_seconds, 1),
            "train_seconds": round(res.train_seconds, 1),
            "test_eval_seconds": round(time.perf_counter() - t1, 1),
            "device": res.device,
            "test_accuracy": metrics.accuracy,
            "test_def_front_recall": metrics.per_class["def_front"].recall,
            "test_macro_f1": metrics.macro_f1,
            "test_roc_auc": metrics.roc_auc,
            "confusion_matrix": metrics.confusion_matrix,
            "class_names": metrics.class_names,
            "history": [
                [h.epoch, round(h.train_loss, 4), round(h.seconds, 1)] for h in res.history
            ],
        }
    )


if __name__ == "__main__":
    main()
