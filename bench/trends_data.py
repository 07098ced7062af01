"""A year of synthetic production for bench/trends.py, bulk-loaded into a migrated database.

Three lines (3, 2 and 2 stations), two products (line 3 changes product every week), six
classes (ok ~93 %), three shifts on weekdays, Saturday early shift only, Sunday off, line 3
without a night shift, a two-week summer shutdown, a defect excursion on line 2 and a model
promoted half-way. Flagged parts (defect class or confidence < 90 %) older than two days are
mostly reviewed; some reviews correct the model and a few parts are reviewed twice.

Rows go in raw and fast: images, inspections and reviews are built as tuples from numpy arrays
and written with one executemany per batch (SQLite, through SQLAlchemy's driver connection) or
COPY (PostgreSQL, psycopg), bypassing per-value type processing. The stored formats are the
ones SQLAlchemy writes (checked by ``check_round_trip``); the rollup is then built by the
product's own ``rebuild``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import insert, select, text

from db.engine import Database
from db.models import FlagRule, Inspection, Model, User

LINES = ("L1", "L2", "L3")
STATIONS = (("S1", "S2", "S3"), ("S1", "S2"), ("S1", "S2"))
LINE_SHARE = (1.2, 1.0, 0.8)  # relative output per hour of each line
PRODUCTS = ("impeller-A", "impeller-B")
GOOD = "ok"
DEFECTS = ("scratch", "pit", "crack", "inclusion", "patch")
CLASSES = (GOOD, *DEFECTS)
DEFECT_MIX = (0.35, 0.25, 0.10, 0.20, 0.10)
LINE_DEFECT_RATE = (0.05, 0.07, 0.09)  # predicted defects; ~7 % overall, so ok ~93 %
MIN_CONFIDENCE = 0.9
REVIEWERS = 3
BATCH = 100_000

_IMAGE_COLUMNS = ("id", "sha256", "stored_path", "size_bytes", "format", "width", "height",
                  "created_at")  # fmt: skip
_INSPECTION_COLUMNS = (
    "id", "image_id", "source_name", "captured_at", "line", "station", "product", "lot",
    "serial", "model_id", "predicted_class", "confidence", "probabilities", "is_defect",
    "flagged", "flag_reason", "flag_rule_id", "heatmap_path", "latency_ms", "is_demo",
    "review_version", "created_at",
)  # fmt: skip
_REVIEW_COLUMNS = ("id", "inspection_id", "reviewer_id", "true_class", "disposition", "note",
                   "version", "created_at")  # fmt: skip


@dataclass
class Parts:
    """Every generated part as columns (index i is inspection id i + 1), in capture order."""

    t_us: np.ndarray  # capture time, microseconds since the epoch (UTC)
    line: np.ndarray
    station: np.ndarray
    product: np.ndarray
    model: np.ndarray  # 1 or 2
    predicted: np.ndarray  # index into CLASSES
    confidence: np.ndarray
    reviews: np.ndarray  # 0, 1 or 2 reviews
    true_class: np.ndarray  # final reviewed class (index), meaningful where reviews > 0


def _hour_weights(start: datetime, hours: int) -> np.ndarray:
    """(line, hour) production intensity: shifts, weekends, shutdown; rows of LINES."""
    h = np.arange(hours)
    t = np.datetime64(start.replace(tzinfo=None), "h") + h
    day = t.astype("datetime64[D]").astype(np.int64)
    weekday = (day + 3) % 7  # 1970-01-01 was a Thursday; Monday is 0
    hod = t.astype(np.int64) % 24
    early = (hod >= 6) & (hod < 14)
    late = (hod >= 14) & (hod < 22)
    base = np.where(early, 1.0, np.where(late, 0.9, 0.6))
    base[weekday == 6] = 0.0
    base[(weekday == 5) & ~early] = 0.0
    base[(h >= 210 * 24) & (h < 224 * 24)] = 0.0  # summer shutdown
    w = np.stack([base * share for share in LINE_SHARE])
    w[2, ~(early | late)] = 0.0  # line 3 runs two shifts
    return w


def make_parts(rows: int, end: datetime, seed: int = 0) -> Parts:
    """``rows`` parts over the 365 days before ``end`` (an hour boundary, UTC)."""
    rng = np.random.default_rng(seed)
    hours = 365 * 24
    start = end - timedelta(hours=hours)
    weights = _hour_weights(start, hours)
    counts = rng.multinomial(rows, (weights / weights.sum()).ravel())
    cell = np.repeat(np.arange(counts.size), counts)
    line, hour = cell // hours, cell % hours
    t_us = (int(start.timestamp()) + hour * 3600) * 1_000_000 + rng.integers(0, 3_600_000_000, rows)
    order = np.argsort(t_us, kind="stable")
    t_us, line, hour = t_us[order], line[order], hour[order]
    week = hour // (24 * 7)
    station = (rng.random(rows) * np.array([len(s) for s in STATIONS])[line]).astype(np.int8)
    product = np.where(line == 0, 0, np.where(line == 1, 1, week % 2)).astype(np.int8)
    rate = np.array(LINE_DEFECT_RATE)[line]
    rate = rate * np.where((hour % 24 >= 22) | (hour % 24 < 6), 1.15, 1.0)  # nights are worse
    rate = np.where((line == 1) & (week >= 30) & (week < 34), rate * 1.8, rate)  # excursion
    is_defect = rng.random(rows) < rate
    defect_class = 1 + rng.choice(len(DEFECTS), rows, p=DEFECT_MIX)
    predicted = np.where(is_defect, defect_class, 0).astype(np.int8)
    confidence = np.where(
        is_defect, 0.55 + 0.44 * rng.beta(4.0, 1.5, rows), 1.0 - rng.beta(1.0, 30.0, rows)
    )
    flagged = is_defect | (confidence < MIN_CONFIDENCE)
    old = t_us < int((end - timedelta(days=2)).timestamp()) * 1_000_000
    reviewed = flagged & old & (rng.random(rows) < 0.7)
    reviews = np.where(reviewed, np.where(rng.random(rows) < 0.04, 2, 1), 0).astype(np.int8)
    u = rng.random(rows)
    other = 1 + rng.choice(len(DEFECTS), rows, p=DEFECT_MIX)
    # Corrections: 15 % of unsure "ok" parts are defects; 12 % of defects are false alarms
    # and 5 % another defect class.
    true_class = np.where(
        predicted == 0,
        np.where(u < 0.15, other, 0),
        np.where(u < 0.12, 0, np.where(u < 0.17, other, predicted)),
    ).astype(np.int8)
    model = np.where(hour < 180 * 24, 1, 2).astype(np.int8)
    return Parts(t_us, line.astype(np.int8), station, product, model, predicted, confidence,
                 reviews, true_class)  # fmt: skip


def _timestamps(t_us: np.ndarray, postgres: bool) -> list[str]:
    """Times as stored: SQLAlchemy's SQLite text format, or timestamptz text for COPY."""
    iso = np.datetime_as_string(t_us.astype("datetime64[us]"), unit="us").tolist()
    if postgres:
        return [s + "+00" for s in iso]
    return [s.replace("T", " ") for s in iso]


