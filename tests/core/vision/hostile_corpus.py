"""The hostile-input corpus, image half: every kind of bad or strange image file, made in code.

Each Case is bytes, the name they arrive under, and what must happen: "ok" (a clean decode,
with an optional check of the pixels) or "rejected" (InvalidImageError, its reason matching).
tests/core/vision/hostile_uploads.py adds file names and zip archives; test_hostile_corpus.py
runs every case through the decode path (and the upload-shaped ones through uploads and ingest).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from core.vision.images import ImageInfo
from tests.core.vision.fuzz_seeds import seeds

Check = Callable[[ImageInfo, np.ndarray], None]
# Why formats Pillow can open are refused: the allow-list is checked by content.
NOT_ALLOWED = r"is not allowed|not a recognised image format|not an image"
TRUNCATED = r"truncated or corrupt"
OVER_LIMIT = r"exceeds? the 50 Mpx limit"


@dataclass(frozen=True)
class Case:
    """One hostile input and what the product must do with it."""

    category: str
    label: str
    data: bytes
    expect: str  # "ok" or "rejected": what decoding the bytes must end in
    name: str = "part.png"
    reason: str = ""  # regex a rejection's message must match
    check: Check | None = None  # for "ok": an assertion on the header facts and pixels
    # Upload-shaped cases: the display names iter_upload plus decoding must accept, and the
    # (display name, reason regex) pairs it must reject. None: not an upload case.
    accepted: tuple[str, ...] | None = None
    rejected: tuple[tuple[str, str], ...] = ()
    ingest: bool = False  # also ingested into a real database (a representative subset)

    @property
    def id(self) -> str:
        """The pytest id: category/label."""
        return f"{self.category}/{self.label}"


def encode(im: Image.Image, fmt: str, **params: object) -> bytes:
    """A Pillow image saved in a format, as bytes."""
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def quadrants(h: int = 32, w: int = 48) -> np.ndarray:
    """An RGB image whose four quadrants differ, so any rotation or flip shows."""
    a = np.zeros((h, w, 3), np.uint8)
    a[: h // 2, : w // 2] = (250, 250, 250)
    a[: h // 2, w // 2 :] = (250, 0, 0)
    a[h // 2 :, : w // 2] = (0, 0, 250)
    return a


def chunk(kind: bytes, payload: bytes) -> bytes:
    """A PNG chunk with its length and CRC."""
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def png_of(width: int, height: int, idat: bytes, *, depth: int = 8, colour: int = 2) -> bytes:
    """A PNG whose IHDR says width×height, with the given compressed pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    sig = b"\x89PNG\r\n\x1a\n"
    return sig + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def zeros_deflated(n: int) -> bytes:
    """n zero bytes, deflated in pieces (a real bomb's payload, never held whole)."""
    comp = zlib.compressobj(9)
    piece = bytes(1 << 20)
    out = [comp.compress(piece) for _ in range(n >> 20)]
    return b"".join([*out, comp.compress(bytes(n & ((1 << 20) - 1))), comp.flush()])


def tiff(
    width: int,
    height: int,
    pixels: bytes,
    *,
    compression: int = 1,
    pages: int = 1,
    loop: bool = False,
    extra: tuple[tuple[int, int, int], ...] = (),
) -> bytes:
    """A little-endian 8-bit grayscale TIFF. pages > 1 chains that many IFDs (all describing
    the same pixels), loop points the last one back at the first, extra adds (tag, type, value)
    entries (type 3 SHORT, 4 LONG)."""
    entries = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, compression)]
    entries += [(262, 3, 1), (273, 4, 8), (277, 3, 1), (278, 4, height), (279, 4, len(pixels))]
    entries = sorted(entries + list(extra))
    body = bytearray(b"II*\x00\x00\x00\x00\x00" + pixels)
    body += b"\x00" * (len(body) % 2)
    first = len(body)
    size = 2 + 12 * len(entries) + 4
    for page in range(pages):
        nxt = first + (page + 1) * size if page + 1 < pages else (first if loop else 0)
        body += struct.pack("<H", len(entries))
        for tag, kind, value in entries:
            packed = struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
            body += struct.pack("<HHI", tag, kind, 1) + packed
        body += struct.pack("<I", nxt)
    struct.pack_into("<I", body, 4, first)
    return bytes(body)


def shape_is(h: int, w: int) -> Check:
    """Check: decoded to h×w RGB, and the header said so too."""

    def check(info: ImageInfo, arr: np.ndarray) -> None:
        assert arr.shape == (h, w, 3), arr.shape
        assert (info.height, info.width) == (h, w)

    return check


def pixel_is(y: int, x: int, rgb: tuple[int, int, int], tol: int = 12) -> Check:
    """Check: one pixel has (about) this colour."""

    def check(_info: ImageInfo, arr: np.ndarray) -> None:
        got = arr[y, x].astype(int)
        assert np.abs(got - np.array(rgb)).max() <= tol, (got.tolist(), rgb)

    return check


