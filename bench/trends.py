"""Trends page speed over the hourly rollup at 1M / 10M inspections (issue 10), vs pandas.

One run, on one backend:
  * a fresh database (SQLite in a temp data directory, or a new PostgreSQL database created
    beside --pg-url and dropped afterwards), migrated with Alembic;
  * a year of synthetic production bulk-loaded into it (bench/trends_data.py; ``generate_s``);
  * the rollup built by the product's ``core.quality.rollup.rebuild`` (``rebuild_s``);
  * every statement the Trends page runs (QUERIES), warm, ``--runs`` times per view (period
    preset x filter): median and p90 in ms, keyed "name/view";
  * the whole page (PAGE: one call of each core function the page makes) per view, summed
    per repetition (``page_ms``);
  * the baseline: the raw inspection rows of the period read into pandas with ``pd.read_sql``
    and grouped by hour, line and class there (``baseline_ms``).

``--ingest-overhead`` instead times the real ingest (core.quality.ingest.ingest, in process,
the casting test split, the model in bench/out/ingest_model_home) with and without the rollup
maintenance, interleaved ABBA; "without" is a bench-only patch of db.queries.rollups'
cells_of_parts / apply to no-ops.

To time another page query, add one entry to QUERIES (a statement, run per view unless
per_view=False) and, when the page calls a new core function, one to PAGE.

Usage:
  python bench/trends.py --rows 1000000 --backend sqlite --json
  python bench/trends.py --rows 1000000 --backend postgres [--pg-url URL] --json
  python bench/trends.py --ingest-overhead --json
Results are also written to bench/out/trends/<backend>_<rows>.json (ingest_overhead.json).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import pandas as pd
import trends_data
from common import OUT_DIR, ROOT, dataset_dir, emit, machine
from sqlalchemy import and_, create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from core import setup
from core.auth.permissions import SYSTEM, CurrentUser
from core.config import Settings, load_settings
from core.quality import pdf_report, rollup, trends
from db.engine import Database
from db.models import Inspection, Review
from db.queries import rollups as rollup_queries
from db.queries.trends import TrendFilter

DEFAULT_PG_URL = "postgresql+psycopg://defectlens:defectlens@127.0.0.1:55432/defectlens_test"
PERIODS = {"7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90),
           "365d": timedelta(days=365)}  # fmt: skip
FILTERS = {"all": TrendFilter(), "line=L2": TrendFilter(line="L2")}
TARGETS = {1_000_000: {"query_median_ms": 100, "page_ms": 500},
           10_000_000: {"query_median_ms": 300}}  # fmt: skip


@dataclass(frozen=True)
class View:
    """What the page shows: a period ending at the next hour (as its presets do) and a filter."""

    name: str
    since: datetime
    until: datetime
    where: TrendFilter


@dataclass(frozen=True)
class Page:
    """What the page's core calls need besides the view."""

    db: Database
    settings: Settings
    actor: CurrentUser


@dataclass(frozen=True)
class Query:
    """One statement the page runs (through core), timed on its own.

    ``needs`` names the db.queries function ("module.function"); ``run`` gets it resolved. An
    entry whose function is not in this checkout is skipped (and listed as such)."""

    needs: str
    run: Callable[[Any, Session, View], object]
    per_view: bool = True


@dataclass(frozen=True)
class Call:
    """One core.quality.trends function the page calls, with the view's arguments."""

    run: Callable[[Any, Page, View], object]


def _bucket(v: View) -> str:
    return trends.default_bucket(v.since, v.until)


def _previous(v: View) -> tuple[datetime, datetime]:
    return v.since - (v.until - v.since), v.since


