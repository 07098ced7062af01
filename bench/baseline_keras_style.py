"""Baseline: the classic Keras tutorial CNN translated to PyTorch, on the same split and CPU.

Conv(32)-Pool, Conv(64)-Pool, Conv(128)-Pool (3x3 valid convs, ReLU), Flatten, Dense 1024 ReLU,
Dense K softmax; 224x224 RGB inputs scaled to [0, 1]; Adam 1e-3; batch 32; 10 epochs; all images
decoded and resized once beforehand (the same loader as DefectLens, so only the recipe differs).
Usage: python bench/baseline_keras_style.py [--dataset neu_surface] [--epochs 10]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from typing import Any

import torch
from common import emit, snapshot
from torch import nn

from core.training import metrics as ev
from core.training.data import load_split_tensors


class KerasStyleCNN(nn.Module):
    """Three conv/pool blocks and a 1024-unit dense layer, as in the usual Keras tutorial."""

    def __init__(self, num_classes: int, size: int = 224) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        side = (((size - 2) // 2 - 2) // 2 - 2) // 2
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(128 * side * side, 1024),
            nn.ReLU(),
            nn.Linear(1024, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def main() -> None:
    """Train the baseline and print one JSON object."""
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="neu_surface")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    snap = snapshot(args.dataset)
    t0 = time.perf_counter()
    data = load_split_tensors(snap, args.size, 3, ("train", "val"))
    load_s = time.perf_counter() - t0
    xtr, ytr = data["train"].x, data["train"].y
    xva, yva = data["val"].x, data["val"].y
    model = KerasStyleCNN(len(snap.class_names), args.size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    history: list[dict[str, Any]] = []
    accs: list[float] = []
    t_train = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        te = time.perf_counter()
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        total = 0.0
        for i in range(0, len(perm), 32):  # Keras keeps the ragged last batch
            idx = perm[i : i + 32]
            loss = loss_fn(model(xtr[idx].float() / 255.0), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            pred = torch.cat(
                [model(xva[i : i + 64].float() / 255.0).argmax(1) for i in range(0, len(yva), 64)]
            )
        acc = ev.accuracy(yva.numpy(), pred.numpy())
        accs.append(acc)
        history.append(
            {
                "epoch": epoch,
                "train_loss": round(total / len(ytr), 4),
                "val_accuracy": acc,
                "epoch_seconds": round(time.perf_counter() - te, 1),
                "elapsed_seconds": round(time.perf_counter() - t_train, 1),
                "loadavg": [round(x, 2) for x in os.getloadavg()],
            }
        )
        logging.info("%s", history[-1])
    final = ev.evaluate(yva.numpy(), pred.numpy(), snap.class_names)
    emit(
        {
            "bench": "baseline_keras_style",
            "dataset": args.dataset,
            "epochs": args.epochs,
            "img_size": args.size,
            "params": sum(p.numel() for p in model.parameters()),
            "load_seconds": round(load_s, 1),
            "train_seconds": round(time.perf_counter() - t_train, 1),
            "final_val_accuracy": final.accuracy,
            "final_macro_f1": final.macro_f1,
            "best_val_accuracy": max(accs),
            "confusion_matrix": final.confusion_matrix,
            "history": history,
        }
    )


if __name__ == "__main__":
    main()
