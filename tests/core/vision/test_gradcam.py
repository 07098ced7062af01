"""Grad-CAM on a small trained model: the batched pass equals captum's LayerGradCam, and
``Classifier.explain`` draws exactly the overlay that ingest stores."""

from __future__ import annotations

import copy
import dataclasses
import io

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from PIL import Image

from core.training.config import TrainConfig
from core.training.loop import fit
from core.vision import gradcam
from core.vision.architectures import build_model, get_spec
from core.vision.artifacts import LoadedModel, ModelMetadata, metadata_from_result, save_model
from core.vision.classifier import Classifier, Prediction
from core.vision.images import DecodeLimits
from tests.conftest import write_tiny_dataset
from tests.core.inspection_support import blob_strip, brightness_cam, peak, png, png_of
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


@pytest.mark.parametrize("arch", ["defectnet", "resnet18"])
def test_onnx_gradcam_gives_the_torch_maps_and_probabilities(
    trained: Classifier, arch: str
) -> None:
    """The closed-form Grad-CAM from one ONNX pass equals the autograd one, for both heads."""
    model, _mean, _std = trained.cam_copy()
    if arch == "resnet18":  # the identity needs non-trivial weights, not trained ones
        torch.manual_seed(1)
        model = build_model("resnet18", 2, 1).eval()
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                torch.nn.init.uniform_(m.weight, 0.5, 1.5)
    meta = dataclasses.replace(trained.metadata, architecture=arch)
    onnx_clf = Classifier(LoadedModel(model=model, metadata=meta), backend="onnx")
    torch_clf = Classifier(LoadedModel(model=copy.deepcopy(model), metadata=meta), backend="torch")
    inputs = _inputs(onnx_clf, 6)
    targets = [0, 1, 0, 1, 1, 0]
    fast = onnx_clf.batch_explainer()
    assert isinstance(fast, gradcam.OnnxGradCam) and onnx_clf.batch_explainer() is fast
    probs_fast, maps_fast = fast.run(inputs, lambda _p: list(enumerate(targets)))
    probs_ref, maps_ref = gradcam.GradCam(torch_clf).run(
        inputs, lambda _p: list(enumerate(targets))
    )
    np.testing.assert_allclose(probs_fast, probs_ref, atol=1e-4)
    assert sum(int(m.max()) == 255 for m in maps_ref.values()) >= 3  # not blank maps
    for row in range(6):
        assert np.abs(maps_fast[row].astype(int) - maps_ref[row].astype(int)).max() <= 1
    assert isinstance(torch_clf.batch_explainer(), gradcam.GradCam)


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
        # What ingest stores for a flagged part: the map of the predicted class, cut to the
        # image (this model letterboxes the 60x80 images), as a PNG.
        (cam,) = gradcam.cam_batch(clf, _inputs_of(clf, data), [pred.class_index])
        assert clf.resize == "letterbox"
        cut = clf.image_map(cam, (60, 80))
        assert cut.shape == (24, 32)  # the 32 px input's 24x32 box: the padding is cut off
        stored = gradcam.render_overlay(data, gradcam.encode_map(cut), limits)
        assert ex.overlay_png == stored
        assert ex.heatmap.shape == (60, 80) and float(ex.heatmap.max()) in (0.0, 1.0)


def _inputs_of(clf: Classifier, data: bytes) -> list[np.ndarray]:
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("L"))
    return [clf.prepare(pixels)]


def test_image_map_puts_a_letterboxed_peak_back_on_its_image_point() -> None:
    """A known map on a 300x100 image's 96 px letterboxed input (content rows 32-63): a peak at
    the input point of image point (y=20, x=240) lands there once the padding is cut."""
    h, w, size = 100, 300, 96
    y_in, x_in = 32 + 20 * 0.32, 240 * 0.32
    yy, xx = np.mgrid[:size, :size]
    cam = np.exp(-((yy + 0.5 - y_in) ** 2 + (xx + 0.5 - x_in) ** 2) / 8.0)
    cam8 = np.round(cam / cam.max() * 255).astype(np.uint8)
    cut = gradcam.image_map(cam8, (h, w), size, "letterbox")
    assert cut.shape == (32, 96) and cut.max() == 255
    image = png_of(np.zeros((h, w), np.uint8))
    heat, _overlay = gradcam.overlay(image, cut, DecodeLimits())
    assert heat.shape == (h, w)
    py, px = peak(heat)
    assert abs(py - 20) <= 2 and abs(px - 240) <= 2
    # Laid on the image uncut, the same map would put the peak 20 px too low.
    uncut, _ = gradcam.overlay(image, cam8, DecodeLimits())
    assert abs(peak(uncut)[0] - 20) > 15
    # A stretched input's map already covers the image: unchanged.
    assert gradcam.image_map(cam8, (h, w), size, "stretch") is cam8


def test_explain_puts_the_peak_on_the_defect_of_a_non_square_image(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(gradcam.GradCam, "run", brightness_cam)
    meta = ModelMetadata(
        architecture="defectnet",
        class_names=["ok", "dent"],
        img_size=64,
        in_channels=1,
        normalisation={"mean": [0.4], "std": [0.2]},
        resize="letterbox",
    )
    clf = Classifier(LoadedModel(build_model("defectnet", 2, 1).eval(), meta), backend="torch")
    ex = clf.explain(png_of(blob_strip()))
    assert ex.heatmap.shape == (40, 120)
    py, px = peak(ex.heatmap)
    assert abs(py - 6) <= 2 and abs(px - 100) <= 2


def test_batch_explainer_falls_back_to_torch_when_onnx_cannot_explain(
    trained: Classifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.vision.onnx_export import OnnxUnavailable

    model, _mean, _std = trained.cam_copy()
    onnx_clf = Classifier(LoadedModel(model=model, metadata=trained.metadata), backend="onnx")

    def refuse(*_args: object) -> None:
        raise OnnxUnavailable("exporter refused the graph")

    monkeypatch.setattr(gradcam.OnnxGradCam, "__init__", refuse)
    assert isinstance(onnx_clf.batch_explainer(), gradcam.GradCam)