# The statements behind the Trends page, as core.quality.trends runs them.
QUERIES: dict[str, Query] = {
    "hourly": Query("trends.hourly", lambda f, s, v: f(s, v.since, v.until, v.where)),
    "hourly_previous": Query("trends.hourly", lambda f, s, v: f(s, *_previous(v), v.where)),
    "rates_by_line": Query("trends.rates_by_line", lambda f, s, v: f(s, v.since, v.until, v.where)),
    "defect_classes": Query(
        "trends.defect_classes", lambda f, s, v: f(s, v.since, v.until, v.where)
    ),
    "hourly_classes": Query(
        "trends.hourly_classes", lambda f, s, v: f(s, v.since, v.until, v.where)
    ),
    "active_baseline": Query(
        "baselines.active_baseline", lambda f, s, v: f(s, v.where, _bucket(v))
    ),
    "annotations": Query(
        "timeline.annotations_between", lambda f, s, v: f(s, v.since, v.until, v.where.line)
    ),
    "model_changes": Query("timeline.model_changes", lambda f, s, v: f(s, v.since, v.until)),
    "rule_changes": Query(
        "timeline.rule_changes", lambda f, s, v: f(s, v.since, v.until, v.where.product)
    ),
    "filter_values": Query("trends.filter_values", lambda f, s, v: f(s), per_view=False),
    "models_with_parts": Query("trends.models_with_parts", lambda f, s, v: f(s), per_view=False),
}

# One call of each core.quality.trends function the page makes (pages/trends.py), with the
# bucket the page would choose; one this checkout lacks is skipped.
PAGE: dict[str, Call] = {
    "filter_values": Call(lambda f, p, v: f(p.db, p.actor)),
    "trend_report": Call(lambda f, p, v: f(p.db, p.settings, p.actor, v.since, v.until, v.where)),
    "rate_by_line": Call(
        lambda f, p, v: f(p.db, p.settings, p.actor, v.since, v.until, v.where, _bucket(v))
    ),
    "model_values": Call(lambda f, p, v: f(p.db, p.actor)),
}


def _resolve(dotted: str) -> Any | None:
    """db.queries.<module>.<function>, or None when this checkout has no such function."""
    module, _, name = dotted.rpartition(".")
    try:
        return getattr(importlib.import_module(f"db.queries.{module}"), name, None)
    except ModuleNotFoundError:
        return None


def views(end: datetime) -> list[View]:
    """Every period preset with every filter."""
    return [
        View(f"{p}/{f}", end - length, end, where)
        for p, length in PERIODS.items()
        for f, where in FILTERS.items()
    ]


def _ms(fn: Callable[[], object], runs: int) -> tuple[list[float], list[float]]:
    """Wall and CPU times (this process) of ``runs`` calls after one warm-up call."""
    fn()
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    return wall, cpu


def _summary(times: list[float], cpu: list[float] | None = None) -> dict[str, float]:
    """Median and p90 of the wall times; the median CPU time of this process too, if given (on
    a shared 2-core machine it moves less with the others' load; PostgreSQL's own CPU is not
    in it)."""
    q = statistics.quantiles(times, n=10, method="inclusive") if len(times) > 1 else times * 9
    out = {"median_ms": round(statistics.median(times), 2), "p90_ms": round(q[8], 2)}
    if cpu:
        out["cpu_median_ms"] = round(statistics.median(cpu), 2)
    return out


def time_queries(db: Database, vs: list[View], runs: int) -> dict[str, dict[str, float]]:
    """Median and p90 of every statement, each in its own read session, as the page opens one."""
    out = {}
    for name, q in QUERIES.items():
        fn = _resolve(q.needs)
        if fn is None:
            continue
        for v in vs if q.per_view else vs[:1]:

            def call(q: Query = q, v: View = v, fn: Any = fn) -> object:
                with db.read() as s:
                    return q.run(fn, s, v)

            out[f"{name}/{v.name}" if q.per_view else name] = _summary(*_ms(call, runs))
    return out


