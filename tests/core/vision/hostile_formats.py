"""The hostile-input corpus, formats half: formats Pillow opens but DefectLens refuses, EXIF
orientation, files of many frames, and every pixel mode (see hostile_corpus.py for Case)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

from core.vision.images import MAX_COUNTED_FRAMES, ImageInfo
from tests.core.vision.fuzz_seeds import seeds
from tests.core.vision.hostile_corpus import (
    NOT_ALLOWED,
    Case,
    Check,
    bad,
    chunk,
    encode,
    frames_are,
    looks_like,
    ok,
    pixel_is,
    png_of,
    quadrants,
    shape_is,
    tiff,
)

RED = (200, 30, 30)


def _fits() -> bytes:
    """A 4×4 8-bit FITS file: 80-character header cards in a 2880-byte block, then the data."""
    cards = ["SIMPLE  =                    T", "BITPIX  =                    8"]
    cards += ["NAXIS   =                    2", "NAXIS1  =                    4"]
    cards += ["NAXIS2  =                    4", "END"]
    header = "".join(c.ljust(80) for c in cards).ljust(2880).encode("ascii")
    return header + bytes(range(16)).ljust(2880, b"\x00")


def _cur() -> bytes:
    """An ICO of a BMP turned cursor (resource type 2)."""
    ico = bytearray(encode(Image.new("RGB", (16, 16), RED), "ICO", bitmap_format="bmp"))
    ico[2] = 2
    return bytes(ico)


XPM = b'/* XPM */\nstatic char *x[] = {\n"2 2 1 1",\n"a c #ff0000",\n"aa",\n"aa"};\n'


def refused_plugins() -> list[Case]:
    """Files Pillow itself opens (the test checks it does) that the allow-list refuses."""
    im = Image.new("RGB", (16, 16), RED)
    made = {"FITS": _fits(), "CUR": _cur(), "XPM": XPM}
    modes = {"BLP": "P", "MSP": "1", "SPIDER": "F", "XBM": "1"}  # the rest are saved as RGB
    saved = ("ICO", "ICNS", "BLP", "DDS", "PCX", "PPM", "TGA", "QOI", "SGI", "IM", "MSP")
    for fmt in (*saved, "SPIDER", "XBM", "JPEG2000", "DIB", "AVIF"):
        try:
            made[fmt] = encode(im.convert(modes.get(fmt, "RGB")), fmt)
        except (KeyError, OSError):  # a codec this Pillow was built without (AVIF, JPEG 2000)
            continue
    return [
        bad("plugin", fmt.lower(), data, NOT_ALLOWED, name=f"part.{fmt.lower()}")
        for fmt, data in made.items()
    ]


# What each EXIF orientation asks a viewer to do, in numpy (independent of Pillow's table).
ORIENTED = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
    8: lambda a: np.rot90(a, 1),
}


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _exif_entry(kind: int, count: int, value: bytes) -> bytes:
    """A little-endian EXIF block with one orientation entry of any type (even a wrong one)."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHI", 0x0112, kind, count) + value.ljust(4, b"\0")
    return b"Exif\x00\x00II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)


def exif_orientation() -> list[Case]:
    """Photos a camera held sideways: decoded as a viewer shows them, whatever the tag says."""
    a = quadrants()
    img = Image.fromarray(a)
    cases = []
    for k, turn in ORIENTED.items():
        jpeg = encode(img, "JPEG", quality=95, exif=_exif(k))
        cases.append(ok("exif", f"jpeg_orientation_{k}", jpeg, looks_like(turn(a).copy())))
    rotated = looks_like(np.rot90(a, -1).copy(), 0)
    webp = encode(img, "WEBP", lossless=True, exif=_exif(6))
    cases += [
        ok("exif", "png_exif_6", encode(img, "PNG", exif=_exif(6)), rotated),
        ok("exif", "webp_exif_6", webp, rotated),
    ]
    gray = a[..., 0]
    for k in (3, 6, 8):  # a TIFF's Orientation tag (recent Pillow turns these itself)
        turned = np.repeat(ORIENTED[k](gray)[..., None], 3, axis=2)
        sideways = tiff(48, 32, gray.tobytes(), extra=((274, 3, k),))
        cases.append(ok("exif", f"tiff_orientation_{k}", sideways, looks_like(turned, 0)))
    for label, exif in [
        ("orientation_0", _exif(0)),
        ("orientation_9", _exif(9)),
        ("orientation_65535", _exif(65535)),
        ("orientation_as_text", _exif_entry(2, 2, b"6\x00")),
        ("orientation_count_1000", _exif_entry(3, 1000, b"\x06\x00")),
        ("exif_offset_past_end", b"Exif\x00\x00II*\x00" + struct.pack("<I", 10**6)),
        ("exif_header_only", b"Exif\x00\x00"),
    ]:
        jpeg = encode(img, "JPEG", quality=95, exif=exif)
        cases.append(ok("exif", f"jpeg_{label}", jpeg, looks_like(a)))
    return cases


