"""Classifier: predictions from bytes, bad images in place, backends agree, Grad-CAM, threads."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import InvalidImageError, ModelError
from core.vision import onnx_export
from core.vision.architectures import build_model
from core.vision.artifacts import ModelMetadata, save_model
from core.vision.classifier import Classifier, Prediction


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model("defectnet", 3, 1).eval()
    meta = ModelMetadata(
        architecture="defectnet",
        class_names=["crack", "ok", "pit"],
        img_size=48,
        in_channels=1,
        normalisation={"mean": [0.5], "std": [0.2]},
    )
    out = tmp_path_factory.mktemp("model")
    save_model(model, meta, out)
    return out


def images(n: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    return [png(rng.integers(0, 256, (60 + i, 70, 3), dtype=np.uint8)) for i in range(n)]


def test_predict_bytes_keeps_order_and_reports_bad_files(artifact: Path) -> None:
    clf = Classifier.from_artifact(artifact, backend="torch")
    datas = images(5)
    datas.insert(2, b"definitely not an image")
    names = [f"f{i}.png" for i in range(len(datas))]
    out = clf.predict_bytes(datas, names, batch_size=2)
    assert len(out) == 6
    assert isinstance(out[2], InvalidImageError) and "f2.png" in str(out[2])
    good = [p for p in out if isinstance(p, Prediction)]
    assert [p.name for p in good] == ["f0.png", "f1.png", "f3.png", "f4.png", "f5.png"]
    for p in good:
        assert p.class_name in clf.class_names
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert p.confidence == pytest.approx(max(p.probabilities.values()))


def test_backends_agree_and_arrays_match_bytes(artifact: Path) -> None:
    t = Classifier.from_artifact(artifact, backend="torch")
    o = Classifier.from_artifact(artifact, backend="onnx")
    assert (t.backend, o.backend) == ("torch", "onnx")
    datas = images(4)
    pt = t.predict_bytes(datas)
    po = o.predict_bytes(datas)
    for a, b in zip(pt, po, strict=True):
        assert isinstance(a, Prediction) and isinstance(b, Prediction)
        assert a.class_name == b.class_name
        for c in t.class_names:
            assert a.probabilities[c] == pytest.approx(b.probabilities[c], abs=1e-4)
    arr = np.array(Image.open(io.BytesIO(datas[0])).convert("L"))
    pa = t.predict_arrays([arr])[0]
    assert isinstance(pt[0], Prediction)
    assert pa.probabilities == pytest.approx(pt[0].probabilities, abs=1e-5)


def test_auto_backend_on_cpu_is_onnx(artifact: Path) -> None:
    assert Classifier.from_artifact(artifact).backend == "onnx"
    with pytest.raises(ValueError):
        Classifier.from_artifact(artifact, backend="tensorrt")


def test_onnx_falls_back_to_torch_only_when_onnx_runtime_cannot_run_the_model(
    artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ONNX Runtime's own error (it cannot parse the graph): auto falls back, onnx refuses.
    monkeypatch.setattr(onnx_export, "onnx_bytes", lambda _loaded: b"not an onnx graph")
    assert Classifier.from_artifact(artifact).backend == "torch"
    with pytest.raises(ModelError, match="cannot use ONNX Runtime"):
        Classifier.from_artifact(artifact, backend="onnx")
    # The export is checked against torch: outputs that differ mean "use torch" as well.
    monkeypatch.undo()
    monkeypatch.setattr(onnx_export, "verify_onnx", _raises(ModelError("differs by 1e-1")))
    assert Classifier.from_artifact(artifact).backend == "torch"


def test_a_bug_while_preparing_onnx_is_raised_not_hidden_by_the_fallback(
    artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(onnx_export, "verify_onnx", _raises(KeyError("pixels")))
    with pytest.raises(KeyError, match="pixels"):
        Classifier.from_artifact(artifact)


def _raises(error: Exception):  # type: ignore[no-untyped-def]
    def fail(*_args: object) -> float:
        raise error

    return fail


def test_explain_heatmap_shape_range_and_png(artifact: Path) -> None:
    clf = Classifier.from_artifact(artifact, backend="torch")
    data = images(1)[0]  # 60 x 70
    ex = clf.explain(data)
    assert ex.heatmap.shape == (60, 70)
    assert ex.heatmap.dtype == np.float32
    assert ex.heatmap.min() >= 0.0 and ex.heatmap.max() <= 1.0
    assert ex.overlay_png.startswith(b"\x89PNG")
    assert Image.open(io.BytesIO(ex.overlay_png)).size == (70, 60)
    assert ex.class_name in clf.class_names
    with pytest.raises(InvalidImageError):
        clf.explain(b"nope")


def test_large_image_heatmap_is_capped(artifact: Path) -> None:
    clf = Classifier.from_artifact(artifact, backend="torch")
    big = png(np.zeros((300, 600), np.uint8))
    assert clf.explain(big, max_side=200).heatmap.shape == (100, 200)


def test_concurrent_explain_and_predict_share_one_classifier(artifact: Path) -> None:
    clf = Classifier.from_artifact(artifact)
    datas = images(6)
    expected = [clf.explain(d).heatmap for d in datas]
    expected_pred = clf.predict_bytes(datas)

    def work(i: int) -> tuple[np.ndarray, object]:
        return clf.explain(datas[i % 6]).heatmap, clf.predict_bytes([datas[i % 6]])[0]

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(work, range(18)))
    for i, (heat, pred) in enumerate(results):
        np.testing.assert_allclose(heat, expected[i % 6], atol=1e-5)
        ref = expected_pred[i % 6]
        assert isinstance(pred, Prediction) and isinstance(ref, Prediction)
        assert pred.probabilities == ref.probabilities
    # The shared model never got hooks attached (Grad-CAM works on a private copy).
    assert not any(m._forward_hooks for m in clf._model.modules())
