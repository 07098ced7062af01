"""Inference throughput on NEU, decoding included: torch vs ONNX Runtime backends.

Usage: python bench/inference_speed.py --model bench/out/models/neu [--split val|all] [--repeat 3]
Reads every image's bytes into memory first (disk is not what is measured), then times
Classifier.predict_bytes (decode + resize + batch inference) over them.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path

import numpy as np
from common import emit, snapshot

from core.training import metrics as ev
from core.vision.classifier import Classifier, Prediction


def main() -> None:
    """Time both backends and print one JSON object."""
    p = argparse.ArgumentParser()
    p.add_argument("--model", type=Path, default=Path("bench/out/models/neu"))
    p.add_argument("--split", default="all", help="val, train or all")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    snap = snapshot("neu_surface")
    entries = [e for e in snap.entries if args.split == "all" or e.split == args.split]
    datas = [(Path(snap.path) / e.file).read_bytes() for e in entries]
    names = [e.file for e in entries]
    out: dict[str, object] = {"bench": "inference_speed", "images": len(datas)}
    for backend in ("torch", "onnx"):
        t0 = time.perf_counter()
        clf = Classifier.from_artifact(args.model, backend=backend)
        load_s = time.perf_counter() - t0
        clf.predict_bytes(datas[:64], names[:64])  # warm-up (thread pools, kernels)
        rates, loads = [], []
        preds: list[object] = []
        for _ in range(args.repeat):
            loads.append(os.getloadavg()[0])
            t = time.perf_counter()
            preds = list(clf.predict_bytes(datas, names, batch_size=args.batch_size))
            rates.append(len(datas) / (time.perf_counter() - t))
        y_pred = [p.class_index for p in preds if isinstance(p, Prediction)]
        y_true = [clf.class_names.index(e.cls) for e in entries]
        res = ev.evaluate(np.array(y_true), np.array(y_pred), clf.class_names)
        out[backend] = {
            "load_seconds": round(load_s, 2),
            "images_per_second_median": round(statistics.median(rates), 1),
            "images_per_second_all": [round(r, 1) for r in rates],
            "loadavg_1min_at_start": [round(x, 2) for x in loads],
            "accuracy": res.accuracy,
        }
    emit(out)


if __name__ == "__main__":
    main()