def _gif_of(n: int) -> bytes:
    """A 1×1 GIF of n frames, each 12 bytes."""
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return head + frame * n + b"\x3b"


def _apng_claiming(frames: int) -> bytes:
    """An APNG whose acTL chunk claims this many frames."""
    data = bytearray(seeds()["apng"])
    at = data.index(b"acTL") - 4
    actl = chunk(b"acTL", struct.pack(">II", frames, 0))
    return bytes(data[:at] + actl + data[at + 20 :])


def wide_webp(width: int) -> bytes:
    """A 3-frame animated WebP of 8×1 frames on a canvas this wide (and 1 high)."""
    frames = [Image.new("RGB", (8, 1), (80 * i, 200, 40)) for i in range(3)]
    anim = encode(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=40)
    data = bytearray(anim)
    assert data[12:16] == b"VP8X"
    data[24:27] = (width - 1).to_bytes(3, "little")
    return bytes(data)


def many_frames() -> list[Case]:
    """Multi-page TIFFs, animations, and files that lie about or loop their frames."""
    s = seeds()
    first = (0, 255, 40)  # fuzz_seeds' first frame
    colour = pixel_is(2, 2, first, tol=4)
    second = [Image.new("RGB", (16, 16), (0, 0, 200))]
    mpo = encode(Image.new("RGB", (16, 16), RED), "MPO", save_all=True, append_images=second)
    corrupt_page = bytearray(tiff(4, 4, bytes(16), pages=2))
    last_ifd = len(corrupt_page) - (2 + 12 * 9 + 4)
    corrupt_page[last_ifd : last_ifd + 2] = b"\xff\xff"  # the second page claims 65,535 tags
    c = "frames"
    return [
        ok(c, "tiff_3_pages", s["tiff_pages"], frames_are(3, colour)),
        ok(c, "tiff_5000_pages", tiff(1, 1, b"\x80", pages=5000), frames_are(MAX_COUNTED_FRAMES)),
        ok(c, "tiff_pages_loop", tiff(1, 1, b"\x80", pages=2, loop=True), frames_are(2)),
        ok(c, "tiff_page_points_at_itself", tiff(1, 1, b"\x80", loop=True), frames_are(1)),
        ok(c, "tiff_second_page_corrupt", bytes(corrupt_page), shape_is(4, 4)),
        ok(c, "gif_3_frames", s["gif_animated"], frames_are(3, colour)),
        ok(c, "gif_20000_frames", _gif_of(20000), frames_are(20000, shape_is(1, 1))),
        ok(c, "webp_3_frames", s["webp_animated"], frames_are(3, colour)),
        ok(c, "webp_canvas_1000000_wide", wide_webp(1_000_000), frames_are(3, shape_is(1, 10**6))),
        ok(c, "apng_3_frames", s["apng"], frames_are(3, colour)),
        ok(c, "apng_claims_2e31_frames", _apng_claiming(2**31), shape_is(6, 8)),
        ok(c, "mpo_2_pictures", mpo, frames_are(2, pixel_is(8, 8, RED))),
    ]