def time_pdf(page: Page, v: View, runs: int = 3) -> dict[str, Any]:
    """The PDF trend report of a month (the report and the PDF, as the page's button does).
    The bench's parts have no image files, so the 12 thumbnails are skipped (logged)."""
    logging.getLogger("core.quality.pdf_report").setLevel(logging.ERROR)

    def make() -> bytes:
        report = trends.trend_report(page.db, page.settings, page.actor, v.since, v.until,
                                     v.where)  # fmt: skip
        return pdf_report.trend_pdf(page.db, page.settings, page.actor, report)

    first = time.perf_counter()
    size = len(make())  # the first one also pays matplotlib's import
    cold = (time.perf_counter() - first) * 1000
    wall, _ = _ms(make, runs)
    return _summary(wall) | {"first_ms": round(cold, 1), "bytes": size, "view": v.name}


def time_page(page: Page, vs: list[View], runs: int) -> dict[str, dict[str, Any]]:
    """Per view: the page's core calls one after another, timed per repetition and summed."""
    out: dict[str, dict[str, Any]] = {}
    for v in vs:
        present = {n: (c, f) for n, c in PAGE.items() if (f := getattr(trends, n, None))}
        totals: list[float] = []
        cpu_totals: list[float] = []
        calls: dict[str, list[float]] = {name: [] for name in present}
        for rep in range(runs + 1):  # the first repetition warms up
            total, cpu = 0.0, time.process_time()
            for name, (c, f) in present.items():
                t = time.perf_counter()
                c.run(f, page, v)
                ms = (time.perf_counter() - t) * 1000
                total += ms
                if rep:
                    calls[name].append(ms)
            if rep:
                totals.append(total)
                cpu_totals.append((time.process_time() - cpu) * 1000)
        out[v.name] = _summary(totals, cpu_totals) | {
            "calls_median_ms": {k: round(statistics.median(t), 2) for k, t in calls.items()}
        }
    return out


def _baseline_once(db: Database, v: View) -> int:
    """The raw rows of the period into pandas, grouped by hour, line and class there."""
    current = and_(
        Review.inspection_id == Inspection.id, Review.version == Inspection.review_version
    )
    stmt = (
        select(Inspection.captured_at, Inspection.line, Inspection.predicted_class,
               Inspection.is_defect, Inspection.flagged, Inspection.confidence, Review.true_class)
        .outerjoin(Review, current)
        .where(Inspection.captured_at >= v.since, Inspection.captured_at < v.until,
               *[getattr(Inspection, k) == val for k, val in _filter_items(v.where)])
    )  # fmt: skip
    with db.engine.connect() as conn:
        df = pd.read_sql(stmt, conn)
    df["hour"] = pd.to_datetime(df["captured_at"], utc=True).dt.floor("h")
    df["reviewed"] = df["true_class"].notna()
    df["class_name"] = df["true_class"].fillna(df["predicted_class"])
    df["defect"] = (
        df["is_defect"].astype(bool).where(~df["reviewed"], df["class_name"] != trends_data.GOOD)
    )
    grouped = df.groupby(["hour", "line", "class_name"]).agg(
        parts=("class_name", "size"), defects=("defect", "sum"), flagged=("flagged", "sum"),
        reviewed=("reviewed", "sum"), confidence_sum=("confidence", "sum"),
    )  # fmt: skip
    return len(df) if len(grouped) else 0


def _filter_items(where: TrendFilter) -> list[tuple[str, Any]]:
    return [(k, val) for k in ("line", "station", "product") if (val := getattr(where, k))]


def time_baseline(
    db: Database, vs: list[View], names: list[str], runs: int
) -> dict[str, dict[str, Any]]:
    """Median and p90 of the pandas baseline for the named views (after one warm-up call)."""
    out = {}
    for v in vs:
        if v.name in names:
            rows = _baseline_once(db, v)
            times = []
            for _ in range(runs):
                t = time.perf_counter()
                _baseline_once(db, v)
                times.append((time.perf_counter() - t) * 1000)
            out[v.name] = _summary(times) | {"rows": rows}
    return out


