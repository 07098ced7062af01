"""Durable file writes: a file is complete on disk before anything points at it."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from core.errors import InvalidImageError


def fsync_dir(folder: Path) -> None:
    """Make renames inside a folder durable; quietly skipped where folders can't be fsynced."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write to a temp name in the same folder, fsync, then os.replace (atomic on POSIX).

    With sync_dir=False the caller fsyncs the folder itself (once for many files).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:40]}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def read_bounded(path: Path, max_bytes: int, *, label: str, follow_symlinks: bool = True) -> bytes:
    """Read an input file's bytes, refusing it (InvalidImageError naming label) when it is over
    max_bytes or not a regular file. With follow_symlinks=False a symbolic link is refused when
    it is opened (O_NOFOLLOW), so a file swapped for a link after it was checked is not followed."""
    # O_NONBLOCK: a FIFO put in the file's place is refused below instead of hanging the open.
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise InvalidImageError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise InvalidImageError(f"{label}: is a folder, not a file") from None
    except PermissionError:
        raise InvalidImageError(f"{label}: permission denied") from None
    except OSError as e:
        if e.errno == errno.ELOOP and not follow_symlinks:
            raise InvalidImageError(f"{label}: is a symbolic link, not followed") from None
        raise InvalidImageError(f"{label}: cannot read file ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if stat.S_ISDIR(info.st_mode):
                raise InvalidImageError(f"{label}: is a folder, not a file")
            if not stat.S_ISREG(info.st_mode):
                raise InvalidImageError(f"{label}: not a regular file")
            if info.st_size > max_bytes:
                raise InvalidImageError(
                    f"{label}: {megabytes(info.st_size)} exceeds the {megabytes(max_bytes)} limit"
                )
            # Read one byte past the limit: the file may have grown since the stat.
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise InvalidImageError(f"{label}: cannot read file ({e.strerror or e})") from None
    if len(data) > max_bytes:
        raise InvalidImageError(f"{label}: exceeds the {megabytes(max_bytes)} limit")
    return data


def megabytes(n: int) -> str:
    """A byte count for a message: 1.5 MB below 10 MiB, 12 MB above."""
    return f"{n / (1024 * 1024):.1f} MB" if n < 10 * 1024 * 1024 else f"{n // (1024 * 1024)} MB"
