"""Can the demo model learn the procedural parts (core.demo.images), and does drift show?

Writes a dataset with core.demo.images.write_dataset, then in a fresh DEFECTLENS_HOME runs the
product's own commands:

    defectlens dataset import DIR --name demo --json
    defectlens train --dataset ID --json [--img-size PX] [--epochs N] [--budget-minutes M]

and classifies fresh parts (seeds the dataset does not use) made under nominal and drifted
conditions (DRIFTS): per class the accuracy, the mean confidence (calibrated max-softmax), the
share under the default flagging threshold (unsure) and the share called a defect. Also reports
how well one global image statistic (mean, std, 1st/99th percentile, gradient energy) tells ok
from each defect class: the best balanced accuracy of a single threshold (0.5 is chance), so a
demo where a plain brightness cut finds the defects would show.

Prints one JSON object and writes bench/out/demo_model.json. Training time depends on what else
runs on the machine: compare images_per_second with an idle run.

Usage: python bench/demo_model.py [--per-class 500] [--size 96] [--img-size 64] [--epochs N]
                                  [--budget-minutes 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from common import OUT_DIR, emit, machine

from core.demo.images import CLASSES, Conditions, image_rng, part_image, write_dataset

CLI = str(Path(sys.executable).with_name("defectlens"))
# The conditions classified: darker, defocused and noisier (the example), and a tool
# wearing (deeper machining marks) with the light dimming.
DRIFTS = {
    "nominal": Conditions(),
    "dark_blurred_noisy": Conditions(brightness=0.8, blur=1.2, noise=1.6),
    "tool_wearing": Conditions(wear=0.25),
    "worn_tool": Conditions(brightness=0.85, noise=1.4, wear=0.5),
}
UNSURE_BELOW = 0.9  # core.quality.flag_rules.DEFAULT_MIN_CONFIDENCE
FRESH_SEED = 10_000  # parts classified after training: never in the dataset


def _cli(home: Path, *args: str) -> dict[str, Any]:
    env = dict(os.environ, DEFECTLENS_HOME=str(home))
    env.pop("DEFECTLENS_DB_URL", None)
    proc = subprocess.run([CLI, *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"defectlens {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)


def _statistics(img: np.ndarray) -> dict[str, float]:
    f = img.astype(np.float32)
    gy, gx = np.gradient(f)
    return {
        "mean": float(f.mean()),
        "std": float(f.std()),
        "p1": float(np.percentile(f, 1)),
        "p99": float(np.percentile(f, 99)),
        "gradient": float(np.mean(gx * gx + gy * gy)),
    }


def _best_threshold(ok: np.ndarray, bad: np.ndarray) -> float:
    """Best balanced accuracy of one threshold (either direction) between two samples."""
    best = 0.5
    for t in np.unique(np.concatenate([ok, bad])):
        tpr, tnr = float(np.mean(bad >= t)), float(np.mean(ok < t))
        best = max(best, (tpr + tnr) / 2, (2 - tpr - tnr) / 2)
    return round(best, 3)


def single_statistic_separability(per_class: int, size: int) -> dict[str, dict[str, float]]:
    """Per defect class, per statistic: how well one threshold tells it from ok."""
    stats = {
        cls: [
            _statistics(part_image(cls, image_rng(FRESH_SEED, cls, i), size))
            for i in range(per_class)
        ]
        for cls in CLASSES
    }
    names = list(stats["ok"][0])
    ok = {n: np.array([s[n] for s in stats["ok"]]) for n in names}
    return {
        cls: {n: _best_threshold(ok[n], np.array([s[n] for s in stats[cls]])) for n in names}
        for cls in CLASSES[1:]
    }


def drift_effect(home: Path, model_id: int, per_class: int, size: int) -> dict[str, Any]:
    """Accuracy and confidence on fresh parts, nominal against drifted, per class."""
    # Deferred: torch loads only once the model exists.
    from core.auth import permissions
    from core.config import load_settings
    from core.registry import catalog
    from core.setup import open_database
    from core.vision.classifier import Classifier

    db = open_database(load_settings({"DEFECTLENS_HOME": str(home)}))
    record = catalog.get_model(db, permissions.SYSTEM, model_id)
    clf = Classifier.from_artifact(Path(record.artifact_path))
    out: dict[str, Any] = {"unsure_below": UNSURE_BELOW}
    for label, cond in DRIFTS.items():
        per: dict[str, Any] = {"conditions": asdict(cond)}
        for cls in CLASSES:
            imgs = [
                part_image(cls, image_rng(FRESH_SEED, cls, i), size, cond) for i in range(per_class)
            ]
            preds = clf.predict_arrays(imgs)
            conf = np.array([p.confidence for p in preds])
            per[cls] = {
                "accuracy": round(float(np.mean([p.class_name == cls for p in preds])), 4),
                "mean_confidence": round(float(conf.mean()), 4),
                "unsure_share": round(float(np.mean(conf < UNSURE_BELOW)), 4),
                "called_defect": round(float(np.mean([p.class_name != "ok" for p in preds])), 4),
            }
        per["all"] = {
            k: round(float(np.mean([per[c][k] for c in CLASSES])), 4)
            for k in ("accuracy", "mean_confidence", "unsure_share")
        }
        out[label] = per
    db.dispose()
    return out


def main() -> None:
    """Generate, import, train through the CLI, measure drift; print and save JSON."""
    p = argparse.ArgumentParser()
    p.add_argument("--per-class", type=int, default=500)
    p.add_argument("--size", type=int, default=96, help="generated image side")
    p.add_argument("--img-size", type=int, default=64, help="train --img-size (0: train chooses)")
    p.add_argument("--epochs", type=int, help="train --epochs (default: chosen by train)")
    p.add_argument("--budget-minutes", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-per-class", type=int, default=200)
    p.add_argument("--work", type=Path, help="folder for the dataset and home (default: temp)")
    p.add_argument("--out", type=Path, default=OUT_DIR / "demo_model.json")
    args = p.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="demo_model_"))
    data, home = work / "data", work / "home"

    t0 = time.perf_counter()
    write_dataset(data, args.per_class, seed=args.seed, size=args.size)
    gen_s = time.perf_counter() - t0
    imported = _cli(home, "dataset", "import", str(data), "--name", "demo", "--json")
    import_s = time.perf_counter() - t0 - gen_s
    train_args = ["train", "--dataset", str(imported["id"]), "--json"]
    for flag, value in (
        ("--img-size", args.img_size or None),
        ("--epochs", args.epochs),
        ("--budget-minutes", args.budget_minutes),
    ):
        if value is not None:
            train_args += [flag, str(value)]
    t1 = time.perf_counter()
    trained = _cli(home, *train_args)
    train_wall = time.perf_counter() - t1
    result = {
        "bench": "demo_model",
        "command": "defectlens " + " ".join(train_args),
        "images_generated": args.per_class * len(CLASSES),
        "image_size": args.size,
        "generation_seconds": round(gen_s, 2),
        "import_seconds": round(import_s, 2),
        "health_warnings": imported.get("health", {}).get("warnings"),
        "val_accuracy": trained["val_accuracy"],
        "macro_f1": trained["macro_f1"],
        "per_class_recall": {c: v.get("recall") for c, v in (trained["per_class"] or {}).items()},
        "confusion_matrix": trained["confusion_matrix"],
        "class_names": trained["class_names"],
        "train_seconds": round(trained["train_seconds"], 1),
        "images_per_second": round(trained["images_per_second"], 1),
        "train_command_wall_seconds": round(train_wall, 1),
        "epochs": trained["epochs"],
        "best_epoch": trained["best_epoch"],
        "img_size": trained["img_size"],
        "budget_stopped": trained["budget_stopped"],
        "choices": trained["choices"],
        "temperature": trained["temperature"],
        "ece": trained["ece"],
        "drift": drift_effect(home, trained["model_id"], args.eval_per_class, args.size),
        "single_statistic_balanced_accuracy": single_statistic_separability(
            args.eval_per_class, args.size
        ),
        "machine": machine(),
    }
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    emit(result)


if __name__ == "__main__":
    main()
