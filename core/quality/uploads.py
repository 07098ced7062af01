"""What arrives to be inspected: display-safe names, rejections, and zip uploads expanded.

File names given by users or cameras are display text only (stored paths come from the
content's SHA-256). A zip upload is checked with the same archive rules as a dataset import
before a single entry is read.
"""

from __future__ import annotations

import io
import unicodedata
import zipfile
from dataclasses import dataclass

from core.config import Settings
from core.datasets.archives import is_ignored, read_zip_entry, validate_zip, zip_parts
from core.errors import DatasetError, InvalidImageError
from core.vision import images

MAX_SOURCE_NAME = 255
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class Rejection:
    """A file that was not inspected, and why. file is display text only."""

    file: str
    reason: str

    @classmethod
    def from_error(cls, file: str, err: InvalidImageError) -> Rejection:
        """The rejection for a decode error, without the file name its message starts with."""
        text = str(err)
        prefix = f"{file}: "
        return cls(file, text[len(prefix) :] if text.startswith(prefix) else text)


def display_name(name: str, limit: int = MAX_SOURCE_NAME) -> str:
    """A file name made safe to show and store: control characters replaced, length capped."""
    text = "".join(
        "?" if unicodedata.category(ch) in ("Cc", "Cf", "Cs") else ch for ch in str(name)
    )
    text = text.strip() or "(unnamed)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _zip_entry_parts(name: str) -> list[str] | None:
    """The entry's path parts, or None when it is an OS/archiver artefact to skip.

    The same entries are skipped as in a dataset import (``archives.is_ignored``).
    """
    parts = zip_parts(name)
    if not parts or any(is_ignored(p) for p in parts):
        return None
    return parts


def expand_upload(
    name: str, data: bytes, settings: Settings
) -> tuple[list[tuple[str, bytes]], list[Rejection]]:
    """A .zip upload -> its image entries (validated like dataset import); else [(name, data)].

    The archive is checked entry by entry before anything is read (no '..', absolute paths,
    links; entry count, size and ratio caps). Entry names are display text only.
    """
    shown = display_name(name)
    if not data.startswith(_ZIP_MAGIC):
        return [(name, data)], []
    if len(data) > settings.max_upload_mb * 1024 * 1024:
        return [], [Rejection(shown, f"larger than the {settings.max_upload_mb} MB upload limit")]
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            validate_zip(zf, settings)
            files, rejected = _read_entries(zf, shown, settings)
    except DatasetError as e:
        return [], [Rejection(shown, f"archive refused: {e}")]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
        return [], [Rejection(shown, f"damaged zip archive ({e})")]
    if not files and not rejected:
        rejected.append(Rejection(shown, "archive holds no files"))
    return files, rejected


def _read_entries(
    zf: zipfile.ZipFile, shown: str, settings: Settings
) -> tuple[list[tuple[str, bytes]], list[Rejection]]:
    """Every file entry of a validated archive, named shown/entry; unreadable ones rejected."""
    limits = images.DecodeLimits.from_settings(settings)
    budget = [settings.max_zip_total_bytes]
    files: list[tuple[str, bytes]] = []
    rejected: list[Rejection] = []
    for info in zf.infolist():
        if info.is_dir():
            continue
        parts = _zip_entry_parts(info.filename)
        if parts is None:
            continue
        entry_name = display_name(f"{shown}/{'/'.join(parts)}")
        if info.flag_bits & 0x1:
            rejected.append(Rejection(entry_name, "encrypted entry"))
            continue
        try:
            files.append(
                (entry_name, read_zip_entry(zf, info.filename, entry_name, limits, budget))
            )
        except InvalidImageError as e:
            rejected.append(Rejection.from_error(entry_name, e))
    return files, rejected
