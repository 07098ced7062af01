"""What a person is told when the disk or the database fails under DefectLens.

A full disk, a read-only data directory, a database another process holds too long or one that
cannot be reached surface deep in the stack as an ``OSError`` or a driver's
``OperationalError``, whose text is a driver's (with a link to SQLAlchemy's error pages).
``explain`` turns the ones a plant will meet into one sentence that names the place and what
to do; ``reported`` re-raises them as ``StorageError`` (a DefectLensError, so the pages and
the CLI show it like any other refusal). Nothing of the step that failed was stored: files are
written before the transaction that points at them, and the transaction is rolled back.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError, OperationalError

from core.errors import DefectLensError, StorageError

_FULL = (errno.ENOSPC, errno.EDQUOT)
_READ_ONLY = (errno.EROFS, errno.EACCES, errno.EPERM)


def _os_error(e: OSError) -> str | None:
    where = f" ({e.filename})" if e.filename else ""
    if e.errno in _FULL:
        return f"the disk is full{where}: free space, then try again"
    if e.errno == errno.EROFS:
        return (f"the file system is read-only{where}: DefectLens must be able to write its "
                "data directory")  # fmt: skip
    if e.errno in (errno.EACCES, errno.EPERM):
        return (f"permission denied{where}: the data directory must be owned and writable by the "
                "user DefectLens runs as")  # fmt: skip
    return None


def _db_error(e: DBAPIError) -> str | None:
    text = str(e.orig).lower() if e.orig is not None else str(e).lower()
    if "database or disk is full" in text or "no space left" in text or "could not extend" in text:
        return "the database's disk is full: free space, then try again"
    if "disk i/o error" in text:
        return ("the database's disk failed to read or write (disk I/O error; a full disk does "
                "this too): check the disk and its free space, then try again")  # fmt: skip
    if "readonly database" in text or "read-only" in text or "unable to open database" in text:
        return ("the database file cannot be written (read-only, or not owned by the user "
                "DefectLens runs as)")  # fmt: skip
    if "database is locked" in text or "database table is locked" in text:
        return (
            "the database stayed locked by another process for longer than the 30 s wait: "
            "try again; if it persists, look for a process holding a long transaction"
        )
    if "connection refused" in text or "could not connect" in text or "timeout expired" in text:
        return "the database server cannot be reached: check that it runs and DEFECTLENS_DB_URL"
    return None


def explain(error: BaseException) -> str | None:
    """One sentence for a storage fault a plant will meet; None for anything else."""
    if isinstance(error, OSError):
        return _os_error(error)
    if isinstance(error, OperationalError):
        return _db_error(error)
    return None


@contextmanager
def reported(what: str) -> Iterator[None]:
    """Re-raise a storage fault inside as StorageError("<what>: <explanation>")."""
    try:
        yield
    except DefectLensError:
        raise
    except (OSError, OperationalError) as e:
        message = explain(e)
        if message is None:
            raise
        raise StorageError(f"{what}: {message}") from e
