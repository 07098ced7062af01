"""Keeping the hourly rollup exact: the rules for parts without a flagging rule, and rebuilds.

Ingest and review call ``db.queries.rollups`` inside their own write transactions with
``FALLBACK``; ``rebuild`` recomputes the whole table (``defectlens rollup --rebuild``), and
``rebuild_if_empty`` fills it once for a database that had inspections before the table existed.
"""

from __future__ import annotations

from core.quality.flag_rules import DEFAULT_MIN_CONFIDENCE, looks_good
from db.engine import Database
from db.queries import rollups
from db.queries.rollups import RuleFallback

# Parts judged by the built-in rule (no rule row): good-looking class names, 90 % confidence,
# exactly what flag_rules.fallback_rule judged them by.
FALLBACK = RuleFallback(is_good=looks_good, min_confidence=DEFAULT_MIN_CONFIDENCE)


def rebuild(db: Database) -> int:
    """Recompute every rollup cell from the inspections and reviews; the cells written."""
    with db.write() as session:
        return rollups.rebuild(session, FALLBACK)


def rebuild_if_empty(db: Database) -> int | None:
    """Fill an empty rollup if there are inspections (an upgraded database); None: not needed."""
    with db.read() as session:
        needed = rollups.is_empty(session) and rollups.has_inspections(session)
    return rebuild(db) if needed else None
