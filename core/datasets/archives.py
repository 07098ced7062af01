"""Zip archive safety: every entry is checked before a byte of it is read.

Dataset import and the inspection upload both read untrusted archives through these checks:
no entry may escape the target ('..', absolute paths, links), and entry count, total size and
compression ratio are capped before anything is unpacked. Reads never trust the header's sizes.
"""

from __future__ import annotations

import lzma
import re
import stat
import zipfile
import zlib

from core.config import Settings
from core.errors import DatasetError, InvalidImageError
from core.vision import images

# Names that operating systems and archivers add next to real data.
IGNORED_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini", "ehthumbs.db"})
_READ_CHUNK = 1024 * 1024
# Entries smaller than this are not held to the per-entry ratio cap: a flat 64×64 BMP
# legitimately compresses 300:1, and small entries cannot exhaust memory or disk; the total
# size cap still covers them.
_RATIO_FLOOR_BYTES = 1024 * 1024
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


# What zipfile raises for an archive it cannot read (a DatasetError is one our rules refused):
# besides BadZipFile, a header offset that lies seeks before the start (ValueError), an unknown
# version or method is NotImplementedError, a corrupt LZMA entry LZMAError, a name that is not
# UTF-8 though flagged so UnicodeDecodeError (a ValueError), two entries with empty names
# IndexError (ZipInfo.is_dir reads the name's last character).
DAMAGED_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    OSError,
    EOFError,
    ValueError,
    NotImplementedError,
    IndexError,
    lzma.LZMAError,
)


def is_ignored(part: str) -> bool:
    """Whether a path part is a hidden file or an OS/archiver artefact, not data."""
    return part.startswith(".") or part in IGNORED_NAMES


def zip_parts(name: str) -> list[str]:
    """Split an entry name into its parts, refusing anything that could escape the target."""
    if "\x00" in name:
        raise DatasetError(f"entry {name!r} has a NUL byte in its name")
    if name.startswith(("/", "\\")) or _WINDOWS_DRIVE.match(name):
        raise DatasetError(f"entry {name!r} is an absolute path")
    parts = [p for p in re.split(r"[\\/]", name) if p not in ("", ".")]
    if ".." in parts:
        raise DatasetError(f"entry {name!r} points outside the archive ('..')")
    return parts


def _check_entry(info: zipfile.ZipInfo, settings: Settings, seen: set[str]) -> None:
    """One entry: a safe name, a regular file or folder, listed once, not a bomb on its own."""
    parts = zip_parts(info.filename)
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DatasetError(f"entry {info.filename!r} is a symbolic link")
    if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise DatasetError(f"entry {info.filename!r} is not a regular file")
    key = "/".join(parts)
    if key in seen and not info.is_dir():
        raise DatasetError(f"entry {info.filename!r} appears twice")
    seen.add(key)
    if info.file_size > _RATIO_FLOOR_BYTES and (
        info.file_size > settings.max_zip_ratio * max(info.compress_size, 1)
    ):
        ratio = info.file_size / max(info.compress_size, 1)
        raise DatasetError(
            f"entry {info.filename!r} expands {ratio:.0f}× "
            f"(limit {settings.max_zip_ratio}×): looks like a zip bomb"
        )


def validate_zip(zf: zipfile.ZipFile, settings: Settings) -> None:
    """Check every entry of an archive before a single byte of it is read."""
    infos = zf.infolist()
    if len(infos) > settings.max_zip_entries:
        raise DatasetError(f"{len(infos)} entries exceed the limit of {settings.max_zip_entries}")
    total = compressed = 0
    seen: set[str] = set()
    for info in infos:
        _check_entry(info, settings, seen)
        total += info.file_size
        compressed += info.compress_size
    if total > settings.max_zip_total_bytes:
        raise DatasetError(
            f"unpacks to {total / 1024**3:.2f} GiB, over the "
            f"{settings.max_zip_total_bytes / 1024**3:.2f} GiB limit"
        )
    if total > _RATIO_FLOOR_BYTES and total > settings.max_zip_ratio * max(compressed, 1):
        raise DatasetError(
            f"expands {total / max(compressed, 1):.0f}× overall "
            f"(limit {settings.max_zip_ratio}×): looks like a zip bomb"
        )


def read_zip_entry(
    zf: zipfile.ZipFile, entry: str, name: str, limits: images.DecodeLimits, budget: list[int]
) -> bytes:
    """Read one entry in chunks, never trusting the header's sizes.

    budget is a one-element list shared by every read of one archive: the bytes it may still
    unpack in all (DatasetError once it runs out).
    """
    info = zf.getinfo(entry)
    if info.file_size > limits.max_bytes:
        raise InvalidImageError(
            f"{name}: {info.file_size // (1024 * 1024)} MB exceeds the "
            f"{limits.max_bytes // (1024 * 1024)} MB limit"
        )
    cap = min(info.file_size, limits.max_bytes)
    chunks: list[bytes] = []
    got = 0
    try:
        with zf.open(info) as f:
            while chunk := f.read(_READ_CHUNK):
                got += len(chunk)
                budget[0] -= len(chunk)
                if got > cap:
                    raise InvalidImageError(f"{name}: entry is larger than its header says")
                if budget[0] < 0:
                    raise DatasetError("archive unpacks to more than its headers declare")
                chunks.append(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise InvalidImageError(f"{name}: damaged archive entry ({e})") from None
    except NotImplementedError as e:
        raise InvalidImageError(f"{name}: {e}") from None
    return b"".join(chunks)
