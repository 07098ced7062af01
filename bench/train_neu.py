"""Train the default model on NEU (stratified 20 % val, seed 0) and report time and accuracy.

Usage: python bench/train_neu.py [--device cpu|cuda|auto] [--epochs N] [--img-size S] ...
Prints one JSON object. Imports only core.training.loop / core.datasets.importer (no db, no captum).
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from dataclasses import fields
from pathlib import Path

from common import class_counts, emit, snapshot

from core.training.config import EpochReport, TrainConfig
from core.training.loop import fit


def main() -> None:
    """Parse TrainConfig overrides, train, print JSON."""
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="neu_surface")
    p.add_argument(
        "--folder", action="store_true", help="read the folder in place (no core.datasets.importer)"
    )
    p.add_argument("--target", type=float, default=0.99)
    p.add_argument("--save", type=Path, help="save the model artifact into this folder")
    for f in fields(TrainConfig):
        if f.name in ("weights_path",):
            continue
        kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" ")[0])
        if "bool" in str(f.type):
            p.add_argument(
                f"--{f.name.replace('_', '-')}", type=lambda s: s.lower() in ("1", "true", "yes")
            )
        elif kind is not None or "int" in str(f.type):
            p.add_argument(f"--{f.name.replace('_', '-')}", type=kind or int)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    overrides = {
        f.name: getattr(args, f.name)
        for f in fields(TrainConfig)
        if getattr(args, f.name, None) is not None  # noqa: SIM910
    }
    cfg = TrainConfig(**overrides)
    t0 = time.perf_counter()
    snap = snapshot(args.dataset, use_core=not args.folder)
    import_s = time.perf_counter() - t0
    reached: dict[str, float] = {}
    t_fit = time.perf_counter()

    def progress(r: EpochReport) -> None:
        if r.val_accuracy is not None and r.val_accuracy >= args.target and not reached:
            reached["epoch"] = r.epoch
            reached["wall_s"] = time.perf_counter() - t_fit

    res = fit(cfg, snap, on_progress=progress)
    total = time.perf_counter() - t_fit
    # CPU seconds of this process: on a shared box, wall time mostly measures the neighbours.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = usage.ru_utime + usage.ru_stime
    saved = None
    if args.save:
        from core.vision.artifacts import metadata_from_result, save_model

        meta = metadata_from_result(
            res, dataset_id=getattr(snap, "name", None), dataset_hash=snap.content_hash
        )
        saved = str(save_model(res, meta, args.save).path_meta)
    emit(
        {
            "bench": "train_neu",
            "saved": saved,
            "config": cfg.to_dict(),
            "counts": class_counts(list(snap.entries)),
            "import_seconds": round(import_s, 2),
            "load_seconds": round(res.load_seconds, 2),
            "train_seconds": round(res.train_seconds, 2),
            "fit_wall_seconds": round(total, 2),
            "process_cpu_seconds": round(cpu_s, 1),
            "device": res.device,
            "best_epoch": res.best_epoch,
            "val_accuracy": res.metrics.accuracy if res.metrics else None,
            "macro_f1": res.metrics.macro_f1 if res.metrics else None,
            "confusion_matrix": res.metrics.confusion_matrix if res.metrics else None,
            f"first_epoch_at_{args.target}": reached.get("epoch"),
            f"wall_s_to_{args.target}_incl_load": round(reached["wall_s"], 2) if reached else None,
            "images_per_second": round(res.images_per_second, 1),
            "history": [
                [h.epoch, round(h.train_loss, 4), h.val_accuracy, round(h.seconds, 2)]
                for h in res.history
            ],
        }
    )


if __name__ == "__main__":
    main()
