"""Safe dataset import into immutable, content-addressed snapshots.

A source (folder or zip, one sub-folder per class) is validated file by file with
core.vision.images; unreadable files are reported and skipped, exact duplicates are stored
once, and images filed under two classes are left out of training (core.datasets.health). The
result is assembled in a temp folder and published by core.datasets.snapshot.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import zipfile
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import Settings
from core.datasets import health, snapshot, sources
from core.datasets.archives import DAMAGED_ZIP_ERRORS, read_zip_entry, validate_zip
from core.datasets.snapshot import DatasetSnapshot, ManifestEntry
from core.datasets.sources import Candidate, Listing, ScannedImage
from core.datasets.splits import (
    CARVED_VAL_FRACTION,
    apply_split_file,
    carve_validation,
    read_split_file,
    stratified_split,
)
from core.errors import DatasetError, InvalidImageError, ValidationError
from core.vision import images

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class _Scan:
    """Everything found in a source before duplicates, conflicts and splits are resolved."""

    listing: Listing
    scanned: list[ScannedImage]
    unreadable: list[tuple[str, str]]


def _workers(settings: Settings) -> int:
    # Twice the cores: half the time of each file is spent waiting on disk (read, fsync).
    return max(2, min(8, 2 * settings.num_threads))


def _stored_name(cls: str, sha: str, fmt: str) -> str:
    """Where an image lives inside a snapshot folder."""
    return f"files/{cls}/{sha}.{images.FORMAT_EXTENSIONS[fmt]}"


def import_dataset(
    source: Path,
    name: str,
    settings: Settings,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    split_file: Path | None = None,
    on_progress: Progress | None = None,
) -> DatasetSnapshot:
    """Validate a folder or zip of class folders and store it as an immutable snapshot."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationError("dataset name must be 1 to 200 characters")
    if not 0.0 <= val_fraction < 1.0:
        raise ValidationError(f"val_fraction={val_fraction} must be at least 0 and below 1")
    source = Path(source)
    if not source.exists():
        raise DatasetError(f"{source}: not found")
    splits = read_split_file(split_file) if split_file is not None else None
    settings.datasets_dir.mkdir(parents=True, exist_ok=True)
    # The temp folder sits next to the snapshots so the final os.replace is a same-disk rename.
    tmp = Path(tempfile.mkdtemp(prefix=".import-", dir=settings.datasets_dir))
    try:
        if source.is_dir():
            scan = _ingest_folder(source, tmp, settings, on_progress)
        elif zipfile.is_zipfile(source):
            scan = _ingest_zip(source, tmp, settings, on_progress)
        else:
            raise DatasetError(f"{source}: not a folder or a zip archive")
        split_params: dict[str, Any] = {"val_fraction": val_fraction, "seed": seed}
        return _finish(source, name, settings, tmp, scan, splits, split_params)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- reading


def _ingest_folder(
    root: Path, tmp: Path, settings: Settings, on_progress: Progress | None
) -> _Scan:
    unreadable: list[tuple[str, str]] = []
    listing = sources.scan_folder(root, unreadable)
    limits = images.DecodeLimits.from_settings(settings)

    def read(c: Candidate) -> bytes:
        return images.read_file_limited(Path(c.ref), limits, name=c.rel)

    workers = _workers(settings)
    scanned = _ingest(listing.found, read, tmp, limits, unreadable, on_progress, workers)
    return _Scan(listing, scanned, unreadable)


# A zip the archive module cannot read; an OSError here is the disk's (writing the snapshot), not
# the archive's, and is reported as such.
_DAMAGED_ARCHIVE = tuple(e for e in DAMAGED_ZIP_ERRORS if e is not OSError)


def _ingest_zip(path: Path, tmp: Path, settings: Settings, on_progress: Progress | None) -> _Scan:
    unreadable: list[tuple[str, str]] = []
    limits = images.DecodeLimits.from_settings(settings)
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                validate_zip(zf, settings)
            except DatasetError as e:
                raise DatasetError(f"{path.name}: archive refused: {e}") from None
            listing = sources.scan_zip(zf, unreadable)
            budget = [settings.max_zip_total_bytes]
            zip_lock = threading.Lock()

            def read(c: Candidate) -> bytes:
                # One reader at a time: the archive's file handle and byte budget are shared.
                with zip_lock:
                    try:
                        return read_zip_entry(zf, c.ref, c.rel, limits, budget)
                    except DatasetError as e:
                        raise DatasetError(f"{path.name}: archive refused: {e}") from None

            workers = _workers(settings)
            scanned = _ingest(listing.found, read, tmp, limits, unreadable, on_progress, workers)
    except _DAMAGED_ARCHIVE as e:
        raise DatasetError(f"{path.name}: damaged zip archive ({e})") from None
    return _Scan(listing, scanned, unreadable)


