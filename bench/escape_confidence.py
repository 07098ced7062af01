"""Where a two-class model's escapes sit in its calibrated confidence (issue 9: casting5).

Classifies the test split of a bench/production.py dataset with the model a `--home` run kept,
and counts, for thresholds t, the defects called good (P(good) >= t: escapes) and the good parts
called defective (P(good) < t: false alarms). Prints one JSON object.

Usage: python bench/escape_confidence.py --home /tmp/c5 --data bench/out/production/data/casting5
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from common import emit, machine

from core.quality.flag_rules import looks_good
from core.vision.classifier import Classifier, Prediction

THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--home", type=Path, required=True, help="the DEFECTLENS_HOME of the run")
    p.add_argument("--data", type=Path, required=True, help="the scenario's dataset folder")
    args = p.parse_args()
    clf = Classifier.from_artifact(sorted(args.home.glob("models/*/model.json"))[-1])
    with open(args.data / "split.csv", newline="") as f:
        names = [row[0] for row in csv.reader(f) if len(row) == 2 and row[1] == "test"]
    preds = clf.predict_bytes([(args.data / n).read_bytes() for n in names], names)
    rows = [(n.split("/")[0], p) for n, p in zip(names, preds, strict=True)
            if isinstance(p, Prediction)]  # fmt: skip
    good_class = next(c for c in rows[0][1].probabilities if looks_good(c))
    p_good = np.array([p.probabilities[good_class] for _, p in rows])
    defect = np.array([not looks_good(cls) for cls, _ in rows])
    emit({
        "bench": "escape_confidence", "machine": machine(), "good_class": good_class,
        "defects": int(defect.sum()), "good_parts": int((~defect).sum()),
        "by_threshold": [{"threshold": t, "escapes": int((defect & (p_good >= t)).sum()),
                          "false_alarms": int((~defect & (p_good < t)).sum())}
                         for t in THRESHOLDS],
        "escapes_p_good": sorted(round(float(v), 3) for v in p_good[defect & (p_good >= 0.5)]),
        "lowest_good_p_good": sorted(round(float(v), 3) for v in p_good[~defect])[:10],
    })  # fmt: skip


if __name__ == "__main__":
    main()