def looks_like(expected: np.ndarray, tol: float = 12.0) -> Check:
    """Check: the decoded image is (up to JPEG noise) this array, shape and all."""

    def check(info: ImageInfo, arr: np.ndarray) -> None:
        assert arr.shape == expected.shape, (arr.shape, expected.shape)
        assert (info.height, info.width) == expected.shape[:2]
        assert np.abs(arr.astype(int) - expected.astype(int)).mean() <= tol

    return check


def frames_are(n: int, then: Check | None = None) -> Check:
    """Check: the header counted n frames (and then another check)."""

    def check(info: ImageInfo, arr: np.ndarray) -> None:
        assert info.frames == n, info.frames
        if then is not None:
            then(info, arr)

    return check


def ok(category: str, label: str, data: bytes, check: Check | None = None, **kw) -> Case:
    """A case that must decode cleanly."""
    return Case(category, label, data, "ok", check=check, **kw)


def bad(category: str, label: str, data: bytes, reason: str, **kw) -> Case:
    """A case that must be rejected with a reason matching the regex."""
    return Case(category, label, data, "rejected", reason=reason, **kw)


def earlier_issues() -> list[Case]:
    """The bad input earlier issues covered (test_images, test_ingest, test_uploads)."""
    s = seeds()
    jpg = encode(Image.fromarray(quadrants(120, 160)), "JPEG", quality=90)
    png = encode(Image.fromarray(quadrants(120, 160)), "PNG")
    c = "earlier"
    return [
        bad(c, "zero_bytes", b"", r"file is empty"),
        bad(c, "truncated_jpeg_half", jpg[: len(jpg) // 2], TRUNCATED),
        bad(c, "truncated_jpeg_tail", jpg[:-20], TRUNCATED),
        bad(c, "truncated_png_half", png[: len(png) // 2], TRUNCATED),
        bad(c, "truncated_png_header", png[:40], TRUNCATED),
        bad(c, "signature_only_png", png[:8], TRUNCATED),
        bad(c, "text_named_png", b"hello, this is not a picture\n", r"looks like HTML/text"),
        bad(c, "html_404", b"<!DOCTYPE html><html>404 Not Found</html>", r"HTML/text"),
        bad(c, "bom_html", b"\xef\xbb\xbf<html><head></head></html>", r"HTML/text"),
        bad(c, "pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", r"format PDF is not allowed"),
        bad(c, "svg", b'<?xml version="1.0"?><svg width="10"/>', r"format SVG is not allowed"),
        bad(c, "random_bytes", bytes(range(256)) * 4, r"not a recognised image format"),
        bad(c, "heif", b"\x00\x00\x00\x18ftypheic" + bytes(16), r"HEIF/AVIF is not allowed"),
        bad(c, "mp4", b"\x00\x00\x00\x18ftypisom" + bytes(16), r"video/ISO media"),
        bad(c, "gzip", b"\x1f\x8b\x08\x00" + bytes(12), r"format GZIP is not allowed"),
        bad(c, "over_byte_limit", s["png_rgb"] + bytes(50 * 1024 * 1024), r"exceeds the 50 MB"),
        ok(c, "jpeg_named_png", s["jpeg_rgb"], shape_is(12, 16), name="really_a_jpeg.png"),
        ok(c, "png_named_jpg", s["png_rgb"], shape_is(12, 16), name="really_a_png.jpg"),
        ok(c, "png_named_exe", s["png_rgb"], shape_is(12, 16), name="setup.exe"),
        ok(c, "one_pixel", encode(Image.new("RGB", (1, 1), (9, 8, 7)), "PNG"), shape_is(1, 1)),
        ok(c, "wide_4000x8", encode(Image.new("L", (4000, 8)), "PNG"), shape_is(8, 4000)),
        ok(c, "tall_8x4000", encode(Image.new("L", (8, 4000)), "PNG"), shape_is(4000, 8)),
    ]


def bombs() -> list[Case]:
    """Small files whose headers declare far more pixels than the limit (50 Mpx)."""
    c = "bomb"
    webp = bytearray(seeds()["webp_animated"])
    assert webp[12:16] == b"VP8X"
    webp[24:30] = (16383).to_bytes(3, "little") * 2  # canvas 16384×16384 (each side minus one)
    jpeg = bytearray(seeds()["jpeg_rgb"])
    sof = jpeg.index(b"\xff\xc0")
    struct.pack_into(">HH", jpeg, sof + 5, 65500, 65500)
    gif_screen = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0x80, 0, 0) + bytes(6)
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00\x3b"
    grow = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + bytes(6)
    grow_frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 8000, 7000, 0) + b"\x02\x02\x44\x01\x00;"
    bmp_info = struct.pack("<IiiHHIIiiII", 40, 100_000, 100_000, 1, 24, 0, 0, 0, 0, 0, 0)
    bmp = b"BM" + struct.pack("<IHHI", 54 + 16, 0, 0, 54) + bmp_info + bytes(16)
    # Real bombs: 100 Mpx of zeros, each row's PNG filter byte included, in about 100 KB.
    png_bomb = png_of(10000, 10000, zeros_deflated(10001 * 10000), colour=0)
    tiff_bomb = tiff(10000, 10000, zeros_deflated(10**8), compression=8)
    return [
        bad(c, "png_20000x20000", png_of(20000, 20000, zlib.compress(bytes(64))), OVER_LIMIT),
        bad(c, "png_8000x7000_under_pillow_limit", png_of(8000, 7000, b""), r"56 Mpx exceeds"),
        bad(c, "png_65535x65535", png_of(65535, 65535, b""), OVER_LIMIT),
        bad(c, "png_2gpx_wide", png_of(2**31 - 1, 1, b""), OVER_LIMIT + "|" + TRUNCATED),
        bad(c, "png_real_100mpx", png_bomb, r"10000×10000 = 100 Mpx exceeds"),
        bad(c, "tiff_100000x100000", tiff(100_000, 100_000, b"\x00"), OVER_LIMIT),
        bad(c, "tiff_real_100mpx", tiff_bomb, r"10000×10000 = 100 Mpx exceeds"),
        bad(c, "gif_screen_65535", gif_screen + frame, OVER_LIMIT),
        bad(c, "gif_frame_grows_canvas", grow + grow_frame, r"8000×7000 = 56 Mpx exceeds"),
        bad(c, "webp_canvas_16384", bytes(webp), OVER_LIMIT + "|" + TRUNCATED),
        bad(c, "jpeg_sof_65500", bytes(jpeg), OVER_LIMIT),
        bad(c, "bmp_100000x100000", bmp, OVER_LIMIT),
        bad(c, "png_zero_width", png_of(0, 10, b""), r"no pixels|" + TRUNCATED),
    ]


def lying_headers() -> list[Case]:
    """Headers that disagree with the data after them."""
    c = "lying"
    raw = b"".join(b"\x00" + bytes(range(24)) for _ in range(12))  # 12 rows of 8 RGB pixels
    # A flipped byte that breaks the deflate stream (the CRC is left wrong: Pillow never checks
    # an IDAT's). Once taken as a half-black image: the error was swallowed reading EXIF.
    ramp = (np.arange(64 * 64).reshape(64, 64) % 251).astype(np.uint8)
    flipped = bytearray(encode(Image.fromarray(ramp), "PNG"))
    flipped[flipped.index(b"IDAT") + 40] ^= 0xFF
    bad_crc = bytearray(seeds()["png_rgb"])
    bad_crc[29] ^= 0xFF  # inside IHDR's CRC
    jpeg = seeds()["jpeg_rgb"]
    sof = jpeg.index(b"\xff\xc0") + 5

    def sof_says(h: int, w: int) -> bytes:
        out = bytearray(jpeg)
        struct.pack_into(">HH", out, sof, h, w)
        return bytes(out)

    bmp = bytearray(seeds()["bmp_rgb"])
    struct.pack_into("<i", bmp, 18, 400)  # width 400 over data for 16
    bmp_offset = bytearray(seeds()["bmp_rgb"])
    struct.pack_into("<I", bmp_offset, 10, 10**6)  # pixel data "starts" past the end
    top_down = quadrants(8, 8)
    bmp_top = bytearray(encode(Image.fromarray(top_down[::-1].copy()), "BMP"))
    struct.pack_into("<i", bmp_top, 22, -8)  # negative height: rows stored top to bottom
    return [
        bad(c, "png_ihdr_bigger_than_data", png_of(100, 100, zlib.compress(bytes(64))), TRUNCATED),
        ok(c, "png_ihdr_smaller_than_data", png_of(8, 6, zlib.compress(raw)), shape_is(6, 8)),
        bad(c, "png_idat_byte_flipped", bytes(flipped), TRUNCATED),
        bad(c, "png_ihdr_bad_crc", bytes(bad_crc), TRUNCATED),
        bad(c, "png_bit_depth_3", png_of(4, 4, zlib.compress(bytes(40)), depth=3), TRUNCATED),
        bad(c, "png_colour_type_5", png_of(4, 4, zlib.compress(bytes(40)), colour=5), TRUNCATED),
        ok(c, "png_without_iend", seeds()["png_rgb"][:-12], shape_is(12, 16)),
        # libjpeg fills what the data does not cover (mid-gray) and only warns; Pillow cannot
        # tell, so this decodes, like any JPEG damaged in a way its codec cannot see.
        ok(c, "jpeg_sof_bigger", sof_says(120, 160), shape_is(120, 160)),
        ok(c, "jpeg_sof_smaller", sof_says(8, 8), shape_is(8, 8)),
        bad(c, "jpeg_sof_zero_height", sof_says(0, 16), TRUNCATED + r"|no pixels"),
        bad(c, "jpeg_soi_eoi_only", b"\xff\xd8\xff\xd9", TRUNCATED),
        bad(c, "bmp_width_over_data", bytes(bmp), TRUNCATED),
        bad(c, "bmp_data_offset_past_end", bytes(bmp_offset), TRUNCATED),
        ok(c, "bmp_top_down", bytes(bmp_top), looks_like(top_down, tol=0)),
        bad(c, "tiff_strip_past_end", tiff(16, 16, b"\x00" * 8), TRUNCATED),
        bad(c, "gif_truncated_lzw", seeds()["gif"][:-8], TRUNCATED),
    ]
