"""The hourly rollup of inspections: one row per hour x line x station x product x model x class
x flagged x defect x reviewed, with counts and confidence sums. Callers own the transaction.

Every part sits in exactly one cell: its capture hour (UTC), where it was made, the model that
judged it, its class (the reviewed class once reviewed, else the model's), whether it was
flagged, whether it counts as a defect (by the reviewed class once reviewed) and whether it was
reviewed. Ingest adds the new parts' cells in the transaction that inserts them; a review moves
its part from the old cell to the new one in the transaction that records it. ``cells_of`` is
the one mapping from rows to cells, used by both and by ``rebuild``, so incremental counts and a
rebuild agree by construction (tests/db/queries/test_rollups.py checks it after random work).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.models import FlagRule, Inspection, Review, Rollup

# Rows per statement when rebuilding or upserting (well under SQLite's 32766 parameters).
_BATCH = 500
_KEY_COLUMNS = (
    "hour", "line", "station", "product", "model_id", "class_name", "flagged", "defect", "reviewed",
)  # fmt: skip


@dataclass(frozen=True)
class CellKey:
    """Where one part counts. Unknown line/station/product are '' and no model is 0."""

    hour: datetime
    line: str
    station: str
    product: str
    model_id: int
    class_name: str
    flagged: bool
    defect: bool
    reviewed: bool


@dataclass
class CellCounts:
    """What a set of parts adds to a cell (negative to take them out)."""

    parts: int = 0
    corrections: int = 0  # reviewed parts whose true class differs from the model's
    unsure: int = 0  # confidence below the part's flagging rule's minimum
    confidence_sum: float = 0.0

    def add(self, other: CellCounts, sign: int = 1) -> None:
        self.parts += sign * other.parts
        self.corrections += sign * other.corrections
        self.unsure += sign * other.unsure
        self.confidence_sum += sign * other.confidence_sum


@dataclass(frozen=True)
class RuleFallback:
    """How to judge parts recorded without a flagging rule (the built-in default rule)."""

    is_good: Callable[[str], bool]
    min_confidence: float


def hour_of(t: datetime) -> datetime:
    """The start of t's hour (UTC)."""
    return t.replace(minute=0, second=0, microsecond=0)


def _part_rows(session: Session, where: Sequence[Any]) -> Iterable[Any]:
    """(inspection fields, rule good classes, rule min confidence, current true class)."""
    current = and_(
        Review.inspection_id == Inspection.id, Review.version == Inspection.review_version
    )
    stmt = (
        select(
            Inspection.captured_at,
            Inspection.line,
            Inspection.station,
            Inspection.product,
            Inspection.model_id,
            Inspection.predicted_class,
            Inspection.confidence,
            Inspection.is_defect,
            Inspection.flagged,
            FlagRule.good_classes,
            FlagRule.min_confidence,
            Review.true_class,
        )  # fmt: skip
        .outerjoin(FlagRule, FlagRule.id == Inspection.flag_rule_id)
        .outerjoin(Review, current)
        .where(*where)
    )
    return session.execute(stmt)


def cells_of(
    session: Session, where: Sequence[Any], fallback: RuleFallback
) -> dict[CellKey, CellCounts]:
    """The cells of the inspections matching ``where``, with their counts."""
    cells: dict[CellKey, CellCounts] = defaultdict(CellCounts)
    for row in _part_rows(session, where):
        (captured, line, station, product, model_id, predicted, confidence, model_defect,
         flagged, good, min_conf, true_class) = row  # fmt: skip
        assert isinstance(captured, datetime) and isinstance(predicted, str)
        reviewed = true_class is not None
        if reviewed:
            defect = (
                (true_class not in good)
                if good is not None
                else not fallback.is_good(str(true_class))
            )
        else:
            defect = bool(model_defect)
        limit = float(min_conf) if min_conf is not None else fallback.min_confidence
        key = CellKey(
            hour=hour_of(captured),
            line=str(line or ""),
            station=str(station or ""),
            product=str(product or ""),
            model_id=int(model_id or 0),
            class_name=str(true_class) if reviewed else predicted,
            flagged=bool(flagged),
            defect=defect,
            reviewed=reviewed,
        )
        counts = cells[key]
        counts.parts += 1
        counts.corrections += int(reviewed and true_class != predicted)
        counts.unsure += int(float(confidence) < limit)
        counts.confidence_sum += float(confidence)
    return dict(cells)