def plans(db: Database, vs: list[View]) -> dict[str, list[str]]:
    """The query plan of each statement of the hourly queries in the year view and a filtered
    month (SQLite EXPLAIN QUERY PLAN; PostgreSQL EXPLAIN ANALYZE), for finding why one is slow."""
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    out: dict[str, list[str]] = {}
    picked = [v for v in vs if v.name in ("365d/all", "30d/line=L2")]
    for name, q in QUERIES.items():
        fn = _resolve(q.needs)
        if fn is None:
            continue
        for v in picked if q.per_view else picked[:1]:
            seen.clear()
            event.listen(db.engine, "before_cursor_execute", capture)
            try:
                with db.read() as s:
                    q.run(fn, s, v)
            finally:
                event.remove(db.engine, "before_cursor_execute", capture)
            prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
            lines: list[str] = []
            with db.engine.connect() as conn:
                for statement, params in seen:
                    if statement.lstrip().upper().startswith("SELECT"):
                        rows = conn.exec_driver_sql(prefix + statement, params).all()
                        lines += [" | ".join(str(c) for c in r) for r in rows]
            out[f"{name}/{v.name}" if q.per_view else name] = lines
    return out


def coverage(page: Page, v: View) -> dict[str, list[str]]:
    """What one page load ran that the bench does not time on its own, and what it skipped:
    the outermost db.queries function behind every statement the PAGE calls execute, and the
    core.quality.trends functions taking a database that pages/trends.py calls but PAGE lacks."""
    queries_dir = str(Path(rollup_queries.__file__).parent)
    called: set[str] = set()

    def capture(*_: Any) -> None:
        frame, found = sys._getframe(1), None
        while frame is not None:
            code = frame.f_code
            if code.co_filename.startswith(queries_dir) and not code.co_name.startswith("_"):
                found = f"{Path(code.co_filename).stem}.{code.co_name}"
            frame = frame.f_back
        if found:
            called.add(found)

    event.listen(page.db.engine, "before_cursor_execute", capture)
    try:
        for name, c in PAGE.items():
            if (f := getattr(trends, name, None)) is not None:
                c.run(f, page, v)
    finally:
        event.remove(page.db.engine, "before_cursor_execute", capture)
    timed = {q.needs for q in QUERIES.values() if _resolve(q.needs) is not None}
    source = (ROOT / "pages" / "trends.py").read_text()
    page_calls = {
        n for n in re.findall(r"\btrends\.(\w+)\(", source)
        if callable(f := getattr(trends, n, None)) and "db" in inspect.signature(f).parameters
    }  # fmt: skip
    return {
        "page_queries": sorted(called),
        "untimed_queries": sorted(called - timed),
        "skipped_queries": sorted(k for k, q in QUERIES.items() if _resolve(q.needs) is None),
        "page_calls_not_timed": sorted(page_calls - PAGE.keys()),
    }


def _code_version() -> dict[str, Any]:
    """The commit and the files changed since, so a figure names the code it ran."""
    import subprocess

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout

    dirty = [line[3:] for line in git("status", "--porcelain").splitlines()
             if line[3:].startswith(("core/", "db/"))]  # fmt: skip
    return {"commit": git("rev-parse", "HEAD").strip(), "changed_since": dirty}


@contextmanager
def fresh_database(backend: str, pg_url: str, keep: bool) -> Iterator[tuple[Settings, Database]]:
    """A migrated, empty database (and data directory), removed afterwards unless ``keep``."""
    home = Path(tempfile.mkdtemp(prefix="defectlens_trends_"))
    env = {"DEFECTLENS_HOME": str(home)}
    admin = None
    name = f"dl_bench_{uuid.uuid4().hex[:10]}"
    if backend == "postgres":
        base = make_url(pg_url)
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        env["DEFECTLENS_DB_URL"] = base.set(database=name).render_as_string(hide_password=False)
    settings = load_settings(env)
    db = None
    try:
        setup.migrate(settings)
        db = setup.open_database(settings)
        yield settings, db
    finally:
        if db is not None:
            db.dispose()
        if keep:
            print(f"kept: {settings.db_url} in {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        if admin is not None:
            admin.dispose()


def _db_bytes(db: Database, settings: Settings) -> int:
    if db.is_sqlite:
        return sum(p.stat().st_size for p in settings.home.glob("defectlens.db*"))
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())


