"""Which image formats DefectLens accepts, recognised by their leading bytes, never by a name.

core.vision.images uses ``sniff`` before anything is decoded, and ``describe_unknown`` to say
in plain words why other bytes are refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

SUPPORTED_FORMATS: frozenset[str] = frozenset({"PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF"})

# Magic bytes of the allowed formats. Pillow is then told to use only that plugin, so a file
# cannot be routed to a rarely used (and less hardened) decoder by its content or name.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
    (b"BM", "BMP"),
)

# Formats we recognise but refuse, so the message can name them instead of saying "unknown".
_KNOWN_OTHER: tuple[tuple[bytes, str], ...] = (
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"8BPS", "PSD"),
    (b"%PDF", "PDF"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"qoif", "QOI"),
    (b"DDS ", "DDS"),
    (b"icns", "ICNS"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"PK\x03\x04", "ZIP"),
    (b"\x1f\x8b", "GZIP"),
    (b"%!PS", "PostScript"),
)

# Pillow reports some JPEGs (multi-picture files from phones and stereo cameras) as MPO; the
# first picture is an ordinary JPEG.
FORMAT_ALIASES: Mapping[str, str] = MappingProxyType({"MPO": "JPEG"})


def sniff(data: bytes) -> str | None:
    """Detect the real format from the leading bytes; None when it is not an allowed format."""
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def describe_unknown(data: bytes) -> str:
    """A person-readable reason for bytes that are not an allowed image format."""
    for magic, fmt in _KNOWN_OTHER:
        if data.startswith(magic):
            return f"format {fmt} is not allowed ({', '.join(sorted(SUPPORTED_FORMATS))})"
    if len(data) >= 12 and data[4:8] == b"ftyp":
        brand = data[8:12].decode("ascii", "replace").strip()
        kind = (
            "HEIF/AVIF" if brand[:3] in {"hei", "hev", "mif", "avi", "msf"} else "video/ISO media"
        )
        return f"format {kind} is not allowed ({', '.join(sorted(SUPPORTED_FORMATS))})"
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith((b"<svg", b"<?xml")) and b"<svg" in head:
        return f"format SVG is not allowed ({', '.join(sorted(SUPPORTED_FORMATS))})"
    if head.startswith(b"<") or _looks_like_text(data[:2048]):
        return "not an image (looks like HTML/text)"
    return f"not a recognised image format (allowed: {', '.join(sorted(SUPPORTED_FORMATS))})"


def _looks_like_text(sample: bytes) -> bool:
    if not sample or b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError:
        # A cut in the middle of a multi-byte character at the end of the sample is still text.
        try:
            sample[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True