def _ingest(
    found: list[Candidate],
    read: Callable[[Candidate], bytes],
    tmp: Path,
    limits: images.DecodeLimits,
    unreadable: list[tuple[str, str]],
    on_progress: Progress | None,
    workers: int,
) -> list[ScannedImage]:
    """Validate each candidate with core.vision.images and copy the good ones into tmp/files."""
    for cls in sorted({c.cls for c in found}):
        (tmp / "files" / cls).mkdir(parents=True, exist_ok=True)
    claimed: set[Path] = set()
    lock = threading.Lock()

    def one(c: Candidate) -> ScannedImage | str:
        try:
            data = read(c)
            # A full decode is the only way to know a file is not truncated halfway through.
            info, pixels = images.decode_with_info(data, name=c.rel, limits=limits)
        except InvalidImageError as e:
            reason = str(e)
            prefix = f"{c.rel}: "
            return reason[len(prefix) :] if reason.startswith(prefix) else reason
        sha = images.sha256_bytes(data)
        dest = tmp / _stored_name(c.cls, sha, info.format)
        with lock:
            first = dest not in claimed
            claimed.add(dest)
        if first:
            _write_file(dest, data)
        return ScannedImage(
            rel=c.rel,
            cls=c.cls,
            sha=sha,
            fmt=info.format,
            width=int(pixels.shape[1]),
            height=int(pixels.shape[0]),
            mode=info.mode,
            gray=images.is_grayscale_content(pixels),
        )

    out: list[ScannedImage] = []
    total = len(found)
    # Threads overlap file I/O and fsync with decoding (Pillow and hashlib release the GIL).
    # A bounded window keeps memory flat on archives with many entries; results come back in
    # source order, so the outcome does not depend on thread timing.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="import") as pool:
        window: deque[tuple[Candidate, Future[ScannedImage | str]]] = deque()
        done = 0
        try:
            for c in found:
                window.append((c, pool.submit(one, c)))
                if len(window) >= workers * 4:
                    done = _drain_one(window, out, unreadable, done, total, on_progress)
            while window:
                done = _drain_one(window, out, unreadable, done, total, on_progress)
        except BaseException:
            for _, fut in window:
                fut.cancel()
            raise
    return out


def _drain_one(
    window: deque[tuple[Candidate, Future[ScannedImage | str]]],
    out: list[ScannedImage],
    unreadable: list[tuple[str, str]],
    done: int,
    total: int,
    on_progress: Progress | None,
) -> int:
    c, fut = window.popleft()
    result = fut.result()
    if isinstance(result, str):
        unreadable.append((c.rel, result))
    else:
        out.append(result)
    if on_progress is not None:
        on_progress(done + 1, total)
    return done + 1


def _write_file(dest: Path, data: bytes) -> None:
    with open(dest, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(dest, 0o444)  # snapshots are immutable; read-only files make that visible


# --------------------------------------------------------------------------- finishing


def _finish(
    source: Path,
    name: str,
    settings: Settings,
    tmp: Path,
    scan: _Scan,
    splits: dict[str, str] | None,
    split_params: dict[str, Any],
) -> DatasetSnapshot:
    """Sort out duplicates and conflicts, split, write manifest and health, move into place."""
    deduped = health.deduplicate(scan.scanned)
    _drop_conflicting(tmp, scan.scanned, deduped.conflicting)
    by_folder = health.class_counts(deduped.kept, scan.listing.classes)
    counts = _usable_classes(source, by_folder)
    entries = _manifest_entries(deduped.kept)
    if splits is None:
        entries = stratified_split(entries, split_params["val_fraction"], split_params["seed"])
        split_info: dict[str, Any] = {"method": "stratified", **split_params}
        unsplit = 0
    else:
        found = ((s.rel, s.sha) for s in scan.scanned)
        entries, unsplit = apply_split_file(entries, found, splits)
        carved = 0
        if split_params["val_fraction"] > 0:  # 0: the caller wants no validation part
            entries, carved = carve_validation(entries, split_params["seed"])
        split_info = {"method": "file", "counts": dict(Counter(e.split for e in entries))}
        if carved:
            split_info["val_carved_from_train"] = {
                "images": carved, "fraction": CARVED_VAL_FRACTION, "seed": split_params["seed"],
            }  # fmt: skip
    report = health.assess(
        deduped, by_folder, scan.unreadable, stray=scan.listing.stray, unsplit=unsplit
    )
    return snapshot.publish(
        tmp,
        settings.datasets_dir,
        source=source,
        name=name,
        counts=counts,
        entries=entries,
        health=report,
        split_info=split_info,
    )


def _drop_conflicting(tmp: Path, scanned: list[ScannedImage], conflicting: frozenset[str]) -> None:
    """Remove the copies of images filed under two classes: they are left out of training."""
    for s in scanned:
        if s.sha in conflicting:
            (tmp / _stored_name(s.cls, s.sha, s.fmt)).unlink(missing_ok=True)


def _usable_classes(source: Path, by_folder: dict[str, int]) -> dict[str, int]:
    """The classes with images and their counts; DatasetError when fewer than two."""
    counts = {c: n for c, n in by_folder.items() if n > 0}
    if len(counts) < 2:
        found = ", ".join(f"{c} ({n})" for c, n in by_folder.items()) or "no class folders"
        raise DatasetError(f"{source}: need at least two classes with images; found {found}")
    return counts


def _manifest_entries(kept: list[ScannedImage]) -> list[ManifestEntry]:
    """One train entry per kept image, by class and source path (splits are assigned next)."""
    return [
        ManifestEntry(
            file=_stored_name(s.cls, s.sha, s.fmt),
            cls=s.cls,
            sha256=s.sha,
            split="train",
            width=s.width,
            height=s.height,
            mode=s.mode,
            source=s.rel,
        )
        for s in sorted(kept, key=lambda s: (s.cls, s.rel))
    ]