def cells_of_parts(
    session: Session, inspection_ids: Sequence[int], fallback: RuleFallback
) -> dict[CellKey, CellCounts]:
    """The cells of these inspections (flush first: new rows and reviews must be visible)."""
    out: dict[CellKey, CellCounts] = defaultdict(CellCounts)
    for i in range(0, len(inspection_ids), _BATCH):
        part = list(inspection_ids[i : i + _BATCH])
        for key, counts in cells_of(session, [Inspection.id.in_(part)], fallback).items():
            out[key].add(counts)
    return dict(out)


def moved(
    before: Mapping[CellKey, CellCounts], after: Mapping[CellKey, CellCounts]
) -> dict[CellKey, CellCounts]:
    """after minus before, cell by cell (what a change to some parts does to the rollup)."""
    out: dict[CellKey, CellCounts] = defaultdict(CellCounts)
    for key, counts in after.items():
        out[key].add(counts)
    for key, counts in before.items():
        out[key].add(counts, sign=-1)
    return {
        k: c for k, c in out.items() if c.parts or c.corrections or c.unsure or c.confidence_sum
    }


def apply(session: Session, changes: Mapping[CellKey, CellCounts]) -> None:
    """Add the counts to their cells (insert or increment, one statement per batch)."""
    if not changes:
        return
    rows = [_row(k, c) for k, c in changes.items()]
    dialect = session.get_bind().dialect.name
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for i in range(0, len(rows), _BATCH):
        stmt: Any = insert_for(Rollup).values(rows[i : i + _BATCH])
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=list(_KEY_COLUMNS), set_=_increments(stmt.excluded)
            )
        )


def _increments(excluded: Any) -> dict[str, Any]:
    return {
        name: getattr(Rollup, name) + getattr(excluded, name)
        for name in ("parts", "corrections", "unsure", "confidence_sum")
    }


def _row(key: CellKey, counts: CellCounts) -> dict[str, object]:
    return {
        "hour": key.hour, "line": key.line, "station": key.station, "product": key.product,
        "model_id": key.model_id, "class_name": key.class_name, "flagged": key.flagged,
        "defect": key.defect, "reviewed": key.reviewed, "parts": counts.parts,
        "corrections": counts.corrections, "unsure": counts.unsure,
        "confidence_sum": counts.confidence_sum,
    }  # fmt: skip


def rebuild(session: Session, fallback: RuleFallback) -> int:
    """Recompute every cell from the inspections and reviews; the number of cells written."""
    session.execute(delete(Rollup))
    total: dict[CellKey, CellCounts] = defaultdict(CellCounts)
    last = 0
    while True:  # id ranges, so a large table is never held in memory as rows
        ids = session.scalars(
            select(Inspection.id).where(Inspection.id > last).order_by(Inspection.id).limit(5000)
        ).all()
        if not ids:
            break
        where = [Inspection.id >= ids[0], Inspection.id <= ids[-1]]
        for key, counts in cells_of(session, where, fallback).items():
            total[key].add(counts)
        last = ids[-1]
    rows = [_row(k, c) for k, c in total.items() if c.parts]
    for i in range(0, len(rows), _BATCH):
        session.execute(insert(Rollup), rows[i : i + _BATCH])
    return len(rows)


def is_empty(session: Session) -> bool:
    """Whether the rollup has no cells."""
    return session.scalar(select(func.count()).select_from(Rollup)) == 0


def has_inspections(session: Session) -> bool:
    """Whether any inspection is recorded."""
    return session.scalar(select(Inspection.id).limit(1)) is not None


def all_cells(session: Session) -> dict[CellKey, CellCounts]:
    """Every non-empty cell (tests compare this with a rebuild)."""
    out: dict[CellKey, CellCounts] = {}
    for r in session.scalars(select(Rollup).where(Rollup.parts != 0)):
        key = CellKey(r.hour, r.line, r.station, r.product, r.model_id, r.class_name,
                      r.flagged, r.defect, r.reviewed)  # fmt: skip
        out[key] = CellCounts(r.parts, r.corrections, r.unsure, r.confidence_sum)
    return out
