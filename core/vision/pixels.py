"""Pillow's pixel modes to the two arrays the product works on: HxWx3 uint8 RGB or HxW uint8
grayscale. 16- and 32-bit and float pixels are scaled by their nominal range, palettes and alpha
composited on white, everything else converted by Pillow (core.vision.images decodes safely
first, then calls ``to_uint8``)."""

from __future__ import annotations

import numpy as np
from PIL import Image

# Alpha is composited on white: inspection photos with transparency are almost always product
# cut-outs or scans, and white is how every viewer (browser, OS preview) shows them.
ALPHA_BACKGROUND: tuple[int, int, int] = (255, 255, 255)

SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


class UnsupportedModeError(Exception):
    """A pixel mode Pillow cannot convert to RGB."""


def to_uint8(im: Image.Image, grayscale: bool) -> np.ndarray:
    """Normalise any Pillow mode to uint8 RGB or L and return a writable array."""
    mode = im.mode
    if mode in SIXTEEN_BIT_MODES or mode in {"I", "F"}:
        gray = wide_to_uint8(np.asarray(im), mode)
        return gray if grayscale else np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P":
        # Palette transparency must be turned into real alpha before compositing.
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode not in {"L", "RGB"} and mode not in ALPHA_MODES:
        try:
            im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...
        except ValueError:
            raise UnsupportedModeError(mode) from None
    if im.mode in ALPHA_MODES:
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, ALPHA_BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        im = background
    target = "L" if grayscale else "RGB"
    if im.mode != target:
        im = im.convert(target)
    # np.array (not asarray): Pillow hands numpy a bytes object, which would be read-only.
    return np.array(im)


def wide_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """Scale 16/32-bit integer or float pixels to 8 bits by their nominal range."""
    if mode in SIXTEEN_BIT_MODES:
        # Full 16-bit range: keep the top byte (65535 -> 255, 32768 -> 128), never clip.
        return (arr.astype(np.uint16) >> 8).astype(np.uint8)
    if mode == "I":
        lo_i, hi_i = int(arr.min()), int(arr.max())
        if lo_i >= 0 and hi_i <= 255:
            return arr.astype(np.uint8)
        if lo_i >= 0 and hi_i <= 65535:
            # A 16-bit image that Pillow widened to 32 bits.
            return (arr >> 8).astype(np.uint8)
    # From here one float32 copy is worked on in place: a 390-byte TIFF may declare 30 Mpx of
    # floats, and float64 temporaries took 1 GB and 2 s (8-bit output needs no more precision).
    arr = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0, copy=False)
    lo, hi = float(arr.min()), float(arr.max())
    if mode == "F" and lo >= 0.0 and hi <= 1.0:
        scale = 255.0
    elif hi > lo:  # no nominal range: stretch what is there
        arr -= lo
        scale = 255.0 / (hi - lo)
    else:
        return np.zeros(arr.shape, dtype=np.uint8)
    arr *= scale
    return np.rint(arr, out=arr).astype(np.uint8)
