"""Concurrent writers on one database: SQLite (WAL, BEGIN IMMEDIATE) and PostgreSQL (marked)."""

from __future__ import annotations

import multiprocessing
import threading
import time
import traceback
from typing import Any

import pytest
from sqlalchemy import event, func, select, text

from db import migrate
from db.engine import SQLITE_BUSY_TIMEOUT_MS, Database
from db.models import Inspection

WORKERS = 4
INSERTS_PER_WORKER = 250


def _insert_worker(url: str, worker: int, count: int, start: Any, results: Any) -> None:
    """Runs in a spawned process: `count` inserts, each its own write transaction."""
    try:
        db = Database(url)
        with db.read() as session:  # connect (and set PRAGMAs) before the start line
            session.execute(text("SELECT 1"))
        start.wait(timeout=60)
        for n in range(count):
            with db.write() as session:
                session.add(
                    Inspection(
                        line=f"w{worker}",
                        serial=f"w{worker}-{n}",
                        predicted_class="ok",
                        confidence=0.9,
                    )
                )
        db.dispose()
        results.put((worker, None))
    except BaseException:  # noqa: BLE001 - report any failure to the parent test
        results.put((worker, traceback.format_exc()))
        raise


def _run_concurrent_inserts(url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_insert_worker, args=(url, w, INSERTS_PER_WORKER, start, results))
        for w in range(WORKERS)
    ]
    for p in procs:
        p.start()
    try:
        start.wait(timeout=120)  # every worker is connected; all start writing together
        outcomes = dict(results.get(timeout=300) for _ in procs)
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    errors = {w: tb for w, tb in outcomes.items() if tb}
    assert errors == {}, "\n".join(errors.values())
    assert [p.exitcode for p in procs] == [0] * WORKERS

    db = Database(url)
    try:
        with db.read() as session:
            total = session.scalar(select(func.count(Inspection.id)))
            per_line = dict(
                session.execute(
                    select(Inspection.line, func.count(Inspection.id)).group_by(Inspection.line)
                ).all()
            )
            serials = session.scalar(select(func.count(func.distinct(Inspection.serial))))
    finally:
        db.dispose()
    assert total == WORKERS * INSERTS_PER_WORKER
    assert per_line == {f"w{w}": INSERTS_PER_WORKER for w in range(WORKERS)}
    assert serials == WORKERS * INSERTS_PER_WORKER


@pytest.mark.slow
def test_four_processes_insert_into_one_sqlite_file_without_error(fresh_sqlite_url: str) -> None:
    migrate.upgrade(fresh_sqlite_url)
    _run_concurrent_inserts(fresh_sqlite_url)


@pytest.mark.slow
@pytest.mark.postgres
def test_four_processes_insert_into_postgresql_without_losing_rows(fresh_pg_url: str) -> None:
    migrate.upgrade(fresh_pg_url)
    _run_concurrent_inserts(fresh_pg_url)


@pytest.fixture
def sqlite_db(fresh_sqlite_url: str) -> Any:
    migrate.upgrade(fresh_sqlite_url)
    db = Database(fresh_sqlite_url)
    yield db
    db.dispose()


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(sqlite_db: Database) -> None:
    for open_session in (sqlite_db.read, sqlite_db.write):
        with open_session() as session:
            assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert session.execute(text("PRAGMA foreign_keys")).scalar() == 1
            busy = session.execute(text("PRAGMA busy_timeout")).scalar()
            assert busy == SQLITE_BUSY_TIMEOUT_MS
            assert busy >= 5000


def test_foreign_keys_are_enforced(sqlite_db: Database) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), sqlite_db.write() as session:
        session.add(Inspection(image_id=424242, predicted_class="ok", confidence=1.0))
    with sqlite_db.read() as session:
        assert session.scalar(select(func.count(Inspection.id))) == 0


def test_write_begins_immediate_and_read_does_not(sqlite_db: Database) -> None:
    statements: list[str] = []

    @event.listens_for(sqlite_db.engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.strip().upper())

    with sqlite_db.write() as session:
        session.add(Inspection(predicted_class="ok", confidence=1.0))
    write_begins = [s for s in statements if s.startswith("BEGIN")]
    statements.clear()
    with sqlite_db.read() as session:
        session.scalar(select(func.count(Inspection.id)))
    read_begins = [s for s in statements if s.startswith("BEGIN")]

    assert write_begins == ["BEGIN IMMEDIATE"]
    assert read_begins == ["BEGIN"]


def test_second_writer_waits_for_the_first_instead_of_failing(
    fresh_sqlite_url: str, sqlite_db: Database
) -> None:
    """BEGIN IMMEDIATE takes the write lock before the first statement: a second write()
    that reads first blocks on that read until the first commits, then sees the committed row
    and succeeds. (A DEFERRED BEGIN would read the old snapshot at once and then fail with
    "database is locked" on its upgrade to writer.) Readers are not blocked meanwhile (WAL)."""
    other = Database(fresh_sqlite_url)  # a separate engine, as another process would have
    first_open = threading.Event()
    release_first = threading.Event()
    seen: dict[str, Any] = {}

    def first_writer() -> None:
        with sqlite_db.write() as session:
            session.add(Inspection(serial="first", predicted_class="ok", confidence=1.0))
            session.flush()
            first_open.set()
            release_first.wait(timeout=30)
            seen["first_committed_at"] = time.monotonic()

    def second_writer() -> None:
        try:
            with other.write() as session:
                seen["count_seen"] = session.scalar(select(func.count(Inspection.id)))
                seen["second_read_at"] = time.monotonic()
                session.add(Inspection(serial="second", predicted_class="ok", confidence=1.0))
        except Exception as e:  # noqa: BLE001 - surfaced by the assertions below
            seen["error"] = repr(e)

    t1 = threading.Thread(target=first_writer)
    t1.start()
    try:
        assert first_open.wait(timeout=30)
        t2 = threading.Thread(target=second_writer)
        t2.start()
        time.sleep(0.5)
        assert t2.is_alive(), f"second write did not wait for the first: {seen}"
        assert "count_seen" not in seen
        with other.read() as session:  # WAL: a reader is not blocked by the open writer
            assert session.scalar(select(func.count(Inspection.id))) == 0
    finally:
        release_first.set()
        t1.join(timeout=30)
    t2.join(timeout=30)
    other.dispose()

    assert "error" not in seen, seen["error"]
    assert seen["second_read_at"] >= seen["first_committed_at"]
    assert seen["count_seen"] == 1
    with sqlite_db.read() as session:
        serials = session.scalars(select(Inspection.serial).order_by(Inspection.id)).all()
    assert serials == ["first", "second"]
