"""Batched classification of image bytes and Grad-CAM heatmaps for one loaded model.

One ``Classifier`` is meant to be cached and shared by every browser session and the ingest
worker, so it is never mutated after construction: predictions run on the shared model without
hooks (safe to call from many threads), and Grad-CAM (core.vision.gradcam) runs on a private copy
under a lock, because it attaches a hook to the module it explains.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.errors import InvalidImageError, ModelError
from core.vision import acceptance, gradcam, preprocess
from core.vision.artifacts import LoadedModel, ModelMetadata, load_model
from core.vision.device import resolve_device
from core.vision.images import DecodeLimits, encode_png
from core.vision.onnx_export import OnnxUnavailable, onnx_session

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one image."""

    name: str
    class_name: str
    class_index: int
    confidence: float
    probabilities: dict[str, float]
    # P(good) of a good call the model's acceptance threshold held back (the class above is then
    # the likeliest defect); None when the most probable class stood.
    held_back: float | None = None


@dataclass(frozen=True)
class Explanation:
    """Grad-CAM of the predicted class: heatmap in [0, 1] at image size and a PNG overlay."""

    heatmap: np.ndarray  # float32 H x W in [0, 1]
    overlay_png: bytes
    class_name: str
    confidence: float


class Classifier:
    """A verified model ready to classify and explain images."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        device: str = "cpu",
        num_threads: int | None = None,
        backend: str = "auto",
        limits: DecodeLimits | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.metadata: ModelMetadata = loaded.metadata
        self.class_names: list[str] = list(loaded.metadata.class_names)
        self.device = resolve_device(device)
        self.limits = limits or DecodeLimits()
        self.num_threads = num_threads or os.cpu_count() or 1
        meta = loaded.metadata
        # Probabilities are softmax(logits / T) on every path (core.vision.calibration).
        self.temperature = float(meta.temperature)
        # A good call stands only at P(good) >= the fitted threshold (core.vision.acceptance).
        self.good_indices, self.acceptance_threshold = acceptance.stored_rule(
            meta.acceptance, self.class_names
        )
        self._model = loaded.model.to(self.device).eval()
        for p in self._model.parameters():
            p.requires_grad_(False)
        self._mean, self._std = preprocess.normalisation_tensors(
            meta.normalisation["mean"], meta.normalisation["std"], self.device
        )
        # explain() reuses one private copy (copying per call would double its latency); the
        # hook Grad-CAM attaches makes that copy one-call-at-a-time, hence the lock.
        self._explainer = gradcam.GradCam(self)
        self._explain_lock = threading.Lock()
        self._onnx_cam: gradcam.OnnxGradCam | None = None
        self._onnx_cam_lock = threading.Lock()
        self._ort: Any = None
        self.backend = "torch"
        # ONNX Runtime is faster on CPU for these small CNNs (bench/inference_speed.py).
        if backend == "onnx" or (backend == "auto" and self.device.type == "cpu"):
            self._ort = self._make_ort_session(loaded, strict=backend == "onnx")
            if self._ort is not None:
                self.backend = "onnx"
        if backend == "onnx" and self.device.type != "cpu":
            raise ValueError("the onnx backend runs on the CPU only")

    def _make_ort_session(self, loaded: LoadedModel, strict: bool) -> Any:
        """ONNX Runtime session checked against torch; None (torch fallback) when not strict.

        Only "ONNX Runtime cannot run this model" falls back; any other error is a bug and raises.
        """
        try:
            return onnx_session(loaded, self.num_threads)
        except OnnxUnavailable as e:
            if strict:
                raise ModelError(f"cannot use ONNX Runtime for this model: {e}") from e
            log.warning("ONNX Runtime unavailable for this model, using torch: %s", e)
            return None

    @classmethod
    def from_artifact(
        cls,
        path: Path,
        *,
        device: str = "cpu",
        num_threads: int | None = None,
        backend: str = "auto",
        limits: DecodeLimits | None = None,
    ) -> Classifier:
        """Load and verify an artifact (directory or its model.json) and wrap it."""
        loaded = load_model(Path(path))
        return cls(loaded, device=device, num_threads=num_threads, backend=backend, limits=limits)

    @property
    def in_channels(self) -> int:
        """1 for grayscale models, 3 for RGB."""
        return self.metadata.in_channels

    @property
    def img_size(self) -> int:
        """Input side in pixels."""
        return self.metadata.img_size

    @property
    def resize(self) -> str:
        """How images are fitted to the input: "letterbox" or "stretch" (old models)."""
        return self.metadata.resize

    def prepare(self, image: np.ndarray) -> np.ndarray:
        """Decoded HxW / HxWx3 uint8 image -> the model's CxSxS uint8 input."""
        return preprocess.resize_for_model(image, self.img_size, self.in_channels, self.resize)

    def image_map(self, cam: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
        """A Grad-CAM map of a prepared input -> the map over the image itself (padding cut)."""
        return gradcam.image_map(cam, image_hw, self.img_size, self.resize)

    def _pixels(self, data: bytes, name: str) -> np.ndarray:
        return preprocess.decode_for_model(
            data,
            name=name,
            limits=self.limits,
            img_size=self.img_size,
            in_channels=self.in_channels,
        )

    def _decode(self, data: bytes, name: str) -> np.ndarray:
        return self.prepare(self._pixels(data, name))

    def _probabilities(self, batch: np.ndarray) -> np.ndarray:
        """N x C x S x S uint8 -> N x K float32 calibrated probabilities (the ONNX graph
        divides by T itself)."""
        if self._ort is not None:
            x = preprocess.unit_pixels(batch)
            return np.asarray(self._ort.run(None, {"pixels": x})[0], dtype=np.float32)
        with torch.inference_mode():
            xt = torch.from_numpy(batch).to(self.device)
            logits = self._model(preprocess.normalise(xt, self._mean, self._std))
            return torch.softmax(logits.float() / self.temperature, dim=1).cpu().numpy()

    def decide(self, probs: np.ndarray) -> int:
        """The class index for one row of calibrated probabilities: argmax, unless a good call
        falls short of the model's acceptance threshold (then the likeliest defect class)."""
        return int(acceptance.decide(probs, self.good_indices, self.acceptance_threshold)[0])

    def to_prediction(self, name: str, probs: np.ndarray) -> Prediction:
        """The Prediction for one row of class probabilities (the class ``decide`` names)."""
        k = self.decide(probs)
        held = None if k == int(probs.argmax()) else float(probs[self.good_indices].sum())
        return Prediction(
            name=name,
            class_name=self.class_names[k],
            class_index=k,
            confidence=float(probs[k]),
            probabilities={c: float(p) for c, p in zip(self.class_names, probs, strict=True)},
            held_back=held,
        )

    def predict_prepared(
        self, inputs: Sequence[np.ndarray], names: Sequence[str] | None = None, batch_size: int = 64
    ) -> list[Prediction]:
        """Classify inputs already in model shape (CxSxS uint8)."""
        names = list(names) if names is not None else [f"image {i}" for i in range(len(inputs))]
        out: list[Prediction] = []
        for i in range(0, len(inputs), batch_size):
            probs = self._probabilities(np.stack(inputs[i : i + batch_size]))
            batch_names = names[i : i + batch_size]
            out += [self.to_prediction(n, p) for n, p in zip(batch_names, probs, strict=True)]
        return out

    def predict_arrays(
        self, images: Sequence[np.ndarray], names: Sequence[str] | None = None, batch_size: int = 64
    ) -> list[Prediction]:
        """Classify decoded images (HxW or HxWx3 uint8, any size)."""
        return self.predict_prepared([self.prepare(im) for im in images], names, batch_size)

    def predict_bytes(
        self, datas: Sequence[bytes], names: Sequence[str] | None = None, batch_size: int = 64
    ) -> list[Prediction | InvalidImageError]:
        """Decode and classify encoded images; a bad image yields its InvalidImageError in place."""
        names = list(names) if names is not None else [f"image {i}" for i in range(len(datas))]
        if len(names) != len(datas):
            raise ValueError(f"{len(datas)} images but {len(names)} names")

        def safe_decode(item: tuple[bytes, str]) -> np.ndarray | InvalidImageError:
            try:
                return self._decode(item[0], item[1])
            except InvalidImageError as e:
                return e

        results: list[Prediction | InvalidImageError] = []
        # Pillow and OpenCV release the GIL while decoding and resizing, so threads scale.
        with ThreadPoolExecutor(max_workers=self.num_threads) as pool:
            for i in range(0, len(datas), batch_size):
                chunk = list(zip(datas[i : i + batch_size], names[i : i + batch_size], strict=True))
                decoded = list(pool.map(safe_decode, chunk))
                good = [
                    (d, n)
                    for d, (_, n) in zip(decoded, chunk, strict=True)
                    if isinstance(d, np.ndarray)
                ]
                preds = iter(
                    self.predict_prepared([d for d, _ in good], [n for _, n in good])
                    if good
                    else []
                )
                results += [next(preds) if isinstance(d, np.ndarray) else d for d in decoded]
        return results

    def cam_copy(self) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
        """A private CPU copy of the model for Grad-CAM, with its CPU mean and std.

        Copying is safe while other threads predict: inference never changes the module.
        """
        model = copy.deepcopy(self._model).cpu().eval()
        return model, self._mean.cpu(), self._std.cpu()

    def batch_explainer(self) -> gradcam.GradCam | gradcam.OnnxGradCam:
        """A Grad-CAM for batches (ingest, backfill): ONNX Runtime's when this classifier runs
        ONNX and the architecture has the closed form (made once, safe to share between threads),
        else a new PyTorch GradCam with its private model copy (one caller at a time)."""
        from core.vision.architectures import get_spec  # deferred: the registry imports torch

        if self.backend != "onnx" or not get_spec(self.metadata.architecture).closed_form_cam:
            return gradcam.GradCam(self)
        with self._onnx_cam_lock:
            if self._onnx_cam is None:
                try:
                    self._onnx_cam = gradcam.OnnxGradCam(self, self.num_threads)
                except OnnxUnavailable as e:  # the same fallback as classification's
                    log.warning("Grad-CAM through ONNX Runtime unavailable (%s); using torch", e)
                    return gradcam.GradCam(self)
            return self._onnx_cam

    def explain(
        self, image_bytes: bytes, name: str = "image", max_side: int = gradcam.HEATMAP_MAX_SIDE
    ) -> Explanation:
        """Grad-CAM of the predicted class, as a heatmap and the reviewer's PNG overlay.

        The same batched Grad-CAM and overlay that ingest stores, run on one image. The heatmap
        has the decoded image's size, scaled down to fit ``max_side`` when larger.
        """
        pixels = self._pixels(image_bytes, name)
        with self._explain_lock:
            probs, maps = self._explainer.run(
                [self.prepare(pixels)], lambda p: [(0, self.decide(p[0]))]
            )
        k = self.decide(probs[0])
        cam = self.image_map(maps[0], pixels.shape[:2])
        heatmap, overlay = gradcam.overlay(image_bytes, cam, self.limits, name, max_side)
        return Explanation(
            heatmap=heatmap,
            overlay_png=encode_png(overlay),
            class_name=self.class_names[k],
            confidence=float(probs[0][k]),
        )
