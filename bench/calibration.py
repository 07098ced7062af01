"""Temperature scaling on a trained model's validation split: ECE and NLL before and after.

Fits T on the whole split (what training does) and, as an out-of-sample check, on one half while
measuring on the other. Also reports the share of parts below the default 90 % "unsure"
threshold before and after, which is what floods or spares the review queue.

Usage: python bench/calibration.py --model bench/out/models/neu [--dataset neu_surface]
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from common import emit, snapshot

from core.training.data import load_split_tensors
from core.training.predict import predict_tensor
from core.vision import calibration as cal
from core.vision.artifacts import load_model
from core.vision.preprocess import normalisation_tensors

UNSURE_BELOW = 0.9


def main() -> None:
    """Calibrate one model on its dataset's validation split and print one JSON object."""
    p = argparse.ArgumentParser()
    p.add_argument("--model", type=Path, default=Path("bench/out/models/neu"))
    p.add_argument("--dataset", default="neu_surface")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load = [round(x, 2) for x in os.getloadavg()]
    snap = snapshot(args.dataset)
    loaded = load_model(args.model)
    m = loaded.metadata
    val = load_split_tensors(snap, m.img_size, m.in_channels, ("val",), resize=m.resize)["val"]
    mean, std = normalisation_tensors(m.normalisation["mean"], m.normalisation["std"])
    z = predict_tensor(loaded.model, val.x, mean, std, logits=True).numpy()
    y = val.y.numpy()
    t, report = cal.calibrate(z, y, "val")
    p0, p1 = cal.softmax(z), cal.softmax(z, t)
    halves = []
    for fit_on, test_on in ((0, 1), (1, 0)):
        t_half = cal.fit_temperature(z[fit_on::2], y[fit_on::2])
        halves.append(
            {
                "temperature": round(t_half, 4),
                "ece_before": round(
                    cal.expected_calibration_error(p0[test_on::2], y[test_on::2]), 4
                ),
                "ece_after": round(
                    cal.expected_calibration_error(
                        cal.softmax(z[test_on::2], t_half), y[test_on::2]
                    ),
                    4,
                ),
            }
        )
    emit(
        {
            "bench": "calibration",
            "dataset": args.dataset,
            "same_snapshot_as_training": snap.content_hash == m.dataset_hash,
            "images": int(len(y)),
            "accuracy": round(float((p0.argmax(1) == y).mean()), 4),
            "argmax_unchanged": bool((p0.argmax(1) == p1.argmax(1)).all()),
            "temperature": round(t, 4),
            "ece_before": round(report["ece_before"], 4),
            "ece_after": round(report["ece_after"], 4),
            "nll_before": round(report["nll_before"], 4),
            "nll_after": round(report["nll_after"], 4),
            "mean_confidence": [
                round(float(p0.max(1).mean()), 4),
                round(float(p1.max(1).mean()), 4),
            ],
            "share_unsure": [
                round(float((p0.max(1) < UNSURE_BELOW).mean()), 4),
                round(float((p1.max(1) < UNSURE_BELOW).mean()), 4),
            ],
            "half_split_check": halves,
            "loadavg_start": load,
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
    )


if __name__ == "__main__":
    main()
