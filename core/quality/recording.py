"""Recording one ingest chunk: its files written durably, then its rows (inspections, images and
the rollup cells) in one write transaction. core.quality.ingest decides what to record."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.exc import IntegrityError

from core import storage_faults
from core.config import Settings
from core.quality import flag_rules, image_store, rollup
from core.vision import images
from db.engine import Database
from db.models import utcnow
from db.queries import images as image_queries
from db.queries import inspections as inspection_queries
from db.queries import rollups as rollup_queries
from db.queries.catalog import ModelRecord
from db.queries.flag_rules import FlagRuleRecord
from db.queries.images import NewImage
from db.queries.inspections import InspectionRecord, NewInspection

if TYPE_CHECKING:
    from core.vision.classifier import Prediction


@dataclass(frozen=True)
class Traceability:
    """Where and when a part was photographed; captured_at is aware UTC (None: now)."""

    line: str | None = None
    station: str | None = None
    product: str | None = None
    lot: str | None = None
    serial: str | None = None
    captured_at: datetime | None = None


@dataclass
class ChunkItem:
    """A file on its way through one chunk."""

    name: str  # display text
    data: bytes
    info: images.ImageInfo
    sha: str
    model_input: np.ndarray | None = None
    hw: tuple[int, int] = (0, 0)  # decoded (height, width) the input was made from
    prediction: Prediction | None = None
    heatmap_png: bytes | None = None
    heatmap_rel: str | None = None
    judged: flag_rules.Judgement = flag_rules.Judgement(False, False, None)
    image_rel: str = ""


def save_chunk(
    db: Database,
    settings: Settings,
    good: list[ChunkItem],
    trace: Traceability,
    model: ModelRecord,
    rule: FlagRuleRecord,
    t0: float,
    io_pool: ThreadPoolExecutor,
) -> list[InspectionRecord]:
    """Write the chunk's files durably, then its rows in one transaction."""
    to_write: dict[str, bytes] = {}
    for item in good:
        item.image_rel = image_store.image_path(item.sha, item.info.format)
        to_write.setdefault(item.image_rel, item.data)
        if item.heatmap_rel and item.heatmap_png is not None:
            to_write.setdefault(item.heatmap_rel, item.heatmap_png)
    stored = f"could not store {len(good)} images in {settings.images_dir}; none was recorded"
    with storage_faults.reported(stored):
        image_store.store_all(settings, to_write, io_pool)

    latency_ms = (time.perf_counter() - t0) * 1000.0 / len(good)
    captured = trace.captured_at or utcnow()
    new_images = [
        NewImage(
            sha256=i.sha,
            stored_path=i.image_rel,
            size_bytes=len(i.data),
            format=i.info.format,
            width=i.info.width,
            height=i.info.height,
        )
        for i in good
    ]
    parts = [_new_inspection(i, trace, captured, model, rule, latency_ms) for i in good]
    with storage_faults.reported(f"could not record {len(good)} inspections; none was recorded"):
        try:
            return _insert_rows(db, new_images, parts)
        except IntegrityError:
            # Another process stored one of these images between our lookup and insert
            # (PostgreSQL; SQLite serialises writers): the rows now exist, so look them up again.
            return _insert_rows(db, new_images, parts)


def _insert_rows(
    db: Database, new_images: list[NewImage], parts: list[NewInspection]
) -> list[InspectionRecord]:
    """The chunk's image rows (new ones only) and inspection rows, in one transaction."""
    with db.write() as session:
        by_sha = image_queries.ensure_images(session, new_images)
        records = inspection_queries.add_inspections(session, parts, by_sha)
        # The rollup counts the new parts in the same transaction: trends stay exact.
        cells = rollup_queries.cells_of_parts(session, [r.id for r in records], rollup.FALLBACK)
        rollup_queries.apply(session, cells)
        return records


def _new_inspection(
    item: ChunkItem,
    trace: Traceability,
    captured: datetime,
    model: ModelRecord,
    rule: FlagRuleRecord,
    latency_ms: float,
) -> NewInspection:
    """The row to record for one checked, classified and judged file."""
    pred = item.prediction
    assert pred is not None
    judged = item.judged
    return NewInspection(
        image_sha256=item.sha,
        source_name=item.name,
        captured_at=captured,
        line=trace.line,
        station=trace.station,
        product=trace.product,
        lot=trace.lot,
        serial=trace.serial,
        model_id=model.id,
        predicted_class=pred.class_name,
        confidence=pred.confidence,
        probabilities=pred.probabilities,
        is_defect=judged.is_defect,
        flagged=judged.flagged,
        flag_reason=judged.reason,
        flag_rule_id=rule.id,
        heatmap_path=item.heatmap_rel,
        latency_ms=latency_ms,
    )
