"""Batched softmax (or logits) of a model on a uint8 image tensor, as training measures it."""

from __future__ import annotations

import torch
from torch import nn

from core.vision import preprocess


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
