"""Production-like datasets, trained and measured through the product's own commands.

Each scenario writes an ImageFolder dataset and a split file (file,split) built from
../shared/datasets, then runs, in a fresh DEFECTLENS_HOME:

    defectlens train --data DIR --split-file split.csv --json [recipe options]
    defectlens evaluate --model ID --dataset ID --split test --json

and prints one JSON object with the training choices and the test metrics. A split file
without a val part gets one carved from train by the importer, as any user's would.

Scenarios (the test split is never trained on or used for any choice):
  casting5, casting2  casting's published split, def_front cut to 5 % / 2 % of the train split
                      (seeded choice); published test split unchanged (453 def + 262 ok)
  casting             the published split as it is
  neu_300_20          NEU: one class (--major) keeps all 300 images, the other five 20 each
                      (seeded); test: the other 280 of each of the five
  neu_square          NEU, per class 240 train / 60 test (seeded)
  neu_canvas          the same split, every image pasted at a random place on a canvas of random
                      size (longer side 100-600 px) and aspect ratio (1:3 to 3:1), the image
                      scaled to the canvas's shorter side, the rest mid-grey noise

Recipes:
  default             no options: what `defectlens train --data DIR` does today
  issue               the recipe when issue 9 was filed: --balance none --resize stretch
                      --img-size 96 --epochs 30 --false-reject 0 (argmax decides; on the same
                      import, so it also gets the val part)

Macro-F1 is over the classes that have test images (neu_300_20's majority class has none; a
part wrongly called that class still counts against its true class).

Usage: python bench/production.py --scenario casting5 --recipe default [--extra "--rot90"]
                                   [--home DIR: keep the run's data directory, model included]
       python bench/production.py --table bench/out/production/results   (markdown table)
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import OUT_DIR, ROOT, dataset_dir, emit
from PIL import Image

SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
CLI = str(Path(sys.executable).with_name("defectlens"))
RECIPES = {
    "default": [],
    "issue": [
        "--balance",
        "none",
        "--resize",
        "stretch",
        "--img-size",
        "96",
        "--epochs",
        "30",
        "--false-reject",
        "0",
    ],
}


def _files(root: Path, cls: str) -> list[str]:
    return sorted(p.name for p in (root / cls).iterdir() if p.suffix.lower() in SUFFIXES)


def _link_dataset(src: Path, out: Path, rows: list[tuple[str, str]]) -> None:
    """out/<class>/<file> copied from src (the importer refuses symbolic links), and split.csv."""
    for rel, _split in rows:
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            shutil.copyfile(src / rel, dest)
    _write_split(out, rows)


def _write_split(out: Path, rows: list[tuple[str, str]]) -> None:
    with open(out / "split.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "split"])
        w.writerows(rows)


def casting_rows(defect_share: float | None, seed: int) -> tuple[Path, list[tuple[str, str]]]:
    """Published casting split; train def_front cut to ``defect_share`` of the train split."""
    src = dataset_dir("casting")
    published: dict[str, str] = {}
    with open(src / "splits.csv") as f:
        for row in csv.DictReader(f):
            published[row["file"]] = row["original_split"]
    rows: list[tuple[str, str]] = []
    train: dict[str, list[str]] = {}
    for cls in ("def_front", "ok_front"):
        for name in _files(src, cls):
            rel = f"{cls}/{name}"
            # "train;test": published in both (64 ok_front); test wins, as in the importer.
            if "test" in published.get(rel, "").split(";"):
                rows.append((rel, "test"))
            else:
                train.setdefault(cls, []).append(rel)
    if defect_share is not None:
        n_ok = len(train["ok_front"])
        keep = round(defect_share / (1 - defect_share) * n_ok)
        random.Random(seed).shuffle(train["def_front"])
        train["def_front"] = sorted(train["def_front"][:keep])
    for cls_files in train.values():
        rows += [(rel, "train") for rel in cls_files]
    return src, rows


def neu_300_20_rows(major: str, seed: int) -> tuple[Path, list[tuple[str, str]]]:
    src = dataset_dir("neu_surface")
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    for cls in sorted(p.name for p in src.iterdir() if p.is_dir()):
        files = [f"{cls}/{n}" for n in _files(src, cls)]
        rng.shuffle(files)
        k = len(files) if cls == major else 20
        rows += [(f, "train") for f in files[:k]] + [(f, "test") for f in files[k:]]
    return src, rows


def neu_split_rows(seed: int, test_per_class: int = 60) -> tuple[Path, list[tuple[str, str]]]:
    src = dataset_dir("neu_surface")
    rng = random.Random(seed)
    rows: list[tuple[str, str]] = []
    for cls in sorted(p.name for p in src.iterdir() if p.is_dir()):
        files = [f"{cls}/{n}" for n in _files(src, cls)]
        rng.shuffle(files)
        rows += [(f, "test") for f in files[:test_per_class]]
        rows += [(f, "train") for f in files[test_per_class:]]
    return src, rows


def paste_on_canvas(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The image scaled to a random canvas's shorter side, at a random place, on grey noise."""
    aspect = float(np.exp(rng.uniform(np.log(1 / 3), np.log(3))))
    longer = int(rng.uniform(100, 600))
    w, h = (
        (longer, max(1, round(longer / aspect)))
        if aspect >= 1
        else (max(1, round(longer * aspect)), longer)
    )
    side = min(w, h)
    gray = np.asarray(img.convert("L"), dtype=np.float32)
    canvas = rng.normal(gray.mean(), 6.0, (h, w))
    part = np.asarray(img.convert("L").resize((side, side), Image.Resampling.BILINEAR))
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    canvas[y0 : y0 + side, x0 : x0 + side] = part
    return Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))


