"""Artifacts: round trip, tamper and mismatch detection, ONNX export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from core.errors import ModelError
from core.vision.architectures import build_model
from core.vision.artifacts import META_NAME, WEIGHTS_NAME, ModelMetadata, load_model, save_model
from core.vision.onnx_export import export_onnx


def metadata(classes: int = 3, in_channels: int = 1, size: int = 32) -> ModelMetadata:
    return ModelMetadata(
        architecture="defectnet",
        class_names=[f"c{i}" for i in range(classes)],
        img_size=size,
        in_channels=in_channels,
        normalisation={"mean": [0.5] * in_channels, "std": [0.25] * in_channels},
        dataset_id="ds1",
        dataset_hash="abc",
        metrics={"accuracy": 1.0},
    )


def trained_like_model(classes: int = 3, in_channels: int = 1) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("defectnet", classes, in_channels)
    # Non-trivial BN statistics, as after training, so a round trip is a real check.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    return model.eval()


def test_round_trip_gives_identical_outputs(tmp_path: Path) -> None:
    model = trained_like_model()
    saved = save_model(model, metadata(), tmp_path / "m")
    assert saved.path_weights.name == WEIGHTS_NAME and saved.path_meta.name == META_NAME
    meta = json.loads(saved.path_meta.read_text())
    assert meta["sha256"] == saved.sha256 and meta["created_at"] and meta["defectlens_version"]
    assert meta["class_names"] == ["c0", "c1", "c2"] and meta["dataset_hash"] == "abc"
    assert not list((tmp_path / "m").glob("*.tmp"))  # no temp files left behind
    loaded = load_model(tmp_path / "m")
    x = torch.rand(4, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.model(x), model(x))
    assert loaded.metadata.class_names == ["c0", "c1", "c2"]
    assert load_model(saved.path_meta).metadata.sha256 == saved.sha256


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    saved = save_model(trained_like_model(), metadata(), tmp_path)
    data = bytearray(saved.path_weights.read_bytes())
    data[-1] ^= 0xFF
    saved.path_weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="SHA-256"):
        load_model(tmp_path)


def test_class_count_mismatch_is_refused_before_loading(tmp_path: Path) -> None:
    saved = save_model(trained_like_model(classes=3), metadata(classes=3), tmp_path)
    meta = json.loads(saved.path_meta.read_text())
    meta["class_names"] = ["a", "b"]  # hash still matches: only the head shape disagrees
    saved.path_meta.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="3 classes but the metadata names 2"):
        load_model(tmp_path)


def test_save_refuses_head_metadata_mismatch(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        save_model(trained_like_model(classes=3), metadata(classes=4), tmp_path)


def test_wrong_tensors_and_bad_metadata_are_refused(tmp_path: Path) -> None:
    saved = save_model(trained_like_model(), metadata(), tmp_path)
    meta = json.loads(saved.path_meta.read_text())
    # A valid safetensors file with the right hash but tensors of another model.
    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(2)}, str(other))
    import hashlib

    meta2 = dict(meta, weights_file="other.safetensors")
    meta2["sha256"] = hashlib.sha256(other.read_bytes()).hexdigest()
    (tmp_path / "bad.json").write_text(json.dumps(meta2))
    with pytest.raises(ModelError, match="do not fit"):
        load_model(tmp_path / "bad.json")
    for change in (
        {"weights_file": "../model.safetensors"},
        {"architecture": "nope"},
        {"in_channels": 2},
        {"class_names": ["a", "a", "b"]},
    ):
        (tmp_path / "bad.json").write_text(json.dumps(dict(meta, **change)))
        with pytest.raises(ModelError):
            load_model(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ModelError, match="unreadable"):
        load_model(tmp_path / "bad.json")
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing")


def test_onnx_export_matches_torch(tmp_path: Path) -> None:
    import onnxruntime as ort

    save_model(trained_like_model(in_channels=3), metadata(in_channels=3), tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    out = export_onnx(loaded, tmp_path / "model.onnx")
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # dynamic batch axis
        x = np.random.default_rng(batch).random((batch, 3, 32, 32), dtype=np.float32)
        got = sess.run(None, {"pixels": x})[0]
        xt = (torch.from_numpy(x) - 0.5) / 0.25
        with torch.no_grad():
            ref = torch.softmax(loaded.model(xt), dim=1).numpy()
        assert got.shape == (batch, 3)
        np.testing.assert_allclose(got, ref, atol=1e-4)
