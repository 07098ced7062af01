"""core.storage_faults: the sentence each storage fault gets, and what it leaves alone."""

from __future__ import annotations

import errno
import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from core import storage_faults
from core.errors import StorageError


def _db(message: str) -> OperationalError:
    return OperationalError("INSERT …", {}, sqlite3.OperationalError(message))


@pytest.mark.parametrize(
    ("error", "says"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/data/images"),
            "the disk is full (/data/images)",
        ),
        (
            OSError(errno.EROFS, "Read-only file system", "/data"),
            "the file system is read-only (/data)",
        ),
        (OSError(errno.EACCES, "Permission denied", "/data"), "permission denied (/data)"),
        (_db("database or disk is full"), "the database's disk is full"),
        (_db("disk I/O error"), "disk I/O error"),
        (_db("attempt to write a readonly database"), "cannot be written"),
        (_db("database is locked"), "stayed locked by another process"),
        (_db('connection to server at "db" failed: Connection refused'), "cannot be reached"),
    ],
)
def test_each_fault_gets_one_sentence_without_the_drivers_text(error, says) -> None:  # type: ignore[no-untyped-def]
    text = storage_faults.explain(error)
    assert text is not None and says in text
    assert "sqlalche.me" not in text and "\n" not in text
    with (
        pytest.raises(StorageError, match=r"^saving parts: "),
        storage_faults.reported("saving parts"),
    ):
        raise error


@pytest.mark.parametrize("error", [ValueError("a bug"), OSError(errno.ENOENT, "No such file"),
                                   _db("no such table: inspections")])  # fmt: skip
def test_anything_else_is_left_as_it_is(error) -> None:  # type: ignore[no-untyped-def]
    assert storage_faults.explain(error) is None
    with pytest.raises(type(error)), storage_faults.reported("saving parts"):
        raise error
