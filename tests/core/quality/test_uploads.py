"""Uploads: zip archives expanded safely into files, with the dataset import's archive rules."""

from __future__ import annotations

import dataclasses
import io
import zipfile

import pytest

from core.auth import permissions
from core.config import Settings
from core.datasets import archives
from core.errors import ValidationError
from core.quality import ingest, inspections, uploads
from core.quality.ingest import Traceability
from core.quality.uploads import Rejection
from db.engine import Database
from tests.core.inspection_support import Active, png


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_expand_upload_takes_images_from_a_zip_and_refuses_unsafe_archives(
    settings: Settings,
) -> None:
    data = _zip(
        {
            "batch/a.png": png(1),
            "batch/sub/b.png": png(2),
            "batch/readme.txt": b"not an image",
            "__MACOSX/batch/._a.png": b"junk",
            "batch/.DS_Store": b"junk",
        }
    )
    files, rejected = uploads.expand_upload("upload.zip", data, settings)
    assert [n for n, _ in files] == [
        "upload.zip/batch/a.png",
        "upload.zip/batch/sub/b.png",
        "upload.zip/batch/readme.txt",  # rejected later by ingest, with its reason
    ]
    assert files[0][1] == png(1) and rejected == []

    evil = _zip({"ok.png": png(1), "../../escape.png": png(2)})
    files, rejected = uploads.expand_upload("evil.zip", evil, settings)
    assert files == [] and len(rejected) == 1
    assert rejected[0].file == "evil.zip" and "outside the archive" in rejected[0].reason

    files, rejected = uploads.expand_upload("damaged.zip", b"PK\x03\x04garbage", settings)
    assert files == [] and "damaged" in rejected[0].reason

    assert uploads.expand_upload("a.png", png(3), settings) == ([("a.png", png(3))], [])


def test_zip_upload_end_to_end(db: Database, settings: Settings, active: Active) -> None:
    files, rejected = uploads.expand_upload(
        "u.zip", _zip({"a.png": png(1), "b.png": png(2), "c.txt": b"text"}), settings
    )
    result = ingest.ingest(
        db, settings, permissions.SYSTEM, files, Traceability(), classifier=active
    )
    assert len(result.processed) == 2
    assert [r.file for r in rejected + result.rejected] == ["u.zip/c.txt"]


def test_entries_a_dataset_import_ignores_are_skipped_in_an_upload_too(
    settings: Settings,
) -> None:
    junk = {f"batch/{name}": b"junk" for name in archives.IGNORED_NAMES}
    junk |= {"batch/.DS_Store": b"junk", ".git/config": b"junk", "batch/.hidden.png": png(9)}
    files, rejected = uploads.expand_upload("u.zip", _zip({"batch/a.png": png(1)} | junk), settings)
    assert [n for n, _ in files] == ["u.zip/batch/a.png"] and rejected == []
    # Nothing but artefacts: said so, rather than an empty success.
    files, rejected = uploads.expand_upload("junk.zip", _zip(junk), settings)
    assert files == [] and rejected == [Rejection("junk.zip", "archive holds no files")]


def _encrypted_zip() -> bytes:
    """a.png, and locked.png marked password-protected (bit 0 of both of its headers' flags)."""
    data = bytearray(_zip({"a.png": png(1), "locked.png": png(2)}))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        local = zf.getinfo("locked.png").header_offset
    central = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 4)  # its directory entry
    data[local + 6] |= 0x1
    data[central + 8] |= 0x1
    return bytes(data)