def build(scenario: str, major: str, seed: int) -> Path:
    """The scenario's dataset folder (built once, then reused)."""
    name = f"{scenario}-{major}" if scenario == "neu_300_20" else scenario
    # Another seed is another dataset: its own folder (seed 0 keeps the original names).
    out = OUT_DIR / "production" / "data" / (name if seed == 0 else f"{name}-seed{seed}")
    if (out / "split.csv").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    if scenario in ("casting", "casting5", "casting2"):
        share = {"casting": None, "casting5": 0.05, "casting2": 0.02}[scenario]
        src, rows = casting_rows(share, seed)
        _link_dataset(src, out, rows)
    elif scenario == "neu_300_20":
        src, rows = neu_300_20_rows(major, seed)
        _link_dataset(src, out, rows)
    elif scenario == "neu_square":
        src, rows = neu_split_rows(seed)
        _link_dataset(src, out, rows)
    elif scenario == "neu_canvas":
        src, rows = neu_split_rows(seed)
        rng = np.random.default_rng(seed)
        png_rows = []
        for rel, split in rows:
            dest = (out / rel).with_suffix(".png")
            dest.parent.mkdir(parents=True, exist_ok=True)
            with Image.open(src / rel) as im:
                paste_on_canvas(im, rng).save(dest)
            png_rows.append((str(Path(rel).with_suffix(".png")), split))
        _write_split(out, png_rows)
    else:
        raise SystemExit(f"unknown scenario {scenario!r}")
    return out


def _cli(home: Path, *args: str) -> dict[str, Any]:
    env = dict(os.environ, DEFECTLENS_HOME=str(home))
    env.pop("DEFECTLENS_DB_URL", None)
    proc = subprocess.run([CLI, *args], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"defectlens {' '.join(args)} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout)


def test_summary(ev: dict[str, Any]) -> dict[str, Any]:
    """Accuracy, macro-F1 over the classes with test images, recalls, escapes (casting)."""
    names = ev["class_names"]
    cm = np.array(ev["confusion_matrix"])
    present = [i for i in range(len(names)) if cm[i].sum() > 0]
    f1s = {}
    for i in present:
        tp = cm[i, i]
        prec = tp / cm[:, i].sum() if cm[:, i].sum() else 0.0
        rec = tp / cm[i].sum()
        f1s[names[i]] = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    out: dict[str, Any] = {
        "n": int(cm.sum()),
        "accuracy": float(np.trace(cm) / cm.sum()),
        "macro_f1": float(np.mean(list(f1s.values()))),
        "recall": {names[i]: float(cm[i, i] / cm[i].sum()) for i in present},
        "confusion_matrix": cm.tolist(),
        "class_names": names,
        "ece": ev.get("ece"),
        "ece_uncalibrated": ev.get("ece_uncalibrated"),
        "acceptance_threshold": ev.get("acceptance_threshold"),
        "accuracy_argmax": ev.get("accuracy_argmax"),
    }
    if names == ["def_front", "ok_front"]:
        out["escapes"] = int(cm[0, 1])  # defective parts classified ok
        out["false_alarms"] = int(cm[1, 0])
    return out


def _commit() -> str:
    """The checkout's commit, with '+dirty' when it has uncommitted changes."""
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "-uno"],
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    return head + ("+dirty" if dirty else "")


