"""core.vision.images: every bad input from the issue, every mode, and the limits."""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.config import Settings
from core.errors import InvalidImageError
from core.vision import formats, images
from core.vision.images import DecodeLimits
from tests.core.conftest import image_bytes, noise


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
    )


def crafted_png(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming width×height, with a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def _reject(data: bytes, match: str, **kw: object) -> str:
    with pytest.raises(InvalidImageError, match=match) as info:
        images.decode(data, name="part.png", **kw)  # type: ignore[arg-type]
    return str(info.value)


# --------------------------------------------------------------------------- bad input


def test_truncated_jpeg_is_rejected() -> None:
    data = image_bytes(noise(1, (120, 160)), "JPEG", quality=90)
    for cut in (len(data) // 2, len(data) - 20):
        msg = _reject(data[:cut], "truncated or corrupt")
        assert msg.startswith("part.png: ")


def test_truncated_png_is_rejected() -> None:
    data = image_bytes(noise(2, (120, 160)), "PNG")
    _reject(data[: len(data) // 2], "truncated or corrupt")
    _reject(data[:40], "truncated or corrupt")  # inside the header chunks


def test_zero_byte_file() -> None:
    _reject(b"", "file is empty")
    with pytest.raises(InvalidImageError, match="file is empty"):
        images.probe(b"")


@pytest.mark.parametrize(
    "text",
    [
        b"hello, this is not a picture\n",
        b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
        b"\xef\xbb\xbf<html>\n<head><title>login</title></head></html>",
    ],
)
def test_text_and_html_named_png(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "photo.png"
    path.write_bytes(text)
    with pytest.raises(InvalidImageError, match=r"not an image \(looks like HTML/text\)") as e:
        images.decode_file(path)
    assert str(path) in str(e.value)


def test_png_header_claiming_20000x20000_is_rejected_fast_with_flat_memory() -> None:
    data = crafted_png(20000, 20000)
    assert len(data) < 200
    tracemalloc.start()
    start = time.perf_counter()
    try:
        for fn in (images.probe, images.decode):
            with pytest.raises(InvalidImageError) as e:
                fn(data, name="bomb.png")
            assert "20000×20000 = 400 Mpx exceeds the 50 Mpx limit" in str(e.value)
        elapsed = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 1.0
    assert peak < 20 * 1024 * 1024


def test_pixel_limit_is_ours_not_only_pillows() -> None:
    # 8000×7000 = 56 Mpx is below Pillow's own bomb threshold (89 Mpx) but above ours.
    data = crafted_png(8000, 7000)
    with pytest.raises(InvalidImageError, match="8000×7000 = 56 Mpx exceeds the 50 Mpx limit"):
        images.probe(data)
    small = DecodeLimits(max_pixels=1000)
    ok = image_bytes(noise(3, (20, 40)))
    assert images.probe(ok, limits=small).width == 40
    with pytest.raises(InvalidImageError, match="exceeds the 0.001 Mpx limit"):
        images.decode(image_bytes(noise(3, (40, 40))), limits=small)


def test_byte_limit() -> None:
    data = image_bytes(noise(4, (64, 64)))
    with pytest.raises(InvalidImageError, match="exceeds the .* limit"):
        images.decode(data, limits=DecodeLimits(max_bytes=len(data) - 1))
    assert images.decode(data, limits=DecodeLimits(max_bytes=len(data))).shape == (64, 64, 3)


def test_decode_file_checks_size_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.jpg"
    with open(path, "wb") as f:  # a sparse 2 GiB file: reading it would take seconds and RAM
        f.truncate(2 * 1024**3)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(InvalidImageError, match="2048 MB exceeds the 50 MB limit"):
            images.decode_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0
    assert peak < 5 * 1024 * 1024


def test_decode_file_missing(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match="file not found"):
        images.decode_file(tmp_path / "nope.png")


def test_unsupported_formats_are_named() -> None:
    ico = io.BytesIO()
    Image.fromarray(noise(5, (32, 32))).save(ico, format="ICO")
    msg = _reject(ico.getvalue(), "format ICO is not allowed")
    assert "PNG" in msg and "JPEG" in msg
    _reject(b"8BPS\x00\x01" + b"\x00" * 40, "format PSD is not allowed")
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="10"/>'
    _reject(svg, "format SVG is not allowed")
    _reject(bytes(range(256)) * 4, "not a recognised image format")


def test_format_is_taken_from_content_not_name(tmp_path: Path) -> None:
    path = tmp_path / "really_a_jpeg.png"
    path.write_bytes(image_bytes(noise(6, (30, 20)), "JPEG"))
    assert images.decode_file(path).shape == (30, 20, 3)
    assert images.probe(path.read_bytes()).format == "JPEG"


# --------------------------------------------------------------------------- modes


def test_16bit_png_is_scaled_not_clipped() -> None:
    im = Image.new("I;16", (4, 1))
    im.putdata([0, 32768, 65535, 256])
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    data = buf.getvalue()
    assert images.probe(data).mode.startswith("I")
    gray = images.decode(data, grayscale=True)
    assert gray.dtype == np.uint8
    assert gray.tolist() == [[0, 128, 255, 1]]
    rgb = images.decode(data)
    assert rgb.shape == (1, 4, 3) and rgb[0, 2].tolist() == [255, 255, 255]


def test_32bit_int_from_16bit_range() -> None:
    im = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.int32), mode="I")
    buf = io.BytesIO()
    im.save(buf, format="TIFF")
    assert images.decode(buf.getvalue(), grayscale=True).tolist() == [[0, 128, 255]]


def test_cmyk_jpeg_becomes_rgb() -> None:
    im = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in print terms
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=95)
    data = buf.getvalue()
    assert images.probe(data).mode == "CMYK"
    rgb = images.decode(data)
    assert rgb.shape == (16, 16, 3)
    r, g, b = rgb[8, 8].tolist()
    assert r > 200 and g < 60 and b < 60


def test_rgba_is_composited_on_white() -> None:
    arr = np.zeros((2, 3, 4), dtype=np.uint8)
    arr[0, 0] = (255, 0, 0, 255)  # opaque red
    arr[0, 1] = (255, 0, 0, 0)  # fully transparent red
    arr[0, 2] = (0, 0, 0, 128)  # half-transparent black
    rgb = images.decode(image_bytes(arr, "PNG"))
    assert rgb[0, 0].tolist() == [255, 0, 0]
    assert rgb[0, 1].tolist() == [255, 255, 255]
    assert all(120 <= v <= 135 for v in rgb[0, 2].tolist())
    gray = images.decode(image_bytes(arr, "PNG"), grayscale=True)
    assert gray.shape == (2, 3) and gray[0, 1] == 255


def test_la_is_composited_on_white() -> None:
    arr = np.array([[[0, 0], [0, 255]]], dtype=np.uint8)
    im = Image.fromarray(arr, mode="LA")
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    assert images.decode(buf.getvalue(), grayscale=True).tolist() == [[255, 0]]


def test_palette_with_transparency() -> None:
    im = Image.new("P", (2, 1))
    im.putpalette([0, 0, 255] + [255, 0, 0] + [0] * (254 * 3))
    im.putdata([0, 1])
    buf = io.BytesIO()
    im.save(buf, format="PNG", transparency=0)  # index 0 (blue) is transparent
    rgb = images.decode(buf.getvalue())
    assert rgb[0, 0].tolist() == [255, 255, 255]
    assert rgb[0, 1].tolist() == [255, 0, 0]


def test_palette_without_transparency() -> None:
    im = Image.new("P", (1, 1))
    im.putpalette([10, 20, 30] + [0] * (255 * 3))
    buf = io.BytesIO()
    im.save(buf, format="GIF")
    assert images.decode(buf.getvalue()).tolist() == [[[10, 20, 30]]]


def test_bilevel_mode_1() -> None:
    im = Image.new("1", (3, 1))
    im.putdata([0, 1, 0])
    buf = io.BytesIO()
    im.save(buf, format="BMP")
    assert images.decode(buf.getvalue(), grayscale=True).tolist() == [[0, 255, 0]]


def test_animated_gif_first_frame_only() -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50)
    data = buf.getvalue()
    assert images.probe(data).frames == 3
    rgb = images.decode(data)
    assert rgb.shape == (8, 8, 3)
    assert rgb[4, 4].tolist() == [255, 0, 0]


@pytest.mark.parametrize("size", [(1, 1), (4000, 8), (8, 4000)])
def test_extreme_shapes(size: tuple[int, int]) -> None:
    h, w = size
    data = image_bytes(noise(7, (h, w)), "PNG")
    rgb = images.decode(data)
    assert rgb.shape == (h, w, 3)
    assert np.array_equal(rgb, noise(7, (h, w)))
    info = images.probe(data)
    assert (info.width, info.height) == (w, h)


def test_exif_orientation_is_applied() -> None:
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = 255  # left half white, right half black
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = image_bytes(arr, "JPEG", exif=exif.tobytes(), quality=95)
    info = images.probe(data)
    assert (info.width, info.height) == (20, 40)
    rgb = images.decode(data)
    assert rgb.shape == (40, 20, 3)
    # Rotated clockwise, the white left half ends up on top.
    assert rgb[5, 10].mean() > 200 and rgb[35, 10].mean() < 50


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP", "GIF"])
def test_lossless_formats_round_trip(fmt: str) -> None:
    arr = noise(8, (16, 12), gray=True)
    save = {"lossless": True} if fmt == "WEBP" else {}
    data = image_bytes(arr, fmt, **save)
    assert images.probe(data).format == fmt
    assert np.array_equal(images.decode(data, grayscale=True), arr)


def test_jpeg_max_side_decodes_smaller() -> None:
    data = image_bytes(noise(9, (800, 640)), "JPEG")
    full = images.decode(data)
    assert full.shape == (800, 640, 3)
    small = images.decode(data, max_side=150)
    assert small.shape == (200, 160, 3)  # 1/4 scale keeps both sides >= 150
    gray = images.decode(data, grayscale=True, max_side=150)
    assert gray.shape == (200, 160)


def test_decoded_arrays_are_writable() -> None:
    arr = images.decode(image_bytes(noise(10)))
    arr[0, 0] = 0  # would raise on a read-only view of Pillow's buffer
    assert arr.flags.c_contiguous


# --------------------------------------------------------------------------- helpers


def test_is_grayscale_content() -> None:
    gray = noise(11, gray=True)
    assert images.is_grayscale_content(gray)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    assert images.is_grayscale_content(rgb)
    # A grayscale picture saved as colour JPEG picks up a little chroma noise.
    assert images.is_grayscale_content(images.decode(image_bytes(rgb, "JPEG")))
    assert not images.is_grayscale_content(noise(11))
    tinted = rgb.copy()
    tinted[3, 3, 0] = min(255, int(tinted[3, 3, 1]) + 40) if tinted[3, 3, 1] < 200 else 0
    assert not images.is_grayscale_content(tinted)


def test_sha256_bytes() -> None:
    assert images.sha256_bytes(b"") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_encode_png_round_trips() -> None:
    for arr in (noise(12), noise(12, gray=True)):
        assert np.array_equal(images.decode(images.encode_png(arr), grayscale=arr.ndim == 2), arr)
    with pytest.raises(ValueError):
        images.encode_png(np.zeros((4, 4), dtype=np.float32))


def test_limits_from_settings(settings: Settings) -> None:
    limits = DecodeLimits.from_settings(settings)
    assert limits == DecodeLimits(settings.max_image_bytes, settings.max_image_pixels)
    assert {"PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF"} == formats.SUPPORTED_FORMATS
    assert set(images.FORMAT_EXTENSIONS) == formats.SUPPORTED_FORMATS
