"""What arrives to be inspected: display-safe names, rejections, and zip uploads read entry by
entry.

File names given by users or cameras are display text only (stored paths come from the
content's SHA-256). A zip upload is checked with the same archive rules as a dataset import
before a single entry is read.
"""

from __future__ import annotations

import io
import unicodedata
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from core.config import Settings
from core.datasets.archives import (
    DAMAGED_ZIP_ERRORS,
    is_ignored,
    read_zip_entry,
    validate_zip,
    zip_parts,
)
from core.errors import DatasetError, InvalidImageError, ValidationError
from core.vision import images

MAX_SOURCE_NAME = 255
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip file starts with one of these


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


def check_request_size(sizes: Sequence[int], settings: Settings) -> None:
    """Refuse (ValidationError) a submission whose files hold more than DEFECTLENS_MAX_REQUEST_MB
    in all, before any is read: nothing is inspected."""
    total = sum(sizes)
    if total > settings.max_request_mb * 1024 * 1024:
        raise ValidationError(
            f"these {len(sizes)} files hold {total / 1024**2:,.0f} MB, more than the "
            f"{settings.max_request_mb:,} MB one inspection takes (DEFECTLENS_MAX_REQUEST_MB); "
            "nothing was inspected. Send them in smaller batches, or drop them into a watched "
            "folder"
        )


def expand_upload(
    name: str, data: bytes, settings: Settings
) -> tuple[list[tuple[str, bytes]], list[Rejection]]:
    """iter_upload, collected: (images, rejections). For small uploads and tests; a long
    stream goes to ingest.ingest_many without being collected."""
    files: list[tuple[str, bytes]] = []
    rejected: list[Rejection] = []
    for item in iter_upload(name, data, settings):
        if isinstance(item, Rejection):
            rejected.append(item)
        else:
            files.append(item)
    return files, rejected


def iter_upload(
    name: str, source: bytes | BinaryIO, settings: Settings, *, browser: bool = True
) -> Iterator[tuple[str, bytes] | Rejection]:
    """A .zip upload -> its image entries one at a time, read from the file as they are asked
    for (the archive is never copied or unpacked into memory); anything else -> (name, bytes).

    source is the bytes or a seekable binary file (an uploaded file, an open zip on disk).
    The archive is checked entry by entry before anything is read (no '..', absolute paths,
    links; entry count, size and ratio caps), as a dataset import is. Entry names are display
    text only. An archive found damaged part-way ends with a rejection naming it; the entries
    before it were whole images and stay inspected. A browser upload is capped at
    DEFECTLENS_MAX_UPLOAD_MB; a zip the operator names on the command line (browser=False)
    only by the archive caps.
    """
    shown = display_name(name)
    f = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    head = f.read(4)
    f.seek(0)
    if head not in ZIP_MAGIC:
        yield (name, source if isinstance(source, bytes) else f.read())
        return
    size = f.seek(0, io.SEEK_END)
    f.seek(0)
    if browser and size > settings.max_upload_mb * 1024 * 1024:
        yield Rejection(shown, f"larger than the {settings.max_upload_mb} MB upload limit")
        return
    try:
        zf = zipfile.ZipFile(f)
        validate_zip(zf, settings)
    except (DatasetError, *DAMAGED_ZIP_ERRORS) as e:
        yield _archive_refusal(shown, e)
        return
    with zf:
        yield from _entries(zf, shown, settings)


def _archive_refusal(shown: str, err: Exception) -> Rejection:
    """The whole archive's rejection: refused by the archive rules, or damaged."""
    if isinstance(err, DatasetError):
        return Rejection(shown, f"archive refused: {err}")
    return Rejection(shown, f"damaged zip archive ({err})")


def _entries(
    zf: zipfile.ZipFile, shown: str, settings: Settings
) -> Iterator[tuple[str, bytes] | Rejection]:
    """Every file entry of a validated archive, named shown/entry; unreadable ones rejected."""
    limits = images.DecodeLimits.from_settings(settings)
    budget = [settings.max_zip_total_bytes]
    any_file = False
    for info in zf.infolist():
        parts = _zip_entry_parts(info.filename)
        # The name first: is_dir() fails on an empty one, which has no parts and is skipped.
        if parts is None or info.is_dir():
            continue
        any_file = True
        entry_name = display_name(f"{shown}/{'/'.join(parts)}")
        if info.flag_bits & 0x1:
            yield Rejection(entry_name, "encrypted entry")
            continue
        try:
            data = read_zip_entry(zf, info.filename, entry_name, limits, budget)
        except InvalidImageError as e:
            yield Rejection.from_error(entry_name, e)
            continue
        except (DatasetError, *DAMAGED_ZIP_ERRORS) as e:
            yield _archive_refusal(shown, e)
            return
        yield (entry_name, data)
    if not any_file:
        yield Rejection(shown, "archive holds no files")
