"""Batched softmax (or logits) of a model on a uint8 image tensor, as training measures it, and
the temperature and good-class acceptance threshold fitted on the validation split after
training."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from core.training.data import TrainingData
from core.vision import acceptance, calibration, preprocess

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
    model: nn.Module,
    data: TrainingData,
    batch_size: int,
    channels_last: bool = False,
    *,
    class_names: Sequence[str],
    false_reject: float = acceptance.DEFAULT_FALSE_REJECT,
) -> tuple[float, dict[str, Any], dict[str, Any]]:
    """Temperature scaling of the kept model on the validation logits, then the good-class
    acceptance threshold on the calibrated probabilities: (T, its report, the acceptance report).

    The logits come in float32 (no autocast), as the product's inference computes them. Without
    a validation split T stays 1, the model decides by argmax, and the reports say why.
    """
    if data.x_val is None or data.y_val is None:
        why = "no validation split: nothing held out to fit the temperature on"
        return 1.0, calibration.not_calibrated(why), acceptance.not_fitted(why)
    logits = predict_tensor(
        model, data.x_val, data.mean, data.std, batch_size,
        amp=False, channels_last=channels_last, logits=True,
    ).cpu().numpy()  # fmt: skip
    t, report = calibration.calibrate(logits, data.y_val, fitted_on="val")
    log.info(
        "temperature %.3f on %d validation images: ECE %.4f -> %.4f",
        t, report.get("images", 0), report.get("ece_before", 0.0), report.get("ece_after", 0.0),
    )  # fmt: skip
    probs = calibration.softmax(logits, t)
    _threshold, accept = acceptance.fit_threshold(
        probs, data.y_val, class_names, false_reject=false_reject
    )
    if accept.get("fitted"):
        log.info(
            "good parts accepted at P(good) >= %.4f (%d of %d good validation parts reach it; "
            "validation escapes %d -> %d, false rejects %d -> %d)",
            accept["threshold"], accept["good_images"] - accept["false_rejects"],
            accept["good_images"], accept["escapes_argmax"], accept["escapes"],
            accept["false_rejects_argmax"], accept["false_rejects"],
        )  # fmt: skip
    else:
        log.info("no acceptance threshold (argmax decides): %s", accept.get("reason"))
    return t, report, accept