def table(results: Path) -> str:
    """A markdown table of the JSON results in a folder (for docs/benchmarks.md)."""
    lines = [
        "| scenario | recipe | test accuracy | macro-F1 | worst recall | escapes / false alarms "
        "| test ECE | T | good at P(good) >= | epochs (best) | px | train s | commit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for f in sorted(results.glob("*.json")):
        d = json.loads(f.read_text())
        t, te = d["train"], d["test"]
        worst = min(te["recall"].items(), key=lambda kv: kv[1])
        esc = f"{te['escapes']} / {te['false_alarms']}" if "escapes" in te else "-"
        threshold = te.get("acceptance_threshold")
        accept = "-" if threshold is None else f"{threshold:.4f}"
        if threshold is not None and te.get("accuracy_argmax") is not None:
            accept += f" (argmax {te['accuracy_argmax']:.2%})"
        cut = len(RECIPES["issue"])
        recipe = d["recipe"] + (" " + " ".join(d["train_options"][cut:]) if d["recipe"] == "issue"
                                else (" " + " ".join(d["train_options"]) if d["train_options"]
                                      else ""))  # fmt: skip
        lines.append(
            f"| {d['scenario']} | {recipe.strip()} | {te['accuracy']:.2%} | {te['macro_f1']:.3f} "
            f"| {worst[1]:.3f} ({worst[0]}) | {esc} | {te['ece']:.3f} | {t['temperature']:.3f} "
            f"| {accept} | {t['epochs']} ({t['best_epoch']}) | {t['img_size']} "
            f"| {t['train_seconds']:.0f} | {d.get('commit', '')} |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        print(table(Path(sys.argv[2])))
        return
    p = argparse.ArgumentParser()
    p.add_argument("--scenario", required=True)
    p.add_argument("--recipe", choices=sorted(RECIPES), default="default")
    p.add_argument("--extra", default="", help="more train options, e.g. '--rot90'")
    p.add_argument("--major", default="patches", help="neu_300_20: the class that keeps 300")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--home", type=Path, help="keep the run's DEFECTLENS_HOME here (a new folder)")
    args = p.parse_args()
    data = build(args.scenario, args.major, args.seed)
    train_args = [*RECIPES[args.recipe], *shlex.split(args.extra)]
    load_before = os.getloadavg()
    commit = _commit()  # before training: the code that ran
    with contextlib.ExitStack() as stack:
        if args.home is not None:
            args.home.mkdir(parents=True)  # a new folder: a fresh installation
            home = args.home
        else:
            home = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dl-bench-")))
        t0 = time.perf_counter()
        trained = _cli(home, "train", "--data", str(data), "--split-file", str(data / "split.csv"),
                       "--name", args.scenario, *train_args, "--json")  # fmt: skip
        wall = time.perf_counter() - t0
        ev = _cli(home, "evaluate", "--model", str(trained["model_id"]), "--dataset",
                  str(trained["dataset_id"]), "--split", "test", "--json")  # fmt: skip
    keep = (
        "choices", "val_accuracy", "macro_f1", "best_epoch", "epochs", "train_seconds",
        "temperature", "ece", "ece_uncalibrated", "budget_stopped", "img_size", "resize",
        "acceptance",
    )  # fmt: skip
    emit(
        {
            "scenario": args.scenario,
            "major": args.major if args.scenario == "neu_300_20" else None,
            "data_seed": args.seed,
            "recipe": args.recipe,
            "train_options": train_args,
            "train": {k: trained.get(k) for k in keep},
            "wall_seconds": wall,
            "test": test_summary(ev),
            "load_before": [round(x, 2) for x in load_before],
            "commit": commit,
            "root": str(ROOT),
        }
    )


if __name__ == "__main__":
    main()
