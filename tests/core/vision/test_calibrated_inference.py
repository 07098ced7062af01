"""The fitted temperature reaches every inference path; models saved without one are unchanged."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.errors import ModelError
from core.vision import gradcam, preprocess
from core.vision.artifacts import load_model, save_model
from core.vision.classifier import Classifier
from core.vision.onnx_export import onnx_bytes, verify_onnx
from tests.core.vision.test_artifacts import metadata, trained_like_model

T = 0.4  # sharpens: every calibrated probability differs clearly from the raw softmax


def _inputs(n: int = 5) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (1, 32, 32), dtype=np.uint8) for _ in range(n)]


def _raw_logits(path: Path, inputs: list[np.ndarray]) -> torch.Tensor:
    loaded = load_model(path)
    norm = loaded.metadata.normalisation
    mean, std = preprocess.normalisation_tensors(norm["mean"], norm["std"])
    with torch.no_grad():
        return loaded.model(preprocess.normalise(torch.from_numpy(np.stack(inputs)), mean, std))


def _save(tmp_path: Path, temperature: float) -> Path:
    meta = dataclasses.replace(metadata(), temperature=temperature, calibration={"bins": 15})
    save_model(trained_like_model(), meta, tmp_path / "m")
    return tmp_path / "m"


def _all_paths(path: Path, inputs: list[np.ndarray]) -> dict[str, np.ndarray]:
    torch_clf = Classifier.from_artifact(path, backend="torch")
    onnx_clf = Classifier.from_artifact(path, backend="onnx")
    names = torch_clf.class_names

    def rows(clf: Classifier) -> np.ndarray:
        return np.array([[p.probabilities[c] for c in names] for p in clf.predict_prepared(inputs)])

    cam_probs, _maps = gradcam.GradCam(torch_clf).run(inputs, lambda _p: [(0, 0)])
    return {"torch": rows(torch_clf), "onnx": rows(onnx_clf), "gradcam": np.asarray(cam_probs)}


def test_torch_onnx_and_gradcam_give_the_same_calibrated_probabilities(tmp_path: Path) -> None:
    path = _save(tmp_path, T)
    inputs = _inputs()
    logits = _raw_logits(path, inputs)
    expected = torch.softmax(logits / T, dim=1).numpy()
    raw = torch.softmax(logits, dim=1).numpy()
    assert np.abs(expected - raw).max() > 0.01  # the check below can tell the two apart
    got = _all_paths(path, inputs)
    for name, probs in got.items():
        np.testing.assert_allclose(probs, expected, atol=1e-4, err_msg=name)
        assert (probs.argmax(1) == raw.argmax(1)).all(), name  # scaling never changes a class
    loaded = load_model(path)
    assert loaded.metadata.temperature == T
    assert verify_onnx(loaded, onnx_bytes(loaded)) <= 1e-4


def test_artifact_without_temperature_gives_the_same_outputs_as_before(tmp_path: Path) -> None:
    path = _save(tmp_path, 1.0)
    meta_path = path / "model.json"
    meta = json.loads(meta_path.read_text())
    del meta["temperature"], meta["calibration"]  # as written before calibration existed
    meta_path.write_text(json.dumps(meta))
    loaded = load_model(path)
    assert loaded.metadata.temperature == 1.0 and loaded.metadata.calibration == {}
    inputs = _inputs()
    raw = torch.softmax(_raw_logits(path, inputs), dim=1).numpy()
    got = _all_paths(path, inputs)
    np.testing.assert_array_equal(got["torch"], raw.astype(np.float32))
    np.testing.assert_allclose(got["onnx"], raw, atol=1e-4)
    np.testing.assert_allclose(got["gradcam"], raw, atol=1e-5)


def test_temperature_and_report_round_trip_and_bad_values_are_refused(tmp_path: Path) -> None:
    path = _save(tmp_path, T)
    assert load_model(path).metadata.calibration == {"bins": 15}
    meta = json.loads((path / "model.json").read_text())
    for bad in (0, -1.0, "hot", True, None, float("inf")):
        (path / "model.json").write_text(json.dumps(dict(meta, temperature=bad)))
        with pytest.raises(ModelError, match="temperature"):
            load_model(path)
    (path / "model.json").write_text(json.dumps(dict(meta, calibration=[1])))
    with pytest.raises(ModelError, match="calibration"):
        load_model(path)
