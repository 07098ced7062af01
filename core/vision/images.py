"""Safe image decoding: every path that turns bytes into pixels goes through here.

Limits (bytes, pixels) are checked against the header before any pixel data is decoded, the
format is allow-listed by its magic bytes (never by the file name), and every Pillow mode is
normalised to either HxWx3 uint8 RGB or HxW uint8 grayscale.
"""

from __future__ import annotations

import hashlib
import io
import logging
import struct
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, TiffImagePlugin, UnidentifiedImageError

from core.config import Settings
from core.errors import InvalidImageError
from core.files import megabytes, read_bounded
from core.vision import pixels
from core.vision.formats import FORMAT_ALIASES, describe_unknown, sniff

log = logging.getLogger(__name__)

# File extension each stored format gets (content-addressed stores name files <sha>.<ext>).
FORMAT_EXTENSIONS: Mapping[str, str] = MappingProxyType(
    {"PNG": "png", "JPEG": "jpg", "BMP": "bmp", "TIFF": "tif", "WEBP": "webp", "GIF": "gif"}
)

# Exceptions Pillow (and the codecs under it) raise on malformed input. Decoding untrusted bytes
# must turn every one of them into InvalidImageError rather than a traceback.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    struct.error,
    zlib.error,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
)

# A TIFF's pages are counted up to this many: Pillow walks them comparing each page's offset with
# every one before it, so 20,000 one-pixel pages (a 2 MB file) took 6 s to count.
MAX_COUNTED_FRAMES = 256

# Our own pixel limit (checked right after the header is parsed) is the guard; Pillow's
# warning between MAX_IMAGE_PIXELS and twice that would only duplicate it in the logs.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


@dataclass(frozen=True)
class DecodeLimits:
    """Caps applied to every image before its pixels are decoded."""

    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 50_000_000

    @classmethod
    def from_settings(cls, settings: Settings) -> DecodeLimits:
        """Limits from the configured settings."""
        return cls(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)


@dataclass(frozen=True)
class ImageInfo:
    """What the header says: format, displayed size (after EXIF orientation), mode, frames."""

    format: str
    width: int
    height: int
    mode: str
    nbytes: int
    frames: int


def _mpx(n: int) -> str:
    return f"{n / 1e6:.3g} Mpx"


def _orientation(im: Image.Image) -> int:
    """EXIF orientation tag (1 when absent or unreadable), read without decoding pixels: for a
    PNG without eXIf before its pixels Pillow's getexif() decodes them all, and an error it met
    there was swallowed, leaving load() to return the half-decoded image as if whole."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    try:
        value = im.getexif().get(0x0112, 1)
    except _DECODE_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _open(data: bytes, name: str, limits: DecodeLimits) -> tuple[Image.Image, str]:
    """Open lazily (header only) and enforce the byte, format and pixel limits."""
    if not data:
        raise InvalidImageError(f"{name}: file is empty")
    if len(data) > limits.max_bytes:
        raise InvalidImageError(
            f"{name}: {megabytes(len(data))} exceeds the {megabytes(limits.max_bytes)} limit"
        )
    fmt = sniff(data)
    if fmt is None:
        raise InvalidImageError(f"{name}: {describe_unknown(data)}")
    try:
        im = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError:
        raise InvalidImageError(f"{name}: {_bomb_reason(data, fmt, limits)}") from None
    except UnidentifiedImageError:
        raise InvalidImageError(f"{name}: image is truncated or corrupt ({fmt} header)") from None
    except _DECODE_ERRORS as e:
        raise InvalidImageError(f"{name}: image is truncated or corrupt ({e})") from None
    detected = FORMAT_ALIASES.get(im.format or "", im.format or "")
    if detected != fmt:
        im.close()
        raise InvalidImageError(f"{name}: format {im.format} is not allowed")
    w, h = im.size
    if w <= 0 or h <= 0:
        raise InvalidImageError(f"{name}: image has no pixels ({w}×{h})")
    if w * h > limits.max_pixels:
        raise InvalidImageError(
            f"{name}: {w}×{h} = {_mpx(w * h)} exceeds the {_mpx(limits.max_pixels)} limit"
        )
    return im, fmt


def _bomb_reason(data: bytes, fmt: str, limits: DecodeLimits) -> str:
    """Name the dimensions of an image Pillow refused as a bomb (its message has only a count)."""
    factory = Image.OPEN.get(fmt, (None, None))[0]
    try:
        # The plugin class parses the header without Image.open's bomb check (though some
        # plugins, GIF and WebP among them, check again themselves).
        w, h = factory(io.BytesIO(data), "").size if factory else (0, 0)
    except _DECODE_ERRORS + (Image.DecompressionBombError,):
        w = h = 0
    if w and h:
        return f"{w}×{h} = {_mpx(w * h)} exceeds the {_mpx(limits.max_pixels)} limit"
    return f"image dimensions exceed the {_mpx(limits.max_pixels)} limit"


def _info(im: Image.Image, fmt: str, nbytes: int) -> ImageInfo:
    w, h = _stored_size(im)
    if _orientation(im) >= 5:  # 5-8 rotate by 90°, so the displayed image is h×w
        w, h = h, w
    try:
        frames = _frame_count(im)
    except _DECODE_ERRORS:
        frames = 1
    return ImageInfo(format=fmt, width=w, height=h, mode=im.mode, nbytes=nbytes, frames=frames)


def _stored_size(im: Image.Image) -> tuple[int, int]:
    """Width and height as stored: newer Pillow (13 here) reports a TIFF's as its Orientation
    tag turns it (and turns the pixels as it loads them); its tags, integers, keep the stored."""
    if isinstance(im, TiffImagePlugin.TiffImageFile):
        return int(im.tag_v2[256]), int(im.tag_v2[257])
    return im.size


def _frame_count(im: Image.Image) -> int:
    """Frames in the file, without decoding any: declared in the header (APNG, WebP, MPO),
    skipped over (GIF), or a TIFF's pages walked up to MAX_COUNTED_FRAMES."""
    if im.format != "TIFF":
        return int(getattr(im, "n_frames", 1))
    count = 1
    try:
        while count < MAX_COUNTED_FRAMES:
            im.seek(count)
            count += 1
    except EOFError:
        pass
    finally:
        im.seek(0)
    return count


