"""Grad-CAM heatmap latency for one image (decode, forward, backward, overlay PNG).

Times ``Classifier.explain`` (the one batched Grad-CAM in core/vision/gradcam.py, run on one
image) and, in the same run on the same images, the reference it replaced: captum's
``LayerGradCam`` on a private model copy, upsampled with ``F.interpolate``, the same overlay.
Also reports how closely the two maps agree (Pearson correlation of the upsampled heatmaps).

Usage: python bench/heatmap_speed.py --model bench/out/models/neu [--n 30]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from common import emit, snapshot

from core.vision import images
from core.vision.architectures import get_spec
from core.vision.classifier import Classifier


def captum_heatmap(
    clf: Classifier, model: torch.nn.Module, layer: torch.nn.Module, data: bytes
) -> np.ndarray:
    """The previous explain(): captum LayerGradCam, float upsampling, overlay, PNG encode."""
    rgb = images.decode(data, limits=clf.limits, max_side=1024)
    h, w = rgb.shape[:2]
    # The model input is decoded as the classifier decodes it, so both maps see the same pixels.
    small = images.decode(
        data, limits=clf.limits, grayscale=clf.in_channels == 1, max_side=clf.img_size
    )
    x_in = clf.prepare(small)
    mean, std = clf.cam_copy()[1:]
    x = (torch.from_numpy(x_in[None]).float() / 255.0 - mean) / std
    with torch.no_grad():
        k = int(torch.softmax(model(x), dim=1)[0].argmax())
    attr = LayerGradCam(model, layer).attribute(x, target=k, relu_attributions=True).detach()
    heat = F.interpolate(attr.float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    heat = heat.numpy()
    top = float(heat.max())
    heat = np.clip(heat / top, 0.0, 1.0) if top > 0 else np.zeros_like(heat)
    colour = cv2.applyColorMap(np.round(heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB)
    images.encode_png(cv2.addWeighted(rgb, 0.55, colour, 0.45, 0.0))
    return heat


def timed(fn: Callable[[bytes], np.ndarray], datas: list[bytes]) -> tuple[list[float], list]:
    """Milliseconds per call (sorted) and the heatmaps, after one warm-up call."""
    fn(datas[0])
    ms, maps = [], []
    for d in datas:
        t = time.perf_counter()
        maps.append(fn(d))
        ms.append((time.perf_counter() - t) * 1000)
    return sorted(ms), maps


def summary(ms: list[float]) -> dict[str, float]:
    """Median, p90 and max of sorted milliseconds."""
    return {
        "ms_median": round(statistics.median(ms), 1),
        "ms_p90": round(ms[int(0.9 * (len(ms) - 1))], 1),
        "ms_max": round(ms[-1], 1),
    }


def main() -> None:
    """Time explain() and the captum reference on n validation images; print one JSON object."""
    p = argparse.ArgumentParser()
    p.add_argument("--model", type=Path, default=Path("bench/out/models/neu"))
    p.add_argument("--n", type=int, default=30)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    snap = snapshot("neu_surface")
    entries = [e for e in snap.entries if e.split == "val"][: args.n]
    clf = Classifier.from_artifact(args.model)
    datas = [(Path(snap.path) / e.file).read_bytes() for e in entries]
    load = [round(x, 2) for x in os.getloadavg()]
    ours_ms, ours = timed(lambda d: clf.explain(d).heatmap, datas)
    ref_model = clf.cam_copy()[0]
    ref_layer = get_spec(clf.metadata.architecture).cam_layer(ref_model)
    ref_ms, ref = timed(lambda d: captum_heatmap(clf, ref_model, ref_layer, d), datas)
    corr = [float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) for a, b in zip(ours, ref, strict=True)]
    emit(
        {
            "bench": "heatmap_speed",
            "n": len(ours_ms),
            "image_size": list(ours[0].shape),
            **summary(ours_ms),
            "captum_reference": summary(ref_ms),
            "heatmap_correlation_min": round(min(corr), 4),
            "heatmap_correlation_median": round(statistics.median(corr), 4),
            "loadavg_start": load,
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
    )


if __name__ == "__main__":
    main()
