"""Safe dataset import into immutable, content-addressed snapshots.

A source (folder or zip, one sub-folder per class) is validated file by file with
core.vision.images;
unreadable files are reported and skipped, exact duplicates are stored once, and images filed
under two classes are left out of training. The result is written to a temp folder under
``settings.datasets_dir`` and moved into place with one ``os.replace``, so a refused or failed
import leaves nothing behind and a snapshot, once there, is complete and never changes.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import statistics
import tempfile
import threading
import zipfile
import zlib
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from core.config import Settings
from core.errors import DatasetError, InvalidImageError, ValidationError
from core.files import fsync_dir, write_atomic
from core.vision import images

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
SPLITS = ("train", "val", "test")
SMALL_CLASS = 10  # fewer usable images than this and a class is flagged in the health report

# Names that operating systems and archivers add next to real data.
_IGNORED_NAMES = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini", "ehthumbs.db"})
_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
}
# When one image belongs to several splits (the casting set has 64 in both train and test), it
# goes to the evaluation side: a held-out image must never also be trained on.
_SPLIT_PRIORITY = {"test": 0, "val": 1, "train": 2}
_READ_CHUNK = 1024 * 1024
# Entries smaller than this are not held to the per-entry ratio cap: a flat 64×64 BMP
# legitimately compresses 300:1, and small entries cannot exhaust memory or disk; the total
# size cap still covers them.
_RATIO_FLOOR_BYTES = 1024 * 1024
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ManifestEntry:
    """One image in a snapshot."""

    file: str  # path relative to the snapshot folder
    cls: str
    sha256: str
    split: str  # "train" | "val" | "test"
    width: int
    height: int
    mode: str
    source: str  # original relative path in the source (display text only)


@dataclass(frozen=True)
class HealthReport:
    """What an engineer should know about a dataset before training on it."""

    class_counts: dict[str, int]
    imbalance_ratio: float
    unreadable: list[tuple[str, str]]  # (file, reason)
    duplicates: list[list[str]]
    conflicting_duplicates: list[dict[str, Any]]
    small_classes: list[str]
    sizes: dict[str, Any]  # min/max/median width and height, count by size
    modes: dict[str, int]
    grayscale: bool
    warnings: list[str]
    empty_classes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        d = asdict(self)
        d["unreadable"] = [list(u) for u in self.unreadable]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HealthReport:
        """Inverse of to_dict."""
        return cls(
            class_counts={str(k): int(v) for k, v in d["class_counts"].items()},
            imbalance_ratio=float(d["imbalance_ratio"]),
            unreadable=[(str(f), str(r)) for f, r in d["unreadable"]],
            duplicates=[list(g) for g in d["duplicates"]],
            conflicting_duplicates=list(d["conflicting_duplicates"]),
            small_classes=list(d["small_classes"]),
            sizes=dict(d["sizes"]),
            modes={str(k): int(v) for k, v in d["modes"].items()},
            grayscale=bool(d["grayscale"]),
            warnings=list(d["warnings"]),
            empty_classes=list(d.get("empty_classes", [])),
        )


@dataclass(frozen=True)
class DatasetSnapshot:
    """An imported dataset: a folder of files plus manifest.json and health.json."""

    content_hash: str
    name: str
    path: Path
    class_names: list[str]
    counts: dict[str, int]
    entries: list[ManifestEntry]
    health: HealthReport
    grayscale: bool

    @property
    def manifest_path(self) -> Path:
        """Where the manifest lives."""
        return self.path / "manifest.json"

    def split_entries(self, split: str) -> list[ManifestEntry]:
        """Entries of one split ("train", "val" or "test")."""
        return [e for e in self.entries if e.split == split]


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class _Candidate:
    """A file found in the source: its class and where to read it from."""

    rel: str  # path relative to the class root, posix separators
    cls: str
    ref: str  # folder: absolute path; zip: entry name


def _is_ignored(part: str) -> bool:
    return part.startswith(".") or part in _IGNORED_NAMES


def _scan_folder(
    root: Path, unreadable: list[tuple[str, str]]
) -> tuple[list[_Candidate], set[str], int]:
    """Walk a folder source; returns candidates, class folder names and stray file count."""
    classes: set[str] = set()
    found: list[_Candidate] = []
    stray = 0
    for top in sorted(root.iterdir(), key=lambda p: p.name):
        if _is_ignored(top.name):
            continue
        if top.is_symlink():
            unreadable.append((top.name, "symbolic link (not followed)"))
            continue
        if not top.is_dir():
            stray += 1
            continue
        classes.add(top.name)
        for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not _is_ignored(d))
            base = Path(dirpath)
            for fname in sorted(filenames):
                if _is_ignored(fname):
                    continue
                path = base / fname
                rel = path.relative_to(root).as_posix()
                if path.is_symlink() or not path.is_file():
                    unreadable.append((rel, "not a regular file (links are not followed)"))
                    continue
                found.append(_Candidate(rel=rel, cls=top.name, ref=str(path)))
    return found, classes, stray


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


def validate_zip(zf: zipfile.ZipFile, settings: Settings) -> None:
    """Check every entry of an archive before a single byte of it is read."""
    infos = zf.infolist()
    if len(infos) > settings.max_zip_entries:
        raise DatasetError(f"{len(infos)} entries exceed the limit of {settings.max_zip_entries}")
    total = compressed = 0
    seen: set[str] = set()
    for info in infos:
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
        total += info.file_size
        compressed += info.compress_size
        if info.file_size > _RATIO_FLOOR_BYTES and (
            info.file_size > settings.max_zip_ratio * max(info.compress_size, 1)
        ):
            ratio = info.file_size / max(info.compress_size, 1)
            raise DatasetError(
                f"entry {info.filename!r} expands {ratio:.0f}× "
                f"(limit {settings.max_zip_ratio}×): looks like a zip bomb"
            )
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


def _scan_zip(
    zf: zipfile.ZipFile, unreadable: list[tuple[str, str]]
) -> tuple[list[_Candidate], set[str], int]:
    """List a validated archive's files; returns candidates, class names and stray file count."""
    items = [
        (parts, info)
        for info in zf.infolist()
        if (parts := zip_parts(info.filename)) and not any(_is_ignored(p) for p in parts)
    ]
    # One folder wrapping the class folders is what "Compress" in most file managers makes.
    # Unwrap it only when it holds folders and no files of its own (otherwise it is a class).
    tops = {parts[0] for parts, _ in items}
    if len(tops) == 1 and not any(len(p) == 1 and not i.is_dir() for p, i in items):
        inner = [(p[1:], i) for p, i in items if len(p) > 1]
        if inner and not any(len(p) == 1 and not i.is_dir() for p, i in inner):
            items = inner
    classes: set[str] = set()
    found: list[_Candidate] = []
    stray = 0
    for parts, info in items:
        if info.is_dir():
            classes.add(parts[0])
            continue
        if len(parts) < 2:
            stray += 1  # a file next to the class folders has no label
            continue
        classes.add(parts[0])
        rel = "/".join(parts)
        if info.flag_bits & 0x1:
            unreadable.append((rel, "encrypted entry"))
            continue
        found.append(_Candidate(rel=rel, cls=parts[0], ref=info.filename))
    return found, classes, stray


