"""Grad-CAM heatmap latency for one image (decode, forward, backward, overlay PNG).

Usage: python bench/heatmap_speed.py --model bench/out/models/neu [--n 30]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from pathlib import Path

from common import emit, snapshot

from core.vision.classifier import Classifier


def main() -> None:
    """Time explain() on n validation images and print one JSON object."""
    p = argparse.ArgumentParser()
    p.add_argument("--model", type=Path, default=Path("bench/out/models/neu"))
    p.add_argument("--n", type=int, default=30)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    snap = snapshot("neu_surface")
    entries = [e for e in snap.entries if e.split == "val"][: args.n]
    clf = Classifier.from_artifact(args.model)
    datas = [(Path(snap.path) / e.file).read_bytes() for e in entries]
    clf.explain(datas[0])  # warm-up: torch import, first backward
    ms = []
    for d in datas:
        t = time.perf_counter()
        ex = clf.explain(d)
        ms.append((time.perf_counter() - t) * 1000)
    ms.sort()
    emit(
        {
            "bench": "heatmap_speed",
            "n": len(ms),
            "image_size": list(ex.heatmap.shape),
            "ms_median": round(statistics.median(ms), 1),
            "ms_p90": round(ms[int(0.9 * (len(ms) - 1))], 1),
            "ms_max": round(ms[-1], 1),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
    )


if __name__ == "__main__":
    main()
