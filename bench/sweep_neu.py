"""Recipe sweep on NEU: many TrainConfig / DefectNet variants x seeds, one JSON line per run.

Accuracy of a recipe does not depend on the device, so the sweep can run where it is fast (the
GPU box) and the chosen recipe is then timed on the 2-core CPU with bench/train_neu.py.
Usage: python bench/sweep_neu.py --device cuda --seeds 0 1 [--only name ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from common import emit, snapshot

from core.training.config import TrainConfig
from core.training.loop import fit
from core.vision import architectures as A

OLD = {"widths": (32, 64, 128, 256), "strides": (2, 2, 2), "blocks": (1, 1, 1)}
# (name, DefectNet kwargs or None for the registry's own entry, TrainConfig overrides)
VARIANTS: list[tuple[str, dict[str, Any] | None, dict[str, Any]]] = [
    ("default", None, {}),
    ("photo_weak", None, {"brightness": 0.05, "contrast": 0.05}),
    ("photo_off", None, {"brightness": 0.0, "contrast": 0.0}),
    ("lr8e-3", None, {"lr": 8e-3}),
    ("ep20", None, {"epochs": 20}),
    ("old3stage", OLD, {}),
    ("img128", None, {"img_size": 128}),
    ("translate0", None, {"translate": 0.0}),
    ("rot90", None, {"rot90": True}),
    ("lr2e-3", None, {"lr": 2e-3}),
    ("ep40", None, {"epochs": 40}),
    ("img64", None, {"img_size": 64}),
    ("wd5e-2", None, {"weight_decay": 5e-2}),
    ("bs32", None, {"batch_size": 32}),
]


def register(name: str, kwargs: dict[str, Any]) -> str:
    """Add a DefectNet variant to the registry for this process only."""
    key = f"sweep_{name}"

    def build(num_classes: int, in_channels: int) -> A.DefectNet:
        return A.DefectNet(num_classes, in_channels, **kwargs)

    base = A.ARCHITECTURES["defectnet"]
    A.ARCHITECTURES[key] = replace(base, name=key, build=build)
    return key


def main() -> None:
    """Run the selected variants and print one summary JSON object."""
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="auto")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--only", nargs="*")
    p.add_argument("--epochs", type=int, default=None, help="default: TrainConfig's")
    p.add_argument("--out", type=Path)
    p.add_argument("--budget-s", type=float, default=1e9, help="stop starting runs after this")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    snap = snapshot("neu_surface")
    t_start = time.perf_counter()
    rows = []
    for name, arch_kwargs, over in VARIANTS:
        if args.only and name not in args.only:
            continue
        for seed in args.seeds:
            if time.perf_counter() - t_start > args.budget_s:
                break
            arch = over.get("arch", "defectnet")
            if arch_kwargs is not None:
                arch = register(name, arch_kwargs)
            cfg = TrainConfig(**{**over, "arch": arch, "seed": seed, "device": args.device})
            if args.epochs is not None and "epochs" not in over:
                cfg.epochs = args.epochs
            reach: dict[str, float] = {}
            t0 = time.perf_counter()

            def hit(r: Any, reach: dict[str, float] = reach, t0: float = t0) -> None:
                if r.val_accuracy is not None and r.val_accuracy >= 0.99 and "s" not in reach:
                    reach.update(s=time.perf_counter() - t0, epoch=r.epoch)

            try:
                res = fit(cfg, snap, on_progress=partial(hit))
            except Exception as e:  # a broken variant must not sink the sweep
                row: dict[str, Any] = {"name": name, "seed": seed, "error": repr(e)}
            else:
                accs = [h.val_accuracy for h in res.history]
                row = {
                    "name": name,
                    "seed": seed,
                    "best_acc": res.metrics.accuracy if res.metrics else None,
                    "final_acc": accs[-1],
                    "best_epoch": res.best_epoch,
                    "epochs": cfg.epochs,
                    "first_99_epoch": reach.get("epoch"),
                    "s_to_99": round(reach["s"], 2) if reach else None,
                    "train_s": round(res.train_seconds, 2),
                    "load_s": round(res.load_seconds, 2),
                    "img_s": round(res.images_per_second),
                    "accs": [round(a or 0, 4) for a in accs],
                }
            rows.append(row)
            line = json.dumps(row)
            print(line, flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(line + "\n")
    emit({"bench": "sweep_neu", "rows": rows})


if __name__ == "__main__":
    main()