def _batch_rows(p: Parts, lo: int, hi: int, postgres: bool) -> tuple[list[Any], ...]:
    """(images, inspections, reviews) rows of parts [lo, hi)."""
    ids = range(lo + 1, hi + 1)
    captured = _timestamps(p.t_us[lo:hi], postgres)
    created = _timestamps(p.t_us[lo:hi] + 1_500_000, postgres)
    # A monotonic prefix keeps inserts into the unique sha256 index sequential; the trends
    # never read images, so the loading speed, not the key distribution, is what matters.
    shas = [f"{i:016x}{os.urandom(24).hex()}" for i in ids]
    images = [
        (i, sha, f"{sha[:2]}/{sha[2:4]}/{sha}.png", 88_000, "PNG", 300, 300, c)
        for i, sha, c in zip(ids, shas, created, strict=True)
    ]
    line = [LINES[x] for x in p.line[lo:hi].tolist()]
    pairs = zip(p.line[lo:hi].tolist(), p.station[lo:hi].tolist(), strict=True)
    station = [STATIONS[li][s] for li, s in pairs]
    product = [PRODUCTS[x] for x in p.product[lo:hi].tolist()]
    predicted = [CLASSES[x] for x in p.predicted[lo:hi].tolist()]
    conf = p.confidence[lo:hi].tolist()
    versions = p.reviews[lo:hi].tolist()
    inspections = []
    for k, i in enumerate(ids):
        cls, c, ln = predicted[k], conf[k], line[k]
        rest = round((1.0 - c) / 5, 4)
        probs = "{" + ", ".join(f'"{n}": {round(c, 4) if n == cls else rest}' for n in CLASSES)
        defect = cls != GOOD
        reasons = ([f"defect: {cls}"] if defect else []) + (
            [f"unsure: {c:.0%} < 90%"] if c < MIN_CONFIDENCE else []
        )
        flagged = bool(reasons)
        serial = f"{product[k][-1]}{i:09d}"
        inspections.append((
            i, i, f"cam-{ln}-{station[k]}/{serial}.png", captured[k], ln, station[k],
            product[k], f"LOT-{ln}-{captured[k][:10]}", serial, int(p.model[lo + k]), cls, c,
            probs + "}", defect, flagged, "; ".join(reasons) or None,
            1 + int(p.product[lo + k]), f"heatmaps/{shas[k]}.png" if flagged else None,
            3.2, False, versions[k], created[k],
        ))  # fmt: skip
    return images, inspections, _review_rows(p, lo, hi, postgres)


