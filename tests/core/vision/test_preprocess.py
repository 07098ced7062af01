"""The one preprocess: letterboxing keeps shapes undistorted, pads flat, and is the same array
in training, the torch and ONNX classifiers; models saved before it still stretch."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import ModelError
from core.training.data import load_split_tensors
from core.vision import preprocess
from core.vision.architectures import build_model
from core.vision.artifacts import META_NAME, LoadedModel, ModelMetadata, load_model, save_model
from core.vision.classifier import Classifier, Prediction
from core.vision.images import DecodeLimits
from tests.core.training_support import Entry, Snapshot


def circle_strip(width: int = 300, height: int = 100, radius: int = 30) -> np.ndarray:
    """A dark 3:1 strip with one bright disc in the middle."""
    img = np.full((height, width), 40, np.uint8)
    cv2.circle(img, (width // 2, height // 2), radius, 250, thickness=-1)
    return img


def extent(mask: np.ndarray) -> tuple[int, int]:
    """(height, width) of the bounding box of a boolean mask."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)


def to_png(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG")
    return buf.getvalue()


def test_a_circle_on_a_3_to_1_strip_stays_round_when_letterboxed() -> None:
    x = preprocess.resize_for_model(circle_strip(), 96, 1, "letterbox")
    assert x.shape == (1, 96, 96)
    h, w = extent(x[0] > 145)
    assert abs(h - w) <= 1 and 18 <= w <= 21  # radius 30 x 96/300 = 9.6 px: round
    # Stretching the same strip makes it an ellipse three times taller than wide.
    h_s, w_s = extent(preprocess.resize_for_model(circle_strip(), 96, 1, "stretch")[0] > 145)
    assert h_s / w_s > 2.5


def test_letterbox_centres_the_image_and_pads_with_its_mean() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (100, 300), dtype=np.uint8)
    assert preprocess.letterbox_box(100, 300, 96) == (32, 0, 32, 96)
    x = preprocess.resize_for_model(img, 96, 1, "letterbox")[0]
    content = cv2.resize(img, (96, 32), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(x[32:64], content)
    fill = round(float(content.mean()))
    assert (x[:32] == fill).all() and (x[64:] == fill).all()  # flat: no texture, no edge
    # Portrait, RGB: per-channel fill, content in the middle columns.
    rgb = np.zeros((90, 30, 3), np.uint8)
    rgb[..., 0], rgb[..., 2] = 200, 10
    y = preprocess.resize_for_model(rgb, 48, 3, "letterbox")
    assert y.shape == (3, 48, 48)
    assert preprocess.letterbox_box(90, 30, 48) == (0, 16, 48, 16)
    assert (y[0] == 200).all() and (y[1] == 0).all() and (y[2] == 10).all()


def test_square_images_give_the_same_array_in_both_modes() -> None:
    rng = np.random.default_rng(1)
    for side in (40, 96, 200):
        img = rng.integers(0, 256, (side, side), dtype=np.uint8)
        np.testing.assert_array_equal(
            preprocess.resize_for_model(img, 96, 1, "letterbox"),
            preprocess.resize_for_model(img, 96, 1, "stretch"),
        )
    with pytest.raises(ValueError, match="resize must be one of"):
        preprocess.resize_for_model(img, 96, 1, "crop")


def classifier(resize: str | None, backend: str = "torch", img_size: int = 48) -> Classifier:
    meta = ModelMetadata(
        architecture="defectnet",
        class_names=["ok", "dent"],
        img_size=img_size,
        in_channels=1,
        normalisation={"mean": [0.4], "std": [0.2]},
        **({} if resize is None else {"resize": resize}),
    )
    torch.manual_seed(0)  # the same weights for every classifier made here
    model = build_model("defectnet", 2, 1).eval()
    return Classifier(LoadedModel(model, meta), backend=backend)


def test_training_and_both_inference_paths_see_identical_arrays(tmp_path: Path) -> None:
    """A non-square image: the training tensors, Classifier.prepare and the bytes path agree,
    and the torch and ONNX classifiers give the same probabilities on it."""
    rng = np.random.default_rng(2)
    shapes = [(100, 300), (250, 90), (64, 64), (37, 211)]
    (tmp_path / "ok").mkdir()
    arrays = []
    for i, (h, w) in enumerate(shapes):
        a = rng.integers(0, 256, (h, w), dtype=np.uint8)
        Image.fromarray(a).save(tmp_path / "ok" / f"{i}.png")
        arrays.append(a)
    snap = Snapshot(
        tmp_path, ["ok", "dent"], [Entry(f"ok/{i}.png", "ok", "train") for i in range(4)]
    )
    train_x = load_split_tensors(snap, 48, 1, ("train",), resize="letterbox")["train"].x.numpy()
    torch_clf, onnx_clf = classifier("letterbox"), classifier("letterbox", backend="onnx")
    assert onnx_clf.backend == "onnx"
    datas = [to_png(a) for a in arrays]
    for i, a in enumerate(arrays):
        want = preprocess.resize_for_model(a, 48, 1, "letterbox")
        np.testing.assert_array_equal(train_x[i], want)
        np.testing.assert_array_equal(torch_clf.prepare(a), want)
        np.testing.assert_array_equal(torch_clf._decode(datas[i], "x"), want)
    by_torch, by_onnx = torch_clf.predict_bytes(datas), onnx_clf.predict_bytes(datas)
    for t, o in zip(by_torch, by_onnx, strict=True):
        assert isinstance(t, Prediction) and isinstance(o, Prediction)
        assert t.probabilities["dent"] == pytest.approx(o.probabilities["dent"], abs=1e-4)


def test_a_model_saved_without_a_resize_field_still_stretches(tmp_path: Path) -> None:
    """Metadata written before letterboxing existed: loaded, it stretches as it was trained."""
    clf = classifier("letterbox")
    save_model(clf._model, clf.metadata, tmp_path)
    raw = json.loads((tmp_path / META_NAME).read_text())
    assert raw.pop("resize") == "letterbox"
    raw.pop("img_size_reason")
    (tmp_path / META_NAME).write_text(json.dumps(raw))
    old = Classifier.from_artifact(tmp_path, backend="torch")
    assert old.metadata.resize == "stretch" and load_model(tmp_path).metadata.resize == "stretch"
    strip = circle_strip()
    np.testing.assert_array_equal(
        old.prepare(strip), preprocess.resize_for_model(strip, 48, 1, "stretch")
    )
    assert not np.array_equal(old.prepare(strip), clf.prepare(strip))
    raw["resize"] = "squash"
    (tmp_path / META_NAME).write_text(json.dumps(raw))
    with pytest.raises(ModelError, match="resize must be one of"):
        load_model(tmp_path)


def test_decode_limits_still_apply_to_the_letterboxed_path() -> None:
    clf = classifier("letterbox")
    clf.limits = DecodeLimits(max_pixels=1000)
    (bad,) = clf.predict_bytes([to_png(circle_strip())])
    assert isinstance(bad, Exception)