def test_encrypted_entries_and_oversized_uploads_are_rejected(settings: Settings) -> None:
    files, rejected = uploads.expand_upload("u.zip", _encrypted_zip(), settings)
    assert [n for n, _ in files] == ["u.zip/a.png"]
    assert rejected == [Rejection("u.zip/locked.png", "encrypted entry")]

    small = dataclasses.replace(settings, max_upload_mb=1)
    big = _zip({"a.png": png(1), "pad.bin": bytes(range(256)) * 5000})
    with zipfile.ZipFile(io.BytesIO(big)) as zf:  # stored uncompressed: over 1 MB as uploaded
        assert zf.getinfo("pad.bin").compress_type == zipfile.ZIP_STORED
    files, rejected = uploads.expand_upload("big.zip", big, small)
    assert files == [] and len(rejected) == 1 and "1 MB upload limit" in rejected[0].reason


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("a.png", "a.png"),
        ("  spaced.png ", "spaced.png"),
        ("tab\there\x00.png", "tab?here?.png"),
        ("", "(unnamed)"),
        ("\u202eevil.png", "?evil.png"),  # right-to-left override is a format character
    ],
)
def test_display_name_replaces_control_characters(name: str, shown: str) -> None:
    assert uploads.display_name(name) == shown


def test_display_name_caps_the_length() -> None:
    long = uploads.display_name("x" * 1000)
    assert len(long) == uploads.MAX_SOURCE_NAME and long.endswith("…")


class _CountingFile(io.RawIOBase):
    """A file that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        self._f = io.BytesIO(data)
        self.total = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()

    def read(self, n: int = -1) -> bytes:
        out = self._f.read(n)
        self.total += len(out)
        return out


def test_a_zip_is_read_entry_by_entry_as_it_is_consumed(settings: Settings) -> None:
    # Stored entries of 40 KB each: the archive is 2 MB, the first image is at its start.
    pad = bytes(range(256)) * 160
    entries = {f"lot/{i:03d}.png": png(i) + pad for i in range(50)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    source = _CountingFile(buf.getvalue())
    stream = uploads.iter_upload("lot.zip", source, settings)  # type: ignore[arg-type]
    first = next(stream)
    assert first == ("lot.zip/lot/000.png", entries["lot/000.png"])
    # The central directory (at the end) and the first entry: not the 49 other entries.
    size = len(buf.getvalue())
    assert source.total < size / 10
    rest = list(stream)
    assert len(rest) == 49 and all(not isinstance(r, Rejection) for r in rest)
    assert size <= source.total < 1.2 * size  # each entry read once


def test_a_submission_over_the_request_cap_is_refused_before_anything_is_read(
    settings: Settings,
) -> None:
    capped = dataclasses.replace(settings, max_request_mb=2)
    uploads.check_request_size([1024**2, 1024**2], capped)  # exactly 2 MB: taken
    with pytest.raises(ValidationError, match=r"these 3 files hold 3 MB, more than the 2 MB"):
        uploads.check_request_size([1024**2, 1024**2, 1024**2], capped)


def test_ingest_many_holds_one_group_at_a_time_and_commits_each(
    db: Database, settings: Settings, active: Active
) -> None:
    consumed = [0]

    def items():  # type: ignore[no-untyped-def]
        for i in range(10):
            consumed[0] += 1
            yield (f"p{i}.png", png(i))
            if i == 4:
                consumed[0] += 1
                yield Rejection("unreadable.png", "permission denied")

    seen: list[tuple[int, int]] = []

    def on_group(summary: ingest.IngestSummary) -> None:
        seen.append((consumed[0], len(summary.processed_ids)))
        committed = inspections.list_inspections(db, permissions.SYSTEM)
        assert len(committed) == len(summary.processed_ids)

    summary = ingest.ingest_many(
        db,
        settings,
        permissions.SYSTEM,
        items(),
        Traceability(line="L1"),
        classifier=active,
        group_size=4,
        on_group=on_group,
    )
    # Each group pulled only its 4 items from the stream before being inspected.
    assert seen == [(4, 4), (8, 7), (11, 10)]
    assert len(summary.processed_ids) == 10
    assert summary.rejected == [Rejection("unreadable.png", "permission denied")]
    assert summary.images_per_second > 0
