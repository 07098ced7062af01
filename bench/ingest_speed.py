"""End-to-end `defectlens ingest` speed on the casting test split (715 images), vs a plain loop.

Measures, in one run on the same machine:
  * `defectlens ingest DIR --json` as a subprocess into a fresh data directory (decode, hash,
    classify, judge, Grad-CAM for flagged parts, content-addressed files with fsync, SQLite
    writes): the rate the command reports (after the model is loaded) and the wall-clock rate
    of the whole process (Python start, imports and model load included);
  * the same with --no-heatmaps (heatmaps can then be filled in with --backfill);
  * a plain one-image-at-a-time PyTorch loop (Pillow decode, resize, one forward per image;
    no storage, no database) with the same model.

The model is a defectnet trained on the casting train split in bench/out/ingest_model_home;
train it first if it is missing:

  DEFECTLENS_HOME=bench/out/ingest_model_home defectlens train \
      --data ../shared/datasets/casting --split-file ../shared/datasets/casting/splits.csv \
      --name casting --epochs 3 --device cpu --json

The all_flagged variant sets a flagging rule that calls no predicted class good, so every one of
the 715 parts is flagged and gets a heatmap: the worst case (issue 9: >= 250 images/s).

Usage: python bench/ingest_speed.py [--runs 2] > bench/out/ingest_speed.json
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from common import OUT_DIR, ROOT, dataset_dir, emit, machine

CLI = str(Path(sys.executable).with_name("defectlens"))


def _test_split(casting: Path, dest: Path) -> int:
    """Copy the published test split (715 images) into dest/<class>/ once; returns the count."""
    files = []
    with open(casting / "splits.csv", newline="") as f:
        for row in csv.DictReader(f):
            if "test" in row["original_split"].split(";"):
                files.append(row["file"])
    if not dest.exists() or sum(1 for p in dest.rglob("*") if p.is_file()) != len(files):
        shutil.rmtree(dest, ignore_errors=True)
        for rel in files:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(casting / rel, dest / rel)
    return len(files)


def _model_artifact(model_home: Path) -> tuple[Path, dict[str, Any]]:
    """The casting model's artifact folder and catalog fields (active, else newest)."""
    from core import setup
    from core.auth import permissions
    from core.config import load_settings
    from core.errors import NotFound
    from core.registry import catalog

    settings = load_settings({"DEFECTLENS_HOME": str(model_home)})
    if not (model_home / "defectlens.db").exists():
        raise SystemExit(f"no model in {model_home}; train one first (see this file's docstring)")
    db = setup.open_database(settings)
    try:
        try:
            model = catalog.get_model(db, permissions.SYSTEM, "active")
        except NotFound:
            models = catalog.list_models(db, permissions.SYSTEM)
            if not models:
                raise SystemExit(f"no model in {model_home}; train one first") from None
            model = models[0]
    finally:
        db.dispose()
    fields = {
        "name": model.name,
        "architecture": model.architecture,
        "class_names": model.class_names,
        "input_spec": model.input_spec,
        "artifact_sha256": model.artifact_sha256,
        "metrics": model.metrics,
    }
    return Path(model.artifact_path).parent, fields


# A good class the model never predicts: every part is then a defect, flagged, and explained.
NO_GOOD_CLASS = "(none: every part flagged)"


def _fresh_home(
    base: Path, artifact_dir: Path, fields: dict[str, Any], all_flagged: bool = False
) -> Path:
    """A new data directory whose database holds the model, promoted.

    ``all_flagged``: the default flagging rule names no class the model predicts as good, so
    every part is flagged and gets a heatmap (the worst case for ingest).
    """
    from core import setup
    from core.auth import permissions
    from core.config import load_settings
    from core.registry import catalog

    home = base / uuid.uuid4().hex[:8]
    settings = load_settings({"DEFECTLENS_HOME": str(home)})
    setup.migrate(settings)
    target = settings.models_dir / artifact_dir.name
    shutil.copytree(artifact_dir, target)
    db = setup.open_database(settings)
    try:
        rec = catalog.register_model(
            db, permissions.SYSTEM, artifact_path=target / "model.json", dataset_id=None, **fields
        )
        catalog.promote_model(db, permissions.SYSTEM, rec.id)
        if all_flagged:
            from core.quality import flag_rules

            flag_rules.set_rule(db, permissions.SYSTEM, "*", [NO_GOOD_CLASS], 0.9)
    finally:
        db.dispose()
    return home


