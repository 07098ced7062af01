"""Grad-CAM for a batch in one pass, and the overlay a reviewer sees: the only implementation.

Ingest, the heatmap backfill and ``Classifier.explain`` (the pages' "Compute heatmap") all run
``GradCam`` and draw with ``overlay``, so a stored heatmap and a freshly computed one are the same
picture. What is stored for a flagged part is its Grad-CAM map at the model layer's resolution (a
few hundred bytes of 8-bit grayscale PNG), not a full-size overlay: encoding a 300x300 colour PNG
costs more than classifying the image, and would halve ingest speed. ``render_overlay`` turns the
stored map into the overlay a reviewer sees in a few milliseconds, without the model.

Importing this module does not import torch (ingest imports it at the top); ``GradCam`` loads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from core.vision import images, preprocess

if TYPE_CHECKING:
    from core.vision.classifier import Classifier

HEATMAP_MAX_SIDE = 1024


def _normalise_map(m: np.ndarray) -> np.ndarray:
    top = float(m.max())
    scaled = np.clip(m / top, 0.0, 1.0) if top > 0 else np.zeros_like(m)
    return np.round(scaled * 255).astype(np.uint8)


class GradCam:
    """Classify and explain a batch in one forward pass, on a private copy of the model.

    The math is captum's ``LayerGradCam`` (gradient of the class score with respect to the
    layer's output, averaged per channel, weighted sum of the channels, ReLU); the tests check
    the two agree on a trained model. Here the layer's output is the only tensor that records
    gradients, so the backward pass covers just the classifier head and costs next to nothing,
    and the copy runs channels-last, which is twice as fast on the CPU. The copy is private, so
    the shared classifier is never mutated and no lock is needed.
    """

    def __init__(self, clf: Classifier) -> None:
        # Deferred: torch (and the registry, which imports it) load when a heatmap is first made.
        import torch

        from core.vision.architectures import fold_batchnorm, get_spec

        self.clf = clf
        self.temperature = float(clf.metadata.temperature)
        model, self.mean, self.std = clf.cam_copy()
        spec = get_spec(clf.metadata.architecture)
        # Every BatchNorm but the Grad-CAM layer's is folded into its convolution: the same
        # activations at the layer in fewer passes over memory (about a third off the forward).
        fold_batchnorm(model, keep=spec.cam_layer(model))
        for p in model.parameters():
            p.requires_grad_(False)
        self.model = model.to(memory_format=torch.channels_last)
        self.layer = spec.cam_layer(self.model)

    def run(
        self, inputs: Sequence[np.ndarray], choose: Any
    ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """(probabilities N x K, {row: uint8 map}) for the rows ``choose(probabilities)`` names.

        choose returns (row, class index) pairs: which images to explain, for which class.
        """
        import torch  # deferred, see __init__ (already loaded by then)

        x = preprocess.normalise(torch.from_numpy(np.stack(inputs)), self.mean, self.std)
        x = x.contiguous(memory_format=torch.channels_last)
        captured: list[Any] = []

        def hook(_module: Any, _inputs: Any, output: Any) -> Any:
            leaf = output.detach().requires_grad_(True)
            captured.append(leaf)
            return leaf

        handle = self.layer.register_forward_hook(hook)
        try:
            with torch.enable_grad():
                logits = self.model(x)
                # Calibrated like Classifier's; the maps use the raw class score (dividing it
                # by T would only scale a map that is normalised to its peak anyway).
                probs = torch.softmax(logits.detach().float() / self.temperature, dim=1).numpy()
                wanted = list(choose(probs))
                if not wanted:
                    return probs, {}
                rows = torch.tensor([r for r, _ in wanted])
                classes = torch.tensor([k for _, k in wanted])
                (grads,) = torch.autograd.grad(logits[rows, classes].sum(), captured[0])
        finally:
            handle.remove()
        acts = captured[0].detach()[rows]
        weights = grads[rows].mean(dim=(2, 3), keepdim=True)
        cams = torch.relu((weights * acts).sum(dim=1)).float().numpy()
        return probs, {r: _normalise_map(c) for (r, _), c in zip(wanted, cams, strict=True)}

    def explain(self, inputs: Sequence[np.ndarray], targets: Sequence[int]) -> list[np.ndarray]:
        """Maps (uint8, layer resolution, peak 255) of inputs for the given classes."""
        if not inputs:
            return []
        _probs, maps = self.run(inputs, lambda _p: list(enumerate(targets)))
        return [maps[i] for i in range(len(inputs))]


class OnnxGradCam:
    """The same maps and probabilities as GradCam, from one ONNX Runtime pass and numpy.

    For an architecture whose Grad-CAM layer is conv2 of the last residual block followed by
    y = relu(bn2(A) + shortcut), a global average pool and a Linear layer W (ArchSpec
    ``closed_form_cam``), the gradient of class k's score at A[c, i, j] is
    W[k, c] * g_c * [y[c, i, j] > 0] / (h w), with g_c = gamma_c / sqrt(var_c + eps) of bn2. Its
    spatial mean, Grad-CAM's channel weight, is W[k, c] * g_c * share_c / (h w), share_c being the
    fraction of y's channel c above zero; the map is relu(sum_c weight_c A[c]), normalised to its
    peak (so the 1 / (h w) drops out). The exported graph returns probabilities, A and share_c, so
    ingest classifies and explains with ONNX Runtime, which is faster than PyTorch on the CPU.
    tests/core/vision/test_gradcam.py checks it against GradCam on a trained model.
    """

    def __init__(self, clf: Classifier, num_threads: int) -> None:
        # Deferred: torch and the exporter load when heatmaps are first made.
        import torch

        from core.vision.architectures import cam_block, classifier_head, get_spec
        from core.vision.onnx_export import explain_session

        spec = get_spec(clf.metadata.architecture)
        if not spec.closed_form_cam:
            raise ValueError(f"{spec.name} has no closed-form Grad-CAM head")
        model, _mean, _std = clf.cam_copy()
        layer = spec.cam_layer(model)
        block = cam_block(model, layer)
        bn = block.bn2
        assert isinstance(bn, torch.nn.BatchNorm2d) and bn.running_var is not None
        with torch.no_grad():
            var = bn.running_var.double()
            gain = (bn.weight.double() / torch.sqrt(var + bn.eps)).numpy()
            weight = classifier_head(model)[1].weight.numpy().astype(np.float64)
        self.channel_gain = weight * gain[None, :]  # K x C: W[k, c] * g_c
        self.session = explain_session(model, clf.metadata, layer, block, num_threads)

    def run(
        self, inputs: Sequence[np.ndarray], choose: Any
    ) -> tuple[np.ndarray, dict[int, np.ndarray]]:
        """(probabilities N x K, {row: uint8 map}) for the rows ``choose(probabilities)`` names."""
        x = np.stack(inputs).astype(np.float32) / np.float32(255.0)
        probs, acts, share = self.session.run(None, {"pixels": x})
        probs = np.asarray(probs, dtype=np.float64)
        wanted = list(choose(probs))
        maps: dict[int, np.ndarray] = {}
        for row, k in wanted:
            weights = self.channel_gain[k] * share[row]  # C
            cam = np.maximum(np.tensordot(weights, acts[row], axes=(0, 0)), 0.0)
            maps[row] = _normalise_map(cam.astype(np.float32))
        return probs, maps

    def explain(self, inputs: Sequence[np.ndarray], targets: Sequence[int]) -> list[np.ndarray]:
        """Maps (uint8, layer resolution, peak 255) of inputs for the given classes."""
        if not inputs:
            return []
        _probs, maps = self.run(inputs, lambda _p: list(enumerate(targets)))
        return [maps[i] for i in range(len(inputs))]


def cam_batch(
    clf: Classifier, inputs: Sequence[np.ndarray], targets: Sequence[int]
) -> list[np.ndarray]:
    """Grad-CAM maps (uint8, layer resolution, peak 255) of prepared model inputs."""
    return GradCam(clf).explain(inputs, targets)


def image_map(cam: np.ndarray, image_hw: tuple[int, int], img_size: int, resize: str) -> np.ndarray:
    """The part of a uint8 Grad-CAM map that lies over the image, for an input made by ``resize``.

    ``image_hw`` is the (height, width) of the pixels the input was prepared from. A stretched
    input covers the whole image, so its map is returned as is (and stored maps stay as they
    were). A letterboxed one holds the image in a box of the S x S input: the map is upsampled to
    S x S, the padding cut off, and the peak scaled back to 255, so the result has the image's
    aspect ratio and ``overlay`` lays it on the image point for point.
    """
    if resize != "letterbox":
        return cam
    top, left, h, w = preprocess.letterbox_box(image_hw[0], image_hw[1], img_size)
    if (h, w) == (img_size, img_size):
        return cam
    full = cv2.resize(cam.astype(np.float32), (img_size, img_size), interpolation=cv2.INTER_LINEAR)
    return _normalise_map(np.ascontiguousarray(full[top : top + h, left : left + w]))


def encode_map(cam: np.ndarray) -> bytes:
    """The stored form of a Grad-CAM map: an 8-bit grayscale PNG."""
    return images.encode_png(cam)


def overlay(
    image: bytes,
    cam: np.ndarray,
    limits: images.DecodeLimits,
    name: str = "image",
    max_side: int = HEATMAP_MAX_SIDE,
) -> tuple[np.ndarray, np.ndarray]:
    """(heatmap float32 H x W on [0, 1], RGB overlay uint8) of a uint8 map over its image.

    The image is shown at its own size, scaled down to fit max_side; the map (already cut to the
    image by ``image_map``) is resized onto it.
    """
    rgb = images.decode(image, name=name, limits=limits, max_side=max_side)
    h, w = rgb.shape[:2]
    if max(h, w) > max_side:
        f = max_side / max(h, w)
        h, w = max(1, round(h * f)), max(1, round(w * f))
        rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
    heat = cv2.resize(cam.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    top = float(heat.max())
    heat = np.clip(heat / top, 0.0, 1.0) if top > 0 else np.zeros_like(heat)
    colour = cv2.applyColorMap(np.round(heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    return heat, cv2.addWeighted(rgb, 0.55, colour, 0.45, 0.0)


def render_overlay(image: bytes, cam_png: bytes, limits: images.DecodeLimits) -> bytes:
    """The reviewer's picture from a stored map: the image with the map in colour on top (PNG)."""
    cam = images.decode(cam_png, limits=limits, grayscale=True)
    return images.encode_png(overlay(image, cam, limits)[1])
