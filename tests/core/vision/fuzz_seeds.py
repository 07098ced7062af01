"""Valid seed images in every allowed format, and the byte mutations made of them.

The hypothesis test (test_decode_fuzz.py) and the long run (bench/fuzz_decode.py) share both:
a mutation is a plain tuple, so hypothesis can draw it (and shrink it) and the benchmark can
draw it from a seeded random.Random and write the bytes of any case that misbehaves.
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Sequence
from functools import cache

import numpy as np
from PIL import Image

# (kind, position, value, other): position is taken modulo the length, other picks a splice
# source or a length. The kinds are the ways real files go wrong: a flipped bit, a field set
# to an extreme (a width of 0 or 2^32-1), a cut, a block copied from another file or repeated.
KINDS = ("flip", "byte", "u16le", "u16be", "u32le", "u32be", "cut", "splice", "repeat", "drop")
Mutation = tuple[str, int, int, int]

# Values a parser is most likely to mishandle in a size, count or offset field.
EXTREMES = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF)
# Half of all positions fall in the first bytes, where the header fields are.
HEADER_BYTES = 96


def _save(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def _picture(size: tuple[int, int] = (12, 16)) -> Image.Image:
    """A small RGB image with structure (a gradient and a bar) so every codec has work to do."""
    h, w = size
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    a[..., 1] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]
    a[h // 3 : h // 2, :, 2] = 200
    return Image.fromarray(a)


def _frames(n: int = 3) -> list[Image.Image]:
    return [Image.new("RGB", (8, 6), (80 * i, 255 - 80 * i, 40)) for i in range(n)]


def _sixteen_bit(mode: str) -> Image.Image:
    values = np.arange(12 * 16, dtype=np.uint16) * 300
    raw = values.astype(">u2" if mode == "I;16B" else "<u2").tobytes()
    return Image.frombytes(mode, (16, 12), raw)


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(_picture(), "JPEG", exif=exif.tobytes())


@cache
def seeds() -> dict[str, bytes]:
    """Valid files, small so that most mutations land in a header: name -> bytes."""
    rgb = _picture()
    frames = _frames()
    anim: dict[str, object] = {"save_all": True, "append_images": frames[1:], "duration": 40}
    return {
        "png_rgb": _save(rgb, "PNG"),
        "png_gray": _save(rgb.convert("L"), "PNG"),
        "png_palette": _save(rgb.convert("P"), "PNG", transparency=0),
        "png_rgba": _save(rgb.convert("RGBA"), "PNG"),
        "png_16bit": _save(_sixteen_bit("I;16"), "PNG"),
        "png_interlaced": _save(rgb, "PNG", interlace=1) if _has_interlace() else _save(rgb, "PNG"),
        "apng": _save(frames[0], "PNG", **anim),
        "jpeg_rgb": _save(rgb, "JPEG", quality=80),
        "jpeg_gray": _save(rgb.convert("L"), "JPEG"),
        "jpeg_cmyk": _save(rgb.convert("CMYK"), "JPEG"),
        "jpeg_progressive": _save(rgb, "JPEG", progressive=True),
        "jpeg_exif_rotated": _exif_rotated(),
        "tiff_raw": _save(rgb, "TIFF"),
        "tiff_lzw": _save(rgb, "TIFF", compression="tiff_lzw"),
        "tiff_deflate": _save(rgb.convert("L"), "TIFF", compression="tiff_adobe_deflate"),
        "tiff_packbits": _save(rgb, "TIFF", compression="packbits"),
        "tiff_jpeg": _save(rgb, "TIFF", compression="jpeg"),
        "tiff_16bit_be": _save(_sixteen_bit("I;16B"), "TIFF"),
        "tiff_float": _save(Image.fromarray(np.eye(8, dtype=np.float32)), "TIFF"),
        "tiff_pages": _save(frames[0], "TIFF", save_all=True, append_images=frames[1:]),
        "gif": _save(rgb.convert("P"), "GIF"),
        "gif_animated": _save(frames[0], "GIF", **anim),
        "webp_lossy": _save(rgb, "WEBP", quality=70),
        "webp_lossless": _save(rgb, "WEBP", lossless=True),
        "webp_alpha": _save(rgb.convert("RGBA"), "WEBP", lossless=True),
        "webp_animated": _save(frames[0], "WEBP", **anim),
        "bmp_rgb": _save(rgb, "BMP"),
        "bmp_palette": _save(rgb.convert("P"), "BMP"),
        "bmp_1bit": _save(rgb.convert("1"), "BMP"),
        "bmp_rgba": _save(rgb.convert("RGBA"), "BMP"),
    }


def _has_interlace() -> bool:
    """Pillow writes interlaced PNGs from 11.0 on; older ones ignore the flag (or refuse it)."""
    try:
        _save(_picture(), "PNG", interlace=1)
    except (TypeError, ValueError):
        return False
    return True


def _field(data: bytearray, pos: int, value: int, fmt: str) -> None:
    size = struct.calcsize(fmt)
    if len(data) >= size:
        at = pos % (len(data) - size + 1)
        struct.pack_into(fmt, data, at, value & ((1 << (8 * size)) - 1))


def apply(data: bytes, mutations: Sequence[Mutation], others: Sequence[bytes] = ()) -> bytes:
    """The bytes after every mutation in order (deterministic: same input, same output)."""
    out = bytearray(data)
    for kind, pos, value, other in mutations:
        n = len(out)
        at = pos % (n + 1)
        if kind == "flip" and n:
            out[pos % n] ^= 1 << (value % 8)
        elif kind == "byte" and n:
            out[pos % n] = value & 0xFF
        elif kind in ("u16le", "u16be", "u32le", "u32be"):
            order = "<" if kind.endswith("le") else ">"
            _field(out, pos, value, order + ("H" if kind.startswith("u16") else "I"))
        elif kind == "cut":
            del out[at:]
        elif kind == "splice" and others:
            src = others[other % len(others)]
            start = value % max(len(src), 1)
            out[at:at] = src[start : start + 1 + other % 256]
        elif kind == "repeat" and n:
            block = out[at : at + 1 + other % 64]
            out[at:at] = block * (1 + value % 8)
        elif kind == "drop":
            del out[at : at + 1 + other % 64]
    return bytes(out)


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk's CRC, so a mutated PNG gets past the CRC check to the decoder."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    out = bytearray(data)
    at = 8
    while at + 12 <= len(out):
        (length,) = struct.unpack_from(">I", out, at)
        end = at + 8 + length
        if end + 4 > len(out):
            break
        struct.pack_into(">I", out, end, zlib.crc32(bytes(out[at + 4 : end])) & 0xFFFFFFFF)
        at = end + 4
    return bytes(out)


def random_mutations(rng: random.Random, max_count: int = 4) -> list[Mutation]:
    """What a hypothesis strategy draws, drawn from a seeded Random (for the long run)."""
    out: list[Mutation] = []
    for _ in range(rng.randint(1, max_count)):
        kind = rng.choice(KINDS)
        pos = rng.randrange(HEADER_BYTES) if rng.random() < 0.5 else rng.randrange(1 << 20)
        value = rng.choice(EXTREMES) if rng.random() < 0.5 else rng.randrange(1 << 32)
        out.append((kind, pos, value, rng.randrange(1 << 16)))
    return out


def mutant(seed_name: str, mutations: Sequence[Mutation], fix_crcs: bool) -> bytes:
    """A seed's bytes after the mutations (splices come from the other seeds), with a PNG's
    CRCs then recomputed when asked."""
    all_seeds = seeds()
    data = apply(all_seeds[seed_name], mutations, list(all_seeds.values()))
    return fix_png_crcs(data) if fix_crcs else data
