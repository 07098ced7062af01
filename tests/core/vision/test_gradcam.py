"""Grad-CAM on a small trained model: the batched pass equals captum's LayerGradCam, and
``Classifier.explain`` draws exactly the overlay that ingest stores."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from PIL import Image

from core.training.config import TrainConfig
from core.training.loop import fit
from core.vision import gradcam
from core.vision.architectures import get_spec
from core.vision.artifacts import metadata_from_result, save_model
from core.vision.classifier import Classifier, Prediction
from core.vision.images import DecodeLimits
from tests.conftest import write_tiny_dataset
from tests.core.inspection_support import png
from tests.core.training_support import Entry, Snapshot


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Classifier:
    """A defectnet trained for a few epochs on ok / scratch, loaded for the torch backend.

    Untrained is not enough here: defectnet's residual blocks start with a zero BN scale, so
    the gradients at the Grad-CAM layer are all zero and every map would be blank.
    """
    root = write_tiny_dataset(tmp_path_factory.mktemp("tiny"), n=16)
    classes = ["ok", "scratch"]
    entries = [Entry(f"{c}/{c}_{i}.png", c, "train") for c in classes for i in range(16)]
    config = TrainConfig(epochs=3, img_size=32, batch_size=16, device="cpu", num_threads=1)
    result = fit(config, Snapshot(root, classes, entries))
    out = tmp_path_factory.mktemp("model")
    save_model(result, metadata_from_result(result), out)
    return Classifier.from_artifact(out, backend="torch")


def _inputs(clf: Classifier, n: int) -> list[np.ndarray]:
    return [
        clf.prepare(np.asarray(Image.open(io.BytesIO(png(i, scratch=i % 2 == 1)))))
        for i in range(n)
    ]


def test_batched_gradcam_gives_captums_layer_gradcam_maps(trained: Classifier) -> None:
    """The batched one-pass Grad-CAM gives captum's LayerGradCam maps (before upsampling)."""
    clf = trained
    inputs = _inputs(clf, 6)
    targets = [0, 1, 0, 1, 1, 0]  # inputs alternate ok / scratch: the true class, then not
    ours = gradcam.cam_batch(clf, inputs, targets)
    cam_model, cam_mean, cam_std = clf.cam_copy()
    cam_layer = get_spec(clf.metadata.architecture).cam_layer(cam_model)
    x = (torch.from_numpy(np.stack(inputs)).float() / 255.0 - cam_mean) / cam_std
    attr = LayerGradCam(cam_model, cam_layer).attribute(x, target=targets, relu_attributions=True)
    theirs_all = attr[:, 0].detach().numpy()
    # A trained model looks somewhere for the true class: the maps compared are not all blank.
    assert [int(m.max()) for m in ours[:4]] == [255] * 4
    for mine, theirs in zip(ours, theirs_all, strict=True):
        top = theirs.max()
        want = np.round(np.clip(theirs / top, 0, 1) * 255) if top > 0 else np.zeros_like(theirs)
        assert mine.shape == theirs.shape
        assert np.abs(mine.astype(int) - want.astype(int)).max() <= 1


def test_explain_draws_the_overlay_ingest_stores(trained: Classifier) -> None:
    clf = trained
    limits = DecodeLimits()
    for seed in range(4):
        data = png(50 + seed, size=(60, 80), scratch=seed % 2 == 1)
        ex = clf.explain(data)
        pred = clf.predict_bytes([data])[0]
        assert isinstance(pred, Prediction)
        assert ex.class_name == pred.class_name
        assert ex.confidence == pytest.approx(pred.confidence, abs=1e-5)
        # What ingest stores for a flagged part: the map of the predicted class, as a PNG.
        (cam,) = gradcam.cam_batch(clf, _inputs_of(clf, data), [pred.class_index])
        stored = gradcam.render_overlay(data, gradcam.encode_map(cam), limits)
        assert ex.overlay_png == stored
        assert ex.heatmap.shape == (60, 80) and float(ex.heatmap.max()) in (0.0, 1.0)


def _inputs_of(clf: Classifier, data: bytes) -> list[np.ndarray]:
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    return [clf.prepare(pixels)]
