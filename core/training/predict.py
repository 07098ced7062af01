"""Batched softmax (or logits) of a model on a uint8 image tensor, as training measures it, and
the temperature fitted on the validation split's logits after training."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from core.training.data import TrainingData
from core.vision import calibration, preprocess

log = logging.getLogger(__name__)


@torch.no_grad()
def predict_tensor(
    model: nn.Module,
    x: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    batch_size: int = 256,
    amp: bool = False,
    channels_last: bool = False,
    logits: bool = False,
) -> torch.Tensor:
    """Softmax probabilities (float32, on x's device) for a uint8 N x C x S x S tensor.

    ``logits=True`` returns the raw logits instead (temperature scaling fits on them).
    """
    model.eval()
    outs = []
    for i in range(0, x.shape[0], batch_size):
        xb = preprocess.normalise(x[i : i + batch_size], mean, std)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            out = model(xb)
        outs.append(out.float() if logits else torch.softmax(out.float(), dim=1))
    return torch.cat(outs) if outs else torch.empty(0)


def calibrate(
    model: nn.Module, data: TrainingData, batch_size: int, channels_last: bool = False
) -> tuple[float, dict[str, Any]]:
    """Temperature scaling of the kept model on the validation logits: (T, report).

    The logits come in float32 (no autocast), as the product's inference computes them. Without
    a validation split T stays 1 and the report says why.
    """
    if data.x_val is None or data.y_val is None:
        return 1.0, calibration.not_calibrated(
            "no validation split: nothing held out to fit the temperature on"
        )
    logits = predict_tensor(
        model, data.x_val, data.mean, data.std, batch_size,
        amp=False, channels_last=channels_last, logits=True,
    )  # fmt: skip
    t, report = calibration.calibrate(logits.cpu().numpy(), data.y_val, fitted_on="val")
    log.info(
        "temperature %.3f on %d validation images: ECE %.4f -> %.4f",
        t, report.get("images", 0), report.get("ece_before", 0.0), report.get("ece_after", 0.0),
    )  # fmt: skip
    return t, report
