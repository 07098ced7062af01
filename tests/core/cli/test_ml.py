"""The ML commands end to end through the real `defectlens` script: import, train, evaluate,
promote, export; and their one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).with_name("defectlens"))


def _make_dataset(root: Path, n: int = 24) -> Path:
    rng = np.random.default_rng(0)
    for cls in ("ok", "scratch"):
        d = root / cls
        d.mkdir(parents=True)
        for i in range(n):
            a = (rng.random((48, 48)) * 60 + 100).astype(np.uint8)
            if cls == "scratch":
                a[:, 20:24] = 250
            Image.fromarray(a).save(d / f"{i}.png")
    return root


def _run(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DEFECTLENS_HOME=str(home), DEFECTLENS_NUM_THREADS="2")
    env.pop("DEFECTLENS_DB_URL", None)
    proc = subprocess.run([CLI, *args], env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _json(proc: subprocess.CompletedProcess[str]) -> dict:  # type: ignore[type-arg]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stdout
    return json.loads(lines[0])


def test_import_train_evaluate_promote_export(tmp_path: Path) -> None:
    data = _make_dataset(tmp_path / "parts")
    home = tmp_path / "home"
    imported = _json(_run(home, "dataset", "import", str(data), "--name", "parts", "--json"))
    assert imported["class_counts"] == {"ok": 24, "scratch": 24}
    assert imported["created"] is True
    again = _json(_run(home, "dataset", "import", str(data), "--name", "parts", "--json"))
    assert again["id"] == imported["id"] and again["created"] is False

    trained = _json(
        _run(
            home,
            "train",
            "--dataset",
            str(imported["id"]),
            "--epochs",
            "3",
            "--img-size",
            "32",
            "--device",
            "cpu",
            "--json",
        )
    )
    for key in (
        "model_id",
        "val_accuracy",
        "macro_f1",
        "per_class",
        "confusion_matrix",
        "train_seconds",
        "images_per_second",
        "device",
        "temperature",
        "ece",
        "ece_uncalibrated",
    ):
        assert key in trained
    assert trained["device"] == "cpu"
    # 24 / 24 images: auto leaves a balanced dataset alone, and says why.
    assert trained["balance"]["used"] == "none" and trained["balance"]["ratio"] == 1.0
    assert all("recall" in v for v in trained["per_class"].values())
    # Calibrated on the validation split: T fitted, both ECEs reported.
    assert trained["temperature"] > 0 and trained["temperature"] != 1.0
    assert 0.0 <= trained["ece"] <= 1.0 and 0.0 <= trained["ece_uncalibrated"] <= 1.0
    assert trained["val_accuracy"] >= 0.9
    # ok is a good class, but its few validation images are too few to fit a threshold on.
    assert trained["acceptance"]["fitted"] is False
    assert "good images; at least 10" in trained["acceptance"]["reason"]
    assert sum(map(sum, trained["confusion_matrix"])) == sum(
        v["support"] for v in trained["per_class"].values()
    )

    listed = _json(_run(home, "models", "list", "--json"))["models"]
    assert [m["status"] for m in listed] == ["candidate"]

    no_active = _run(home, "evaluate", "--model", "active", "--data", str(data), check=False)
    assert no_active.returncode != 0
    assert no_active.stderr.startswith("error: no active model")
    assert "Traceback" not in no_active.stderr

    _run(home, "models", "promote", str(trained["model_id"]))
    ev = _json(_run(home, "evaluate", "--model", "active", "--data", str(data), "--json"))
    assert ev["n"] == 48 and ev["accuracy"] >= 0.9
    assert ev["images_per_second"] > 0
    assert ev["roc_auc"] is not None
    assert set(ev["per_class"]) == {"ok", "scratch"}
    assert all(0 <= v["recall"] <= 1 for v in ev["per_class"].values())
    assert ev["temperature"] == pytest.approx(trained["temperature"])
    assert ev["acceptance_threshold"] is None and ev["accuracy_argmax"] == ev["accuracy"]
    assert 0.0 <= ev["ece"] <= 1.0 and 0.0 <= ev["ece_uncalibrated"] <= 1.0

    out = tmp_path / "model.onnx"
    exported = _json(
        _run(
            home,
            "models",
            "export",
            str(trained["model_id"]),
            "--format",
            "onnx",
            "--out",
            str(out),
            "--json",
        )
    )
    assert out.exists() and exported["bytes"] == out.stat().st_size


def test_train_on_folder_in_one_step(tmp_path: Path) -> None:
    data = _make_dataset(tmp_path / "parts", n=16)
    home = tmp_path / "home"
    trained = _json(
        _run(
            home,
            "train",
            "--data",
            str(data),
            "--epochs",
            "1",
            "--img-size",
            "32",
            "--rot90",
            "--balance",
            "weights",
            "--json",
        )
    )
    assert trained["model_id"] == 1 and trained["dataset_id"] == 1
    assert trained["balance"]["used"] == "weights"
    assert trained["balance"]["reason"].startswith("weights requested")
    meta = json.loads(
        Path(_json(_run(home, "models", "list", "--json"))["models"][0]["artifact"]).read_text()
    )
    assert meta["train_config"]["rot90"] is True and meta["train_config"]["epochs"] == 1
    assert meta["train_config"]["balance"] == "weights"
    # The input choice: reported with its reason, recorded in the artifact.
    assert trained["img_size"] == 32 and trained["resize"] == "letterbox"
    assert trained["choices"]["img_size"] == {"value": 32, "reason": "32 px: given"}
    assert (meta["img_size"], meta["resize"], meta["img_size_reason"]) == (
        32,
        "letterbox",
        "32 px: given",
    )


def test_train_chooses_epochs_within_the_budget_and_says_why(tmp_path: Path) -> None:
    data = _make_dataset(tmp_path / "parts", n=12)
    home = tmp_path / "home"
    trained = _json(
        _run(
            home, "train", "--data", str(data), "--img-size", "32", "--budget-minutes", "0.00001",
            "--resize", "stretch", "--json",
        )
    )  # fmt: skip
    choices = trained["choices"]
    assert choices["epochs"]["value"] == 5 and "budget" in choices["epochs"]["reason"]
    assert choices["architecture"]["value"] == "defectnet"
    assert choices["balance"]["used"] == "none"
    assert trained["resize"] == "stretch" and trained["epochs"] <= 5
    bad = _run(home, "train", "--dataset", "1", "--resize", "squash", check=False)
    assert bad.returncode != 0 and "--resize must be one of letterbox, stretch" in bad.stderr


def test_one_class_dataset_is_refused_with_one_line(tmp_path: Path) -> None:
    data = tmp_path / "one"
    (data / "ok").mkdir(parents=True)
    Image.new("L", (32, 32), 128).save(data / "ok" / "a.png")
    proc = _run(tmp_path / "home", "dataset", "import", str(data), "--name", "x", check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")
    assert "two classes" in proc.stderr
    listed = _json(_run(tmp_path / "home", "dataset", "list", "--json"))
    assert listed["datasets"] == []


def test_evaluate_refuses_unknown_class_folder(tmp_path: Path) -> None:
    data = _make_dataset(tmp_path / "parts", n=12)
    home = tmp_path / "home"
    trained = _json(
        _run(home, "train", "--data", str(data), "--epochs", "1", "--img-size", "32", "--json")
    )
    (data / "dent").mkdir()
    proc = _run(
        home, "evaluate", "--model", str(trained["model_id"]), "--data", str(data), check=False
    )
    assert proc.returncode == 1 and "dent" in proc.stderr and "not known" in proc.stderr


def test_train_needs_exactly_one_source(tmp_path: Path) -> None:
    proc = _run(tmp_path / "home", "train", check=False)
    assert proc.returncode == 1
    assert proc.stderr == "error: give exactly one of --data PATH or --dataset ID\n"


def test_a_bad_false_reject_share_is_refused_before_anything_is_imported(tmp_path: Path) -> None:
    data = _make_dataset(tmp_path / "parts", n=4)
    home = tmp_path / "home"
    proc = _run(home, "train", "--data", str(data), "--false-reject", "0.5", check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: false reject share must be from 0 (off) to 0.2")
    assert _json(_run(home, "dataset", "list", "--json"))["datasets"] == []