def _accuracy(home: Path) -> dict[str, Any]:
    """Accuracy of the recorded predictions against the class folder in each file's path."""
    from core import setup
    from core.auth import permissions
    from core.config import load_settings
    from core.quality import inspections

    db = setup.open_database(load_settings({"DEFECTLENS_HOME": str(home)}))
    try:
        recs = inspections.list_inspections(db, permissions.SYSTEM, limit=100_000)
    finally:
        db.dispose()
    right = sum(1 for r in recs if Path(r.source_name or "").parent.name == r.predicted_class)
    return {
        "accuracy": round(right / len(recs), 4) if recs else None,
        "heatmap_files": sum(1 for r in recs if r.heatmap_path),
        "mean_latency_ms": round(sum(r.latency_ms or 0 for r in recs) / max(len(recs), 1), 2),
    }


def _cli_ingest(home: Path, src: Path, *extra: str) -> dict[str, Any]:
    import json

    env = dict(os.environ, DEFECTLENS_HOME=str(home))
    env.pop("DEFECTLENS_DB_URL", None)
    started = time.perf_counter()
    proc = subprocess.run(
        [CLI, "ingest", str(src), "--json", *extra], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"ingest failed: {proc.stderr.strip()}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = round(wall, 3)
    out["wall_images_per_second"] = round(out["processed"] / wall, 1)
    out["rejected"] = len(out["rejected"])
    return out


def _plain_loop(artifact_dir: Path, src: Path) -> dict[str, Any]:
    """One image at a time: Pillow decode, resize, normalise, one torch forward; nothing stored."""
    import numpy as np
    import torch
    from PIL import Image

    from core.vision.artifacts import load_model

    loaded = load_model(artifact_dir)
    meta = loaded.metadata
    model = loaded.model.eval()
    mean = torch.tensor(meta.normalisation["mean"]).view(1, -1, 1, 1)
    std = torch.tensor(meta.normalisation["std"]).view(1, -1, 1, 1)
    mode = "L" if meta.in_channels == 1 else "RGB"
    files = sorted(p for p in src.rglob("*") if p.is_file())
    started = time.perf_counter()
    with torch.inference_mode():
        for path in files:
            with Image.open(path) as im:
                im = im.convert(mode).resize((meta.img_size, meta.img_size), Image.BILINEAR)
                arr = np.asarray(im, dtype=np.float32) / 255.0
            x = torch.from_numpy(arr).reshape(1, meta.in_channels, meta.img_size, meta.img_size)
            model((x - mean) / std).softmax(1)
    seconds = time.perf_counter() - started
    return {
        "images": len(files),
        "seconds": round(seconds, 3),
        "images_per_second": round(len(files) / seconds, 1),
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="repetitions of each ingest variant")
    parser.add_argument("--model-home", type=Path, default=OUT_DIR / "ingest_model_home")
    parser.add_argument("--work", type=Path, default=OUT_DIR / "ingest_bench")
    args = parser.parse_args()

    os.chdir(ROOT)
    before = machine()
    src = args.work / "casting_test"
    n = _test_split(dataset_dir("casting"), src)
    artifact_dir, fields = _model_artifact(args.model_home)
    homes = args.work / "homes"
    shutil.rmtree(homes, ignore_errors=True)
    variants: dict[str, tuple[tuple[str, ...], bool]] = {
        "with_heatmaps": ((), False),
        "all_flagged": ((), True),
        "no_heatmaps": (("--no-heatmaps",), False),
    }
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    for _ in range(args.runs):
        for variant, (extra, all_flagged) in variants.items():
            home = _fresh_home(homes, artifact_dir, fields, all_flagged)
            results[variant].append(_cli_ingest(home, src, *extra) | _accuracy(home))
            shutil.rmtree(home, ignore_errors=True)
    plain = _plain_loop(artifact_dir, src)

    def best(variant: str, key: str) -> float:
        return max(float(r[key]) for r in results[variant])

    emit(
        {
            "bench": "ingest_speed",
            "dataset": "casting original test split",
            "images": n,
            "model": {k: fields[k] for k in ("name", "architecture", "class_names")}
            | {"val_accuracy": fields["metrics"].get("accuracy")},
            "ingest": results,
            "best_images_per_second": {
                "with_heatmaps": best("with_heatmaps", "images_per_second"),
                "with_heatmaps_wall": best("with_heatmaps", "wall_images_per_second"),
                "all_flagged": best("all_flagged", "images_per_second"),
                "all_flagged_wall": best("all_flagged", "wall_images_per_second"),
                "no_heatmaps": best("no_heatmaps", "images_per_second"),
                "no_heatmaps_wall": best("no_heatmaps", "wall_images_per_second"),
                "plain_torch_loop": plain["images_per_second"],
            },
            "plain_torch_loop": plain,
            "target_images_per_second": {"with_heatmaps": 200, "all_flagged": 250},
            "machine_before": before,
            "machine_after": machine(),
        }
    )


if __name__ == "__main__":
    main()