def trends_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Generate, rebuild, time; the JSON object of one run."""
    before, code = machine(), _code_version()  # what this process imports, at its start
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    with fresh_database(args.backend, args.pg_url, args.keep) as (settings, db):
        t = time.perf_counter()
        parts = trends_data.make_parts(args.rows, end, args.seed)
        counts = trends_data.load(db, parts)
        trends_data.analyze(db)
        generate_s = time.perf_counter() - t
        trends_data.check_round_trip(db, parts)
        del parts
        load_after_generate = os.getloadavg()
        t = time.perf_counter()
        rollup_rows = rollup.rebuild(db)
        rebuild_s = time.perf_counter() - t
        trends_data.analyze(db)
        load_after_rebuild = os.getloadavg()
        vs = views(end)
        page = Page(db, settings, SYSTEM)
        queries = time_queries(db, vs, args.runs)
        page_ms = time_page(page, vs, args.runs)
        baseline = time_baseline(db, vs, args.baseline_views.split(","), args.baseline_runs)
        pdf = time_pdf(page, next(v for v in vs if v.name == "30d/all"))
        explained = plans(db, vs)
        covered = coverage(page, vs[-1])
        size = _db_bytes(db, settings)
    target = TARGETS.get(args.rows, {})
    limit = target.get("query_median_ms")
    page_limit = target.get("page_ms")
    missed = [k for k, q in queries.items() if limit is not None and q["median_ms"] > limit]
    missed += [f"page/{k}" for k, p in page_ms.items()
               if page_limit is not None and p["median_ms"] > page_limit]  # fmt: skip
    return {
        "bench": "trends",
        "backend": args.backend,
        "rows": args.rows,
        "table_rows": counts,
        "rollup_rows": rollup_rows,
        "generate_s": round(generate_s, 1),
        "rebuild_s": round(rebuild_s, 1),
        "database_bytes": size,
        "runs": args.runs,
        "baseline_runs": args.baseline_runs,
        "period_end": end.isoformat(),
        "queries": queries,
        "page_ms": page_ms,
        "baseline_ms": baseline,
        "pdf_ms": pdf,
        "targets": target,
        "missed": missed,
        "coverage": covered,
        "code": code,
        "plans": explained,
        "loadavg": {
            "after_generate": [round(x, 2) for x in load_after_generate],
            "after_rebuild": [round(x, 2) for x in load_after_rebuild],
        },
        "machine_before": before,
        "machine": machine(),
    }


@contextmanager
def _rollup_calls(enabled: bool, spent: list[float]) -> Iterator[None]:
    """Ingest's rollup maintenance as is (timed into ``spent``), or patched to no-ops."""
    real_cells, real_apply = rollup_queries.cells_of_parts, rollup_queries.apply

    def cells(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return real_cells(*a, **k)
        finally:
            spent.append(time.perf_counter() - t)

    def apply(*a: Any, **k: Any) -> None:
        t = time.perf_counter()
        try:
            real_apply(*a, **k)
        finally:
            spent.append(time.perf_counter() - t)

    with (
        mock.patch.object(rollup_queries, "cells_of_parts", cells if enabled else lambda *a: {}),
        mock.patch.object(rollup_queries, "apply", apply if enabled else lambda *a: None),
    ):
        yield


def ingest_overhead(args: argparse.Namespace) -> dict[str, Any]:
    """Ingest seconds with and without the rollup maintenance, ABBA, fresh home each run."""
    import ingest_speed

    from core.quality import ingest
    from core.quality.recording import Traceability

    before = machine()
    src = OUT_DIR / "ingest_bench" / "casting_test"
    n = ingest_speed._test_split(dataset_dir("casting"), src)
    files = [
        (str(p.relative_to(src)), p.read_bytes()) for p in sorted(src.rglob("*")) if p.is_file()
    ]
    artifact_dir, fields = ingest_speed._model_artifact(args.model_home)
    base = Path(tempfile.mkdtemp(prefix="defectlens_ingest_"))
    trace = Traceability(line="L1", station="S1", product="casting")
    results: dict[str, dict[bool, list[dict[str, float]]]] = {}
    classifier = None
    try:
        for heatmaps in (True, False):
            variant = "with_heatmaps" if heatmaps else "no_heatmaps"
            results[variant] = {True: [], False: []}
            order = [True, False, False, True] * ((args.rounds + 1) // 2)
            for i, enabled in enumerate([True, *order[: 2 * args.rounds]]):  # first: warm-up
                home = ingest_speed._fresh_home(base, artifact_dir, fields)
                settings = load_settings({"DEFECTLENS_HOME": str(home)})
                db = setup.open_database(settings)
                try:
                    if classifier is None:
                        classifier = ingest.load_active(db, settings)
                    spent: list[float] = []
                    with _rollup_calls(enabled, spent):
                        r = ingest.ingest(
                            db, settings, SYSTEM, files, trace,
                            classifier=classifier, with_heatmaps=heatmaps,
                        )  # fmt: skip
                finally:
                    db.dispose()
                    shutil.rmtree(home, ignore_errors=True)
                if i:
                    results[variant][enabled].append(
                        {
                            "seconds": r.seconds,
                            "rollup_seconds": sum(spent),
                            "processed": len(r.processed),
                        }  # fmt: skip
                    )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return {
        "bench": "trends_ingest_overhead",
        "images": n,
        "rounds": args.rounds,
        "how": "in-process core.quality.ingest.ingest into a fresh SQLite home per run, "
        "order ABBA; 'without' patches db.queries.rollups.cells_of_parts/apply to no-ops "
        "(bench only); rollup_seconds times those two calls in the 'with' runs",
        "variants": {v: _overhead(r) for v, r in results.items()},
        "machine_before": before,
        "machine": machine(),
    }


def _overhead(r: dict[bool, list[dict[str, float]]]) -> dict[str, Any]:
    with_s = [x["seconds"] for x in r[True]]
    without_s = [x["seconds"] for x in r[False]]
    pairs = [a / b - 1 for a, b in zip(with_s, without_s, strict=True)]
    rollup_share = [x["rollup_seconds"] / x["seconds"] for x in r[True]]
    return {
        "with_rollup_s": [round(x, 3) for x in with_s],
        "without_rollup_s": [round(x, 3) for x in without_s],
        "median_with_s": round(statistics.median(with_s), 3),
        "median_without_s": round(statistics.median(without_s), 3),
        "overhead_pct": round(
            (statistics.median(with_s) / statistics.median(without_s) - 1) * 100, 2
        ),
        "pairwise_overhead_pct_median": round(statistics.median(pairs) * 100, 2),
        "rollup_calls_share_pct_median": round(statistics.median(rollup_share) * 100, 2),
        "rollup_calls_ms_median": round(
            statistics.median(x["rollup_seconds"] for x in r[True]) * 1000, 1
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--pg-url", default=os.environ.get("DEFECTLENS_TEST_PG_URL") or DEFAULT_PG_URL,
        help="a PostgreSQL server; a new database is created beside it and dropped after",
    )  # fmt: skip
    parser.add_argument("--runs", type=int, default=9, help="timed repetitions of each query")
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument(
        "--baseline-views", default="30d/all,365d/all", help="views the pandas baseline times"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the database (path on stderr)")
    parser.add_argument("--ingest-overhead", action="store_true",
                        help="time ingest with and without the rollup instead")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=4, help="ingest-overhead ABBA pairs")
    parser.add_argument("--model-home", type=Path, default=OUT_DIR / "ingest_model_home")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    args = parser.parse_args()

    if args.ingest_overhead:
        result, name = ingest_overhead(args), "ingest_overhead"
    else:
        result, name = trends_bench(args), f"{args.backend}_{args.rows}"
    out = OUT_DIR / "trends" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if args.json:
        emit(result)
    else:
        print(f"written {out}")


if __name__ == "__main__":
    main()