def read_zip_entry(
    zf: zipfile.ZipFile, entry: str, name: str, limits: images.DecodeLimits, budget: list[int]
) -> bytes:
    """Read one entry in chunks, never trusting the header's sizes."""
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
            while True:
                chunk = f.read(_READ_CHUNK)
                if not chunk:
                    break
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


# --------------------------------------------------------------------------- splits


def _split_rank(seed: int, sha: str) -> str:
    # Hash-based order: deterministic for a seed, and adding images does not reshuffle the rest.
    return hashlib.sha256(f"{seed}:{sha}".encode()).hexdigest()


def stratified_split(
    entries: Sequence[ManifestEntry], val_fraction: float, seed: int
) -> list[ManifestEntry]:
    """Assign train/val per class (deterministic by seed); identical images stay on one side."""
    if not 0.0 <= val_fraction < 1.0:
        raise ValidationError(f"val_fraction={val_fraction} must be at least 0 and below 1")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(entries):
        groups[e.sha256].append(i)
    by_class: dict[str, list[str]] = defaultdict(list)
    for sha, idx in groups.items():
        by_class[entries[idx[0]].cls].append(sha)
    split_of: dict[str, str] = {}
    for shas in by_class.values():
        n = sum(len(groups[s]) for s in shas)
        # Every class keeps at least one training image, and one val image when it has two.
        target = min(round(n * val_fraction), n - 1)
        if val_fraction > 0 and n >= 2:
            target = max(target, 1)
        taken = 0
        for sha in sorted(shas, key=lambda s: _split_rank(seed, s)):
            size = len(groups[sha])
            if taken + size <= target:
                split_of[sha] = "val"
                taken += size
            else:
                split_of[sha] = "train"
    return [replace(e, split=split_of[e.sha256]) for e in entries]


