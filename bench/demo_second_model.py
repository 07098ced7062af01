"""The demo's mid-month model: going on from the first model's weights, how good for how long?
(issue 11; the fine-tuning table in docs/benchmarks.md)

In a data directory where `defectlens demo` ran, trains and registers one model per recipe on
the demo dataset through train_and_register, as core.demo.seed does (64 px, CPU, seed 0,
channels_last): ``E:LR`` goes on from model 1's weights for E epochs at peak lr LR,
``E:LR:scratch`` starts from scratch. Prints one JSON object with each run's validation
accuracy and seconds. The runs register extra demo-less models: use a copy of the directory.

Usage: DEFECTLENS_HOME=<copy of a seeded demo> python bench/demo_second_model.py 10:1e-3 15:1e-3
"""

from __future__ import annotations

import sys
import time
from typing import Any

from common import emit, machine

from core.auth import permissions
from core.config import load_settings
from core.training.config import TrainConfig
from core.training.register import train_and_register
from core.vision.artifacts import weights_file
from db.engine import Database
from db.models import Model


def main() -> None:
    settings = load_settings()
    db = Database(settings.db_url)
    with db.read() as session:
        first = session.get(Model, 1)
        assert first is not None, "run `defectlens demo` in DEFECTLENS_HOME first"
        init, dataset_id = weights_file(first.artifact_path), first.dataset_id
    runs: list[dict[str, Any]] = []
    for recipe in sys.argv[1:]:
        epochs, lr, *scratch = recipe.split(":")
        config = TrainConfig(epochs=int(epochs), lr=float(lr), img_size=64, device="cpu",
                             seed=0, channels_last=True,
                             weights_path=None if scratch else init)  # fmt: skip
        started = time.perf_counter()
        outcome = train_and_register(db, settings, permissions.SYSTEM, dataset_id, config)
        metrics = outcome.result.metrics
        runs.append({"recipe": recipe, "val_accuracy": metrics.accuracy if metrics else None,
                     "seconds": round(time.perf_counter() - started, 1),
                     "images_per_second": round(outcome.result.images_per_second)})  # fmt: skip
    emit({"bench": "demo_second_model", "machine": machine(), "runs": runs})


if __name__ == "__main__":
    main()
