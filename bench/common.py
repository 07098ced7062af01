"""Helpers shared by the bench scripts: dataset snapshots, machine facts, JSON output."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import logging
import os
import platform
import random
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# ../shared/datasets beside the checkout; .gpu/ inside it on the device machine.
DATASET_DIRS = [ROOT.parent / "shared" / "datasets", ROOT / ".gpu", Path("/work/shared/datasets")]
OUT_DIR = ROOT / "bench" / "out"

log = logging.getLogger("bench")


def dataset_dir(name: str) -> Path:
    """First existing copy of a shared dataset."""
    for base in DATASET_DIRS:
        if (base / name).is_dir():
            return base / name
    raise SystemExit(f"dataset {name} not found in {DATASET_DIRS}")


@dataclass(frozen=True)
class Entry:
    file: str
    cls: str
    split: str


@dataclass
class FolderSnapshot:
    """Stand-in for core.datasets DatasetSnapshot that reads the shared folder in place.

    Used where core.datasets (db-free) is not available, e.g. on the GPU box;
    the split is the same stratified, seeded rule: per class, shuffle sorted names, last 20 % val.
    """

    path: Path
    class_names: list[str]
    entries: list[Entry] = field(default_factory=list)
    grayscale: bool = True
    name: str = ""
    content_hash: str = ""


def folder_snapshot(
    root: Path, val_fraction: float = 0.2, seed: int = 0, split_file: Path | None = None
) -> FolderSnapshot:
    """Snapshot of an ImageFolder tree without copying; splits.csv maps train/test if given."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    published: dict[str, str] = {}
    if split_file is not None:
        with open(split_file) as f:
            for row in csv.DictReader(f):
                published[row["file"]] = row["original_split"]
    entries: list[Entry] = []
    rng = random.Random(seed)
    for cls in classes:
        files = sorted(
            f"{cls}/{p.name}"
            for p in (root / cls).iterdir()
            if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"}
        )
        test = [f for f in files if published.get(f) == "test"]
        rest = [f for f in files if published.get(f) != "test"]
        rng.shuffle(rest)
        n_val = round(len(rest) * val_fraction)
        entries += [Entry(f, cls, "test") for f in test]
        entries += [Entry(f, cls, "val") for f in rest[:n_val]]
        entries += [Entry(f, cls, "train") for f in rest[n_val:]]
    h = hashlib.sha256("\n".join(f"{e.file}:{e.split}" for e in entries).encode()).hexdigest()
    return FolderSnapshot(root, classes, entries, True, root.name, h)


def snapshot(name: str, *, split_file: Path | None = None, use_core: bool = True) -> Any:
    """core.datasets snapshot when importable (imported once into bench/out), else the stand-in."""
    src = dataset_dir(name)
    if use_core:
        try:
            from core.config import load_settings
            from core.datasets import importer
        except ImportError as e:
            log.warning("core.datasets.importer unavailable (%s); reading the folder in place", e)
        else:
            home = OUT_DIR / "home"
            settings = load_settings({"DEFECTLENS_HOME": str(home)})
            settings.ensure_dirs()
            kwargs: dict[str, Any] = {"val_fraction": 0.2, "seed": 0}
            if split_file is not None:
                kwargs["split_file"] = split_file
            return importer.import_dataset(src, name, settings, **kwargs)
    return folder_snapshot(src, split_file=split_file)


def machine() -> dict[str, Any]:
    """Facts to record beside every number: CPU, cores, load, torch version, date."""
    import torch

    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": model,
        "nproc": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "torch": torch.__version__,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def emit(obj: dict[str, Any]) -> None:
    """Print the one JSON object a bench script reports."""
    obj.setdefault("machine", machine())
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def class_counts(entries: list[Any]) -> dict[str, dict[str, int]]:
    """split -> class -> count."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for e in entries:
        out[e.split][e.cls] += 1
    return {k: dict(v) for k, v in out.items()}