def _read_split_file(path: Path) -> dict[str, str]:
    """Read a file,split CSV (the split column may be called split or original_split)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [c.strip() for c in reader.fieldnames or []]
            col = next((c for c in ("split", "original_split") if c in fields), None)
            if "file" not in fields or col is None:
                raise DatasetError(
                    f"{path}: needs columns 'file' and 'split' (or 'original_split'); "
                    f"found {', '.join(fields) or 'none'}"
                )
            out: dict[str, str] = {}
            for lineno, row in enumerate(reader, start=2):
                row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
                values = [v.strip().lower() for v in re.split(r"[;|]", row[col]) if v.strip()]
                splits = [_SPLIT_ALIASES.get(v) for v in values]
                if not splits or None in splits:
                    raise DatasetError(
                        f"{path}, line {lineno}: split {row[col]!r} is not train, val or test"
                    )
                out[_norm_rel(row["file"])] = min(
                    (s for s in splits if s), key=lambda s: _SPLIT_PRIORITY[s]
                )
            return out
    except OSError as e:
        raise DatasetError(f"{path}: cannot read split file ({e.strerror or e})") from None
    except (csv.Error, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not a readable CSV ({e})") from None


def _norm_rel(p: str) -> str:
    rel = PurePosixPath(p.replace("\\", "/")).as_posix()
    return rel[2:] if rel.startswith("./") else rel


# --------------------------------------------------------------------------- import


@dataclass
class _Scanned:
    """A validated image, already copied into the temp snapshot."""

    rel: str
    cls: str
    sha: str
    fmt: str
    width: int
    height: int
    mode: str
    gray: bool


def _workers(settings: Settings) -> int:
    # Twice the cores: half the time of each file is spent waiting on disk (read, fsync).
    return max(2, min(8, 2 * settings.num_threads))


@dataclass
class _Scan:
    """Everything found in a source before duplicates, conflicts and splits are resolved."""

    scanned: list[_Scanned]
    unreadable: list[tuple[str, str]]
    classes: set[str]  # every class folder, including empty ones
    stray: int  # files outside any class folder


def import_dataset(
    source: Path,
    name: str,
    settings: Settings,
    *,
    val_fraction: float = 0.2,
    seed: int = 0,
    split_file: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
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
    splits = _read_split_file(split_file) if split_file is not None else None
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


def _ingest_folder(
    root: Path,
    tmp: Path,
    settings: Settings,
    on_progress: Callable[[int, int], None] | None,
) -> _Scan:
    unreadable: list[tuple[str, str]] = []
    found, classes, stray = _scan_folder(root, unreadable)
    limits = images.DecodeLimits.from_settings(settings)

    def read(c: _Candidate) -> bytes:
        return images.read_file_limited(Path(c.ref), limits, name=c.rel)

    scanned = _ingest(found, read, tmp, limits, unreadable, on_progress, _workers(settings))
    return _Scan(scanned, unreadable, classes, stray)


def _ingest_zip(
    path: Path,
    tmp: Path,
    settings: Settings,
    on_progress: Callable[[int, int], None] | None,
) -> _Scan:
    unreadable: list[tuple[str, str]] = []
    limits = images.DecodeLimits.from_settings(settings)
    try:
        with zipfile.ZipFile(path) as zf:
            try:
                validate_zip(zf, settings)
            except DatasetError as e:
                raise DatasetError(f"{path.name}: archive refused: {e}") from None
            found, classes, stray = _scan_zip(zf, unreadable)
            budget = [settings.max_zip_total_bytes]
            zip_lock = threading.Lock()

            def read(c: _Candidate) -> bytes:
                # One reader at a time: the archive's file handle and byte budget are shared.
                with zip_lock:
                    try:
                        return read_zip_entry(zf, c.ref, c.rel, limits, budget)
                    except DatasetError as e:
                        raise DatasetError(f"{path.name}: archive refused: {e}") from None

            workers = _workers(settings)
            scanned = _ingest(found, read, tmp, limits, unreadable, on_progress, workers)
    except zipfile.BadZipFile as e:
        raise DatasetError(f"{path.name}: damaged zip archive ({e})") from None
    return _Scan(scanned, unreadable, classes, stray)


def _ingest(
    found: list[_Candidate],
    read: Callable[[_Candidate], bytes],
    tmp: Path,
    limits: images.DecodeLimits,
    unreadable: list[tuple[str, str]],
    on_progress: Callable[[int, int], None] | None,
    workers: int,
) -> list[_Scanned]:
    """Validate each candidate with core.vision.images and copy the good ones into tmp/files."""
    files_dir = tmp / "files"
    for cls in sorted({c.cls for c in found}):
        (files_dir / cls).mkdir(parents=True, exist_ok=True)
    claimed: set[Path] = set()
    lock = threading.Lock()

    def one(c: _Candidate) -> _Scanned | str:
        try:
            data = read(c)
            # A full decode is the only way to know a file is not truncated halfway through.
            info, pixels = images.decode_with_info(data, name=c.rel, limits=limits)
        except InvalidImageError as e:
            reason = str(e)
            prefix = f"{c.rel}: "
            return reason[len(prefix) :] if reason.startswith(prefix) else reason
        sha = images.sha256_bytes(data)
        dest = files_dir / c.cls / f"{sha}.{images.FORMAT_EXTENSIONS[info.format]}"
        with lock:
            first = dest not in claimed
            claimed.add(dest)
        if first:
            _write_file(dest, data)
        return _Scanned(
            rel=c.rel,
            cls=c.cls,
            sha=sha,
            fmt=info.format,
            width=int(pixels.shape[1]),
            height=int(pixels.shape[0]),
            mode=info.mode,
            gray=images.is_grayscale_content(pixels),
        )

    out: list[_Scanned] = []
    total = len(found)
    # Threads overlap file I/O and fsync with decoding (Pillow and hashlib release the GIL).
    # A bounded window keeps memory flat on archives with many entries; results come back in
    # source order, so the outcome does not depend on thread timing.
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="import") as pool:
        window: deque[tuple[_Candidate, Future[_Scanned | str]]] = deque()
        pending = iter(found)
        done = 0
        try:
            for c in pending:
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
    window: deque[tuple[_Candidate, Future[_Scanned | str]]],
    out: list[_Scanned],
    unreadable: list[tuple[str, str]],
    done: int,
    total: int,
    on_progress: Callable[[int, int], None] | None,
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


def _write_json(path: Path, obj: Any) -> None:
    write_atomic(
        path, json.dumps(obj, indent=1, ensure_ascii=False).encode("utf-8"), sync_dir=False
    )


def _content_hash(entries: Sequence[ManifestEntry]) -> str:
    """Hash of what a model would see: each (class, image, split), order-independent."""
    h = hashlib.sha256(f"defectlens-dataset-v{MANIFEST_VERSION}\n".encode())
    for cls, sha, split in sorted((e.cls, e.sha256, e.split) for e in entries):
        h.update(f"{cls}\t{sha}\t{split}\n".encode())
    return h.hexdigest()


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
    scanned, unreadable, folder_classes = scan.scanned, scan.unreadable, scan.classes
    warns: list[str] = []
    if scan.stray:
        warns.append(f"{scan.stray} files outside the class folders were ignored")
    by_sha: dict[str, list[_Scanned]] = defaultdict(list)
    for s in scanned:
        by_sha[s.sha].append(s)
    duplicates = sorted(sorted(s.rel for s in g) for g in by_sha.values() if len(g) > 1)
    conflicts: list[dict[str, Any]] = []
    conflicting: set[str] = set()
    for sha, group in sorted(by_sha.items()):
        labels = sorted({s.cls for s in group})
        if len(labels) > 1:
            conflicting.add(sha)
            conflicts.append(
                {"sha256": sha, "classes": labels, "files": sorted(s.rel for s in group)}
            )
            for cls in labels:
                dest = tmp / "files" / cls / f"{sha}.{images.FORMAT_EXTENSIONS[group[0].fmt]}"
                dest.unlink(missing_ok=True)
    if conflicts:
        warns.append(
            f"{len(conflicts)} images appear under more than one class and were left out of "
            "training; check their labels"
        )
    # One entry per (class, image): exact copies in the same class would only weight it twice.
    kept: dict[str, _Scanned] = {}
    for s in scanned:
        if s.sha not in conflicting and s.sha not in kept:
            kept[s.sha] = s
    if duplicates:
        extra = sum(len(g) - 1 for g in duplicates)
        warns.append(f"{extra} duplicate files were stored once ({len(duplicates)} groups)")
    counts_all = Counter(s.cls for s in kept.values())
    class_counts = {c: counts_all.get(c, 0) for c in sorted(folder_classes)}
    class_names = [c for c, n in class_counts.items() if n > 0]
    empty = [c for c, n in class_counts.items() if n == 0]
    if empty:
        warns.append(f"class folders with no usable images were left out: {', '.join(empty)}")
    if len(class_names) < 2:
        found = ", ".join(f"{c} ({n})" for c, n in class_counts.items()) or "no class folders"
        raise DatasetError(f"{source}: need at least two classes with images; found {found}")
    small = [c for c in class_names if class_counts[c] < SMALL_CLASS]
    if small:
        warns.append(f"classes with fewer than {SMALL_CLASS} images: {', '.join(small)}")
    if unreadable:
        warns.append(f"{len(unreadable)} files could not be read and were skipped")

    entries = [
        ManifestEntry(
            file=f"files/{s.cls}/{s.sha}.{images.FORMAT_EXTENSIONS[s.fmt]}",
            cls=s.cls,
            sha256=s.sha,
            split="train",
            width=s.width,
            height=s.height,
            mode=s.mode,
            source=s.rel,
        )
        for s in sorted(kept.values(), key=lambda s: (s.cls, s.rel))
    ]
    if splits is None:
        entries = stratified_split(entries, split_params["val_fraction"], split_params["seed"])
        split_info: dict[str, Any] = {"method": "stratified", **split_params}
    else:
        entries, missing = _apply_split_file(entries, scanned, splits)
        if missing:
            warns.append(f"{missing} images not in the split file were put in train")
        split_info = {"method": "file", "counts": dict(Counter(e.split for e in entries))}

    counts = {c: class_counts[c] for c in class_names}
    grayscale = all(s.gray for s in kept.values())
    health = HealthReport(
        class_counts=class_counts,
        imbalance_ratio=round(max(counts.values()) / min(counts.values()), 3),
        unreadable=sorted(unreadable),
        duplicates=duplicates,
        conflicting_duplicates=conflicts,
        small_classes=small,
        sizes=_size_stats(list(kept.values())),
        modes=dict(sorted(Counter(s.mode for s in kept.values()).items())),
        grayscale=grayscale,
        warnings=warns,
        empty_classes=empty,
    )
    content_hash = _content_hash(entries)
    final = settings.datasets_dir / content_hash[:16]
    if final.exists():
        existing = load_snapshot(final)
        if existing.content_hash != content_hash:
            raise DatasetError(f"{final}: holds a different dataset (hash prefix collision)")
        log.info("dataset %s already imported as %s", source, final.name)
        return existing

    manifest = {
        "version": MANIFEST_VERSION,
        "content_hash": content_hash,
        "name": name,
        "source": str(source),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "class_names": class_names,
        "counts": counts,
        "grayscale": grayscale,
        "split": split_info,
        "entries": [asdict(e) for e in entries],
    }
    _write_json(tmp / "manifest.json", manifest)
    _write_json(tmp / "health.json", health.to_dict())
    fsync_dir(tmp)
    try:
        os.replace(tmp, final)
    except OSError:
        # Another import of the same data won the race; theirs is identical.
        if (final / "manifest.json").exists():
            return load_snapshot(final)
        raise
    fsync_dir(settings.datasets_dir)
    log.info(
        "imported %s as %s: %d images, %d classes", source, final.name, len(entries), len(counts)
    )
    return DatasetSnapshot(
        content_hash=content_hash,
        name=name,
        path=final,
        class_names=class_names,
        counts=counts,
        entries=entries,
        health=health,
        grayscale=grayscale,
    )


def _apply_split_file(
    entries: list[ManifestEntry], scanned: list[_Scanned], splits: dict[str, str]
) -> tuple[list[ManifestEntry], int]:
    """Splits from the file; an image listed under several names takes the evaluation side."""
    per_sha: dict[str, str] = {}
    for s in scanned:
        sp = splits.get(s.rel)
        if sp is not None and (
            s.sha not in per_sha or _SPLIT_PRIORITY[sp] < _SPLIT_PRIORITY[per_sha[s.sha]]
        ):
            per_sha[s.sha] = sp
    missing = sum(1 for e in entries if e.sha256 not in per_sha)
    return [replace(e, split=per_sha.get(e.sha256, "train")) for e in entries], missing


def _size_stats(scanned: list[_Scanned]) -> dict[str, Any]:
    if not scanned:
        return {}
    ws = [s.width for s in scanned]
    hs = [s.height for s in scanned]
    by_size = Counter(f"{s.width}x{s.height}" for s in scanned)
    return {
        "width": {"min": min(ws), "max": max(ws), "median": statistics.median(ws)},
        "height": {"min": min(hs), "max": max(hs), "median": statistics.median(hs)},
        # The 20 most common sizes are enough to see whether resizing will distort anything.
        "by_size": dict(by_size.most_common(20)),
        "distinct_sizes": len(by_size),
    }


# --------------------------------------------------------------------------- loading


def load_snapshot(path: Path) -> DatasetSnapshot:
    """Read a snapshot folder (manifest.json + health.json) and check its files are there."""
    path = Path(path)
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        health = HealthReport.from_dict(
            json.loads((path / "health.json").read_text(encoding="utf-8"))
        )
        entries = [ManifestEntry(**e) for e in manifest["entries"]]
    except FileNotFoundError as e:
        raise DatasetError(
            f"{path}: not a dataset snapshot ({Path(e.filename or '').name} missing)"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{path}: damaged snapshot ({e})") from None
    if _content_hash(entries) != manifest.get("content_hash"):
        raise DatasetError(f"{path}: manifest does not match its content hash")
    missing = [e.file for e in entries if not (path / e.file).is_file()]
    if missing:
        raise DatasetError(f"{path}: {len(missing)} files missing, e.g. {missing[0]}")
    return DatasetSnapshot(
        content_hash=manifest["content_hash"],
        name=manifest["name"],
        path=path,
        class_names=list(manifest["class_names"]),
        counts={str(k): int(v) for k, v in manifest["counts"].items()},
        entries=entries,
        health=health,
        grayscale=bool(manifest["grayscale"]),
    )