def _review_rows(p: Parts, lo: int, hi: int, postgres: bool) -> list[Any]:
    """Each reviewed part's reviews: a second one (version 2) holds the final class."""
    idx = lo + np.flatnonzero(p.reviews[lo:hi])
    created = _timestamps(p.t_us[idx] + 3_600_000_000 * (1 + idx % 47), postgres)
    rows = []
    for k, i in enumerate(idx.tolist()):
        final = CLASSES[int(p.true_class[i])]
        n = int(p.reviews[i])
        for version in range(1, n + 1):
            true = final if version == n else CLASSES[int(p.predicted[i])]
            disposition = "accept" if true == GOOD else ("scrap" if i % 5 < 3 else "rework")
            note = "re-inspected under ring light" if version == 2 else None
            rows.append((2 * i + version, i + 1, 1 + i % REVIEWERS, true, disposition, note,
                         version, created[k]))  # fmt: skip
    return rows


def _reference_rows(db: Database) -> None:
    """Reviewers, the two models (promoted half-way) and the two products' flagging rules."""
    with db.write() as s:
        s.execute(
            insert(User),
            [
                {
                    "id": 1 + k,
                    "username": f"reviewer{k + 1}",
                    "password_hash": "!bench",
                    "role": "reviewer",
                }
                for k in range(REVIEWERS)
            ],  # fmt: skip
        )
        s.execute(
            insert(Model),
            [
                {
                    "id": m,
                    "name": f"bench model {m}",
                    "architecture": "defectnet",
                    "class_names": list(CLASSES),
                    "artifact_path": f"/nonexistent/bench-{m}/model.json",
                    "artifact_sha256": "0" * 64,
                    "status": "archived" if m == 1 else "active",
                }
                for m in (1, 2)
            ],  # fmt: skip
        )
        s.execute(
            insert(FlagRule),
            [
                {
                    "id": k + 1,
                    "product": name,
                    "version": 1,
                    "good_classes": [GOOD],
                    "min_confidence": MIN_CONFIDENCE,
                }
                for k, name in enumerate(PRODUCTS)
            ],  # fmt: skip
        )


def _copy(cursor: Any, table: str, columns: Sequence[str], rows: list[Any]) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def load(db: Database, parts: Parts) -> dict[str, int]:
    """Bulk-insert the reference rows, images, inspections and reviews; row counts."""
    _reference_rows(db)
    postgres = not db.is_sqlite
    tables = (("images", _IMAGE_COLUMNS), ("inspections", _INSPECTION_COLUMNS),
              ("reviews", _REVIEW_COLUMNS))  # fmt: skip
    counts = dict.fromkeys(("images", "inspections", "reviews"), 0)
    raw = db.engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        if not postgres:
            driver.execute("PRAGMA cache_size = -512000")  # 500 MB for the load connection
        n = len(parts.t_us)
        for lo in range(0, n, BATCH):
            batches = _batch_rows(parts, lo, min(lo + BATCH, n), postgres)
            if postgres:
                with driver.cursor() as cur:
                    for (table, columns), rows in zip(tables, batches, strict=True):
                        _copy(cur, table, columns, rows)
                driver.commit()
            else:
                driver.execute("BEGIN")
                for (table, columns), rows in zip(tables, batches, strict=True):
                    marks = ", ".join("?" * len(columns))
                    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                    driver.executemany(sql, rows)
                driver.execute("COMMIT")
            for (table, _), rows in zip(tables, batches, strict=True):
                counts[table] += len(rows)
        if postgres:
            with driver.cursor() as cur:
                for table in ("users", "models", "flag_rules", "images", "inspections", "reviews"):
                    cur.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT max(id) FROM {table}))"
                    )
            driver.commit()
    finally:
        raw.close()
    return counts


def analyze(db: Database) -> None:
    """PostgreSQL: refresh planner statistics, as autovacuum does soon after a bulk load."""
    if db.is_sqlite:
        return
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))


def check_round_trip(db: Database, parts: Parts) -> None:
    """The raw rows read back through the ORM types as the times that were generated."""
    k = len(parts.t_us) // 2
    with db.read() as s:
        got = s.scalar(select(Inspection.captured_at).where(Inspection.id == k + 1))
    want = datetime.fromtimestamp(int(parts.t_us[k]) / 1e6, UTC)
    if got is None or abs((got - want).total_seconds()) > 1e-3:
        raise SystemExit(f"bulk-loaded time reads back as {got}, expected {want}")
