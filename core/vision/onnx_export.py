"""ONNX export of a model artifact, checked against PyTorch, and the ONNX Runtime session.

The exported graph takes [0, 1] pixels and returns calibrated probabilities: input
normalisation and the temperature are folded in, so every backend answers the same.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.onnx.errors import OnnxExporterError

from core.errors import ModelError
from core.files import write_atomic
from core.vision import preprocess
from core.vision.artifacts import LoadedModel

log = logging.getLogger(__name__)


class _Normalised(nn.Module):
    """Model with input normalisation and temperature folded in: [0, 1] pixels in, calibrated
    probabilities softmax(logits / T) out."""

    def __init__(
        self, model: nn.Module, mean: list[float], std: list[float], temperature: float = 1.0
    ) -> None:
        super().__init__()
        self.model = model
        self.temperature = float(temperature)
        mean_t, std_t = preprocess.normalisation_tensors(mean, std)
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.get_buffer("mean"), self.get_buffer("std")
        logits = self.model(preprocess.standardise(x, mean, std))
        if self.temperature != 1.0:  # T = 1 (older models) exports the graph exactly as before
            logits = logits / self.temperature
        return torch.softmax(logits, dim=1)


def onnx_bytes(loaded: LoadedModel) -> bytes:
    """ONNX graph: input 'pixels' N x C x S x S float in [0, 1] -> output 'probabilities'."""
    meta = loaded.metadata
    wrapped = _Normalised(
        loaded.model, meta.normalisation["mean"], meta.normalisation["std"], meta.temperature
    )
    return _export(wrapped, meta, ["probabilities"])


def _export(wrapped: nn.Module, meta: Any, output_names: list[str]) -> bytes:
    """The ONNX bytes of a wrapped model: input 'pixels', a dynamic batch on every output."""
    wrapped.eval()
    dummy = torch.rand(2, meta.in_channels, meta.img_size, meta.img_size)
    buf = io.BytesIO()
    # The TorchScript exporter (dynamo=False) needs no onnxscript and handles these plain CNNs;
    # its deprecation warning is expected until onnxscript becomes a dependency.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapped,
            (dummy,),
            buf,  # type: ignore[arg-type]  # a file object works; the stub says path only
            input_names=["pixels"],
            output_names=output_names,
            dynamic_axes={"pixels": {0: "batch"}, **{n: {0: "batch"} for n in output_names}},
            opset_version=17,
            dynamo=False,
        )
    return buf.getvalue()


class _Explained(nn.Module):
    """_Normalised plus what Grad-CAM needs, for a closed-form-CAM architecture: the layer's
    activations A (N x C x h x w) and, per channel, the share of the block's outputs that pass
    its final ReLU (N x C)."""

    def __init__(self, normalised: _Normalised, layer: nn.Module, block: nn.Module) -> None:
        super().__init__()
        self.normalised = normalised
        self._seen: dict[str, torch.Tensor] = {}
        layer.register_forward_hook(lambda _m, _i, out: self._seen.__setitem__("a", out))
        block.register_forward_hook(lambda _m, _i, out: self._seen.__setitem__("y", out))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        probs = self.normalised(x)
        a, y = self._seen["a"], self._seen["y"]
        return probs, a, (y > 0).float().mean(dim=(2, 3))


def explain_session(
    model: nn.Module, meta: Any, layer: nn.Module, block: nn.Module, num_threads: int
) -> Any:
    """An ONNX Runtime session: 'pixels' -> 'probabilities', 'activations', 'active_share'
    (see _Explained); OnnxUnavailable when ONNX Runtime cannot run it."""
    wrapped = _Explained(
        _Normalised(model, meta.normalisation["mean"], meta.normalisation["std"],
                    meta.temperature),
        layer, block,
    )  # fmt: skip
    with _unavailable_as_error():
        return ort_session(
            _export(wrapped, meta, ["probabilities", "activations", "active_share"]),
            num_threads,
        )


def verify_onnx(loaded: LoadedModel, model_bytes: bytes, atol: float = 1e-4) -> float:
    """Largest |ORT - torch| probability difference on a random batch; ModelError beyond atol."""
    import onnxruntime as ort  # deferred: only export and the ONNX backend need it

    meta = loaded.metadata
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(3, meta.in_channels, meta.img_size, meta.img_size, generator=gen)
    mean, std = preprocess.normalisation_tensors(
        meta.normalisation["mean"], meta.normalisation["std"]
    )
    with torch.no_grad():
        logits = loaded.model(preprocess.standardise(x, mean, std))
        ref = torch.softmax(logits / meta.temperature, dim=1).numpy()
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"pixels": x.numpy()})[0]
    diff = float(np.abs(np.asarray(got) - ref).max())
    if not diff <= atol:
        raise ModelError(f"ONNX export differs from torch by {diff:.2e} (> {atol:.0e})")
    return diff


class OnnxUnavailable(ModelError):
    """ONNX Runtime cannot run this model (not installed, export failed, or outputs differ)."""


def ort_session(model_bytes: bytes, num_threads: int) -> Any:
    """A CPU ONNX Runtime session of a graph, with the product's thread settings."""
    import onnxruntime as ort  # deferred: heavy, and only the ONNX backend needs it

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])


@contextlib.contextmanager
def _unavailable_as_error() -> Iterator[None]:
    """Turn the failures that mean "ONNX Runtime cannot run this model" into OnnxUnavailable:
    onnxruntime or onnx missing, the exporter refusing the graph, ONNX Runtime's own errors, or
    outputs that differ from torch. Anything else is a bug and propagates."""
    try:
        # Deferred: heavy, and only the ONNX backend needs it (ort_session imports the rest).
        from onnxruntime.capi import onnxruntime_pybind11_state as ort_state
    except ImportError as e:
        raise OnnxUnavailable(f"onnxruntime is not installed ({e})") from e
    # Every exception type ONNX Runtime's native layer raises (Fail, InvalidGraph, ...).
    ort_errors = [v for v in vars(ort_state).values() if isinstance(v, type)]
    unavailable: tuple[type[BaseException], ...] = (
        ImportError,
        OnnxExporterError,
        ModelError,
        *(e for e in ort_errors if issubclass(e, Exception)),
    )
    try:
        yield
    except unavailable as e:
        raise OnnxUnavailable(str(e)) from e


def onnx_session(loaded: LoadedModel, num_threads: int) -> Any:
    """An ONNX Runtime session of the model, checked against torch; OnnxUnavailable otherwise."""
    with _unavailable_as_error():
        data = onnx_bytes(loaded)
        verify_onnx(loaded, data)
        return ort_session(data, num_threads)


def export_onnx(loaded: LoadedModel, out_path: Path) -> Path:
    """Export to ONNX (dynamic batch), verify against torch with ONNX Runtime, write atomically."""
    data = onnx_bytes(loaded)
    diff = verify_onnx(loaded, data)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_path, data)
    log.info("exported %s (max |diff| vs torch %.1e)", out_path.name, diff)
    return out_path
