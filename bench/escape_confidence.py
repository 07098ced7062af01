"""Where a two-class model's escapes sit in its calibrated confidence (issue 9: casting5).

Classifies the test split of a bench/production.py dataset with the model a `--home` run kept,
and counts, for thresholds t, the defects called good (P(good) >= t: escapes) and the good parts
called defective (P(good) < t: false alarms). Then replays the acceptance threshold training
fits (core.vision.acceptance.fit_threshold) on the run's own validation split, for the default
false reject share and two others, and counts what each does on the test split: how a model
trained before the threshold existed would decide with it. Prints one JSON object.

Usage: python bench/escape_confidence.py --home /tmp/c5 --data bench/out/production/data/casting5
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

import numpy as np
from common import emit, machine

from core.auth import permissions
from core.cli.common import open_database
from core.datasets import service
from core.vision import acceptance
from core.vision.acceptance import looks_good
from core.vision.classifier import Classifier, Prediction
from db.engine import Database
from db.queries import catalog as catalog_queries

THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--home", type=Path, required=True, help="the DEFECTLENS_HOME of the run")
    p.add_argument("--data", type=Path, required=True, help="the scenario's dataset folder")
    args = p.parse_args()
    os.environ["DEFECTLENS_HOME"] = str(args.home)
    _settings, db = open_database()
    with db.read() as session:
        model = max(catalog_queries.list_models(session), key=lambda m: m.id)  # the run's model
    clf = Classifier.from_artifact(Path(model.artifact_path))
    with open(args.data / "split.csv", newline="") as f:
        names = [row[0] for row in csv.reader(f) if len(row) == 2 and row[1] == "test"]
    preds = clf.predict_bytes([(args.data / n).read_bytes() for n in names], names)
    rows = [(n.split("/")[0], p) for n, p in zip(names, preds, strict=True)
            if isinstance(p, Prediction)]  # fmt: skip
    good_class = next(c for c in rows[0][1].probabilities if looks_good(c))
    p_good = np.array([p.probabilities[good_class] for _, p in rows])
    defect = np.array([not looks_good(cls) for cls, _ in rows])
    replay = _replay(db, model.dataset_id, clf, p_good, defect)
    emit({
        "bench": "escape_confidence", "machine": machine(), "good_class": good_class,
        "defects": int(defect.sum()), "good_parts": int((~defect).sum()),
        "by_threshold": [{"threshold": t, "escapes": int((defect & (p_good >= t)).sum()),
                          "false_alarms": int((~defect & (p_good < t)).sum())}
                         for t in THRESHOLDS],
        "escapes_p_good": sorted(round(float(v), 3) for v in p_good[defect & (p_good >= 0.5)]),
        "lowest_good_p_good": sorted(round(float(v), 3) for v in p_good[~defect])[:10],
        "stored_acceptance": clf.metadata.acceptance, "replayed_on_val": replay,
    })  # fmt: skip


def _replay(
    db: Database, dataset_id: int, clf: Classifier, p_good: np.ndarray, defect: np.ndarray
) -> list[dict[str, object]]:
    """The threshold fitted on the run's validation split per false reject share, on test."""
    _record, snap = service.load_dataset(db, permissions.SYSTEM, dataset_id)
    val = snap.split_entries("val")
    preds = clf.predict_bytes([(snap.path / e.file).read_bytes() for e in val])
    kept = [(e, p) for e, p in zip(val, preds, strict=True) if isinstance(p, Prediction)]
    probs = np.array([[p.probabilities[c] for c in clf.class_names] for _, p in kept])
    labels = np.array([clf.class_names.index(e.cls) for e, _ in kept])
    out: list[dict[str, object]] = []
    for share in (acceptance.DEFAULT_FALSE_REJECT, 0.01, 0.02):
        t, report = acceptance.fit_threshold(probs, labels, clf.class_names, false_reject=share)
        row: dict[str, object] = {"false_reject": share, "threshold": t, "val": report}
        if t is not None:
            row["test_escapes"] = int((defect & (p_good >= t)).sum())
            row["test_false_alarms"] = int((~defect & (p_good < t)).sum())
        out.append(row)
    return out


if __name__ == "__main__":
    main()