def probe(data: bytes, *, name: str = "image", limits: DecodeLimits = DecodeLimits()) -> ImageInfo:
    """Read format, size and mode from the header without decoding pixels."""
    im, fmt = _open(data, name, limits)
    with im:
        return _info(im, fmt, len(data))


def decode(
    data: bytes,
    *,
    name: str = "image",
    limits: DecodeLimits = DecodeLimits(),
    grayscale: bool = False,
    max_side: int | None = None,
) -> np.ndarray:
    """Decode to HxWx3 uint8 RGB (or HxW uint8 when grayscale), after the header checks.

    max_side is a hint for callers that will downscale anyway: JPEGs are then decoded at the
    smallest 1/2, 1/4 or 1/8 scale that keeps both sides at least max_side (libjpeg does this
    nearly for free). Other formats are decoded at full size.
    """
    return decode_with_info(data, name=name, limits=limits, grayscale=grayscale, max_side=max_side)[
        1
    ]


def decode_with_info(
    data: bytes,
    *,
    name: str = "image",
    limits: DecodeLimits = DecodeLimits(),
    grayscale: bool = False,
    max_side: int | None = None,
) -> tuple[ImageInfo, np.ndarray]:
    """probe and decode in one pass over the header (what dataset import needs)."""
    im, fmt = _open(data, name, limits)
    try:
        info = _info(im, fmt, len(data))
        if fmt == "JPEG":
            # Letting libjpeg emit luma directly skips the colour conversion for grayscale use.
            size = (max_side, max_side) if max_side else None
            if grayscale or size:
                im.draft("L" if grayscale else None, size)
        # The bytes are all in memory: the codec gets them in one read. In Pillow's 64 KB reads
        # a row wider than a read is copied again at every read, so a 280-byte animated WebP
        # whose canvas is 8 million pixels wide took a minute.
        if isinstance(im, ImageFile.ImageFile):
            im.decodermaxblock = max(im.decodermaxblock, len(data), 8 * im.size[0] * im.size[1])
        im.load()  # truncated data raises here: LOAD_TRUNCATED_IMAGES is deliberately left off
        if _orientation(im) != 1:
            im = ImageOps.exif_transpose(im)
        arr = pixels.to_uint8(im, grayscale)
    except pixels.UnsupportedModeError as e:
        raise InvalidImageError(f"{name}: pixel mode {e} is not supported") from None
    except Image.DecompressionBombError:
        raise InvalidImageError(f"{name}: {_bomb_reason(data, fmt, limits)}") from None
    except _DECODE_ERRORS as e:
        raise InvalidImageError(f"{name}: image is truncated or corrupt ({e})") from None
    finally:
        im.close()
    return info, arr


def decode_file(
    path: Path,
    *,
    limits: DecodeLimits = DecodeLimits(),
    grayscale: bool = False,
    max_side: int | None = None,
) -> np.ndarray:
    """Decode an image file, refusing oversized files before reading them."""
    data = read_file_limited(path, limits)
    return decode(data, name=str(path), limits=limits, grayscale=grayscale, max_side=max_side)


def read_file_limited(
    path: Path,
    limits: DecodeLimits = DecodeLimits(),
    *,
    name: str | None = None,
    follow_symlinks: bool = True,
) -> bytes:
    """A file's bytes within the decode byte limit (see core.files.read_bounded)."""
    return read_bounded(
        path,
        limits.max_bytes,
        label=str(path) if name is None else name,
        follow_symlinks=follow_symlinks,
    )


def is_grayscale_content(rgb: np.ndarray, *, tolerance: int = 6) -> bool:
    """True when R, G and B agree within tolerance everywhere (JPEG chroma noise allowed)."""
    if rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 1):
        return True
    if rgb.ndim != 3 or rgb.shape[2] < 3:
        raise ValueError(f"expected HxW or HxWx3 array, got shape {rgb.shape}")
    if rgb.dtype == np.uint8:
        # OpenCV's saturating absdiff avoids three int16 copies: ~5x faster on the import path.
        r, g, b = cv2.split(np.ascontiguousarray(rgb[:, :, :3]))
        return (
            int(cv2.absdiff(r, g).max()) <= tolerance and int(cv2.absdiff(g, b).max()) <= tolerance
        )
    r16, g16, b16 = (rgb[:, :, i].astype(np.int64) for i in range(3))
    return int(np.abs(r16 - g16).max()) <= tolerance and int(np.abs(g16 - b16).max()) <= tolerance


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of the bytes (the identity of an image everywhere in DefectLens)."""
    return hashlib.sha256(data).hexdigest()


def encode_png(arr: np.ndarray) -> bytes:
    """Encode an HxW, HxWx3 or HxWx4 uint8 array as PNG (thumbnails, heatmaps)."""
    if arr.dtype != np.uint8:
        raise ValueError(f"encode_png needs uint8 pixels, got {arr.dtype}")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (1, 3, 4))):
        raise ValueError(f"encode_png needs HxW, HxWx3 or HxWx4, got shape {arr.shape}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    buf = io.BytesIO()
    # Level 3: these are small previews made on request, where speed matters more than bytes.
    Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()