def _sixteen(mode: str, values: list[int], fmt: str) -> bytes:
    raw = np.array(values, dtype=">u2" if mode == "I;16B" else "<u2").tobytes()
    return encode(Image.frombytes(mode, (len(values), 1), raw), fmt)


def gray_is(*row: int) -> Check:
    """Check: a one-row image decodes to these gray levels (in all three channels)."""

    def check(_info: ImageInfo, arr: np.ndarray) -> None:
        assert arr[0, :, 0].tolist() == list(row), arr[0, :, 0].tolist()
        assert np.array_equal(arr[..., 0], arr[..., 2])

    return check


def pixel_modes() -> list[Case]:
    """CMYK, 16-bit, float, palette, alpha and 1-bit images, normalised to 8-bit RGB."""
    levels = [0, 32768, 65535, 256]
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 255, 255, 0, 0] + [0] * 762)
    palette.putdata([0, 1])
    la = Image.frombytes("LA", (2, 1), bytes([0, 0, 0, 255]))
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 1] = (255, 0, 0, 255)
    bits = Image.new("1", (3, 1))
    bits.putdata([0, 1, 0])
    wide = np.array([[0, 32768, 65535]], np.int32)
    floats = np.array([[0.0, 0.5, 1.0]], np.float32)
    rgb16 = b"\x00" + b"\xff\xff\x00\x00\x00\x00" + b"\x00\x00\xff\xff\x00\x00"
    white_red = np.array([[[255, 255, 255], [255, 0, 0]]], np.uint8)  # transparent, then red
    c = "mode"
    return [
        ok(
            c,
            "cmyk_jpeg",
            encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"),
            pixel_is(8, 8, (255, 0, 0), tol=60),
        ),
        ok(
            c,
            "cmyk_tiff",
            encode(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), "TIFF"),
            pixel_is(1, 1, (255, 0, 0), tol=0),
        ),
        ok(c, "i16_png", _sixteen("I;16", levels, "PNG"), gray_is(0, 128, 255, 1)),
        ok(c, "i16_tiff", _sixteen("I;16", levels, "TIFF"), gray_is(0, 128, 255, 1)),
        ok(c, "i16b_tiff", _sixteen("I;16B", levels, "TIFF"), gray_is(0, 128, 255, 1)),
        ok(c, "i32_tiff", encode(Image.fromarray(wide), "TIFF"), gray_is(0, 128, 255)),
        ok(c, "float_tiff", encode(Image.fromarray(floats), "TIFF"), gray_is(0, 128, 255)),
        ok(
            c,
            "rgb48_png",
            png_of(2, 1, zlib.compress(rgb16), depth=16),
            pixel_is(0, 0, (255, 0, 0), tol=0),
        ),
        ok(
            c,
            "palette_png_transparent",
            encode(palette, "PNG", transparency=0),
            looks_like(white_red, 0),
        ),
        ok(c, "palette_gif", encode(palette, "GIF"), pixel_is(0, 1, (255, 0, 0), tol=0)),
        ok(c, "palette_bmp", encode(palette, "BMP"), pixel_is(0, 0, (0, 0, 255), tol=0)),
        ok(c, "palette_2bit_png", encode(palette, "PNG", bits=2), pixel_is(0, 1, (255, 0, 0), 0)),
        ok(c, "la_png", encode(la, "PNG"), gray_is(255, 0)),
        ok(c, "rgba_png", encode(Image.fromarray(rgba), "PNG"), looks_like(white_red, 0)),
        ok(
            c,
            "rgba_webp",
            encode(Image.fromarray(rgba), "WEBP", lossless=True),
            pixel_is(0, 0, (255, 255, 255), tol=0),
        ),
        ok(c, "bilevel_bmp", encode(bits, "BMP"), gray_is(0, 255, 0)),
        ok(c, "bilevel_png", encode(bits, "PNG"), gray_is(0, 255, 0)),
        ok(c, "bilevel_tiff_g4", encode(bits, "TIFF", compression="group4"), gray_is(0, 255, 0)),
        ok(c, "gray_jpeg", seeds()["jpeg_gray"], shape_is(12, 16)),
    ]
