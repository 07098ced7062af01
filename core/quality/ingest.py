"""The ingest service: check, classify, judge, explain and record parts.

Used by the inspect page, ``defectlens ingest`` and the folder watcher. A batch is processed in
chunks; for each chunk every file is checked (a bad one becomes a Rejection and leaves nothing
behind), the good ones are classified in one batch, judged by the product's flagging rule,
flagged ones get a Grad-CAM map, the image and map files are written to the image store and
only then the rows are inserted in one write transaction. A row therefore never points at a
missing file (see core.quality.image_store).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.exc import IntegrityError

from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.errors import InvalidImageError, ValidationError
from core.quality import flag_rules, image_store, rollup
from core.quality.uploads import Rejection, display_name
from core.registry import catalog
from core.vision import gradcam, images
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
    from core.vision.classifier import Classifier, Prediction

CHUNK_SIZE = 64  # images per classification batch and per write transaction
MAX_FIELD_LENGTH = 100
# Above this share of flagged parts, one torch pass that classifies and explains every image is
# faster than ONNX Runtime for all plus a Grad-CAM pass for the flagged ones (measured on the
# 2-core CPU: ONNX ~760 images/s, fused torch ~465 images/s; bench/ingest_speed.py).
FUSED_ABOVE_FLAGGED_SHARE = 0.4


@dataclass(frozen=True)
class Traceability:
    """Where and when a part was photographed; captured_at is aware UTC (None: now)."""

    line: str | None = None
    station: str | None = None
    product: str | None = None
    lot: str | None = None
    serial: str | None = None
    captured_at: datetime | None = None


@dataclass(frozen=True)
class IngestResult:
    """What one ingest call did."""

    processed: list[InspectionRecord]
    rejected: list[Rejection]
    flagged: int
    seconds: float
    heatmaps: int = 0

    @property
    def images_per_second(self) -> float:
        """Processed images per wall-clock second of the whole call."""
        return len(self.processed) / self.seconds if self.seconds > 0 else 0.0


@dataclass
class _Item:
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


def _clean_trace(trace: Traceability) -> Traceability:
    values: dict[str, str | None] = {}
    for key in ("line", "station", "product", "lot", "serial"):
        raw = getattr(trace, key)
        text = None if raw is None else str(raw).strip()
        if text and len(text) > MAX_FIELD_LENGTH:
            raise ValidationError(f"{key} must be at most {MAX_FIELD_LENGTH} characters")
        values[key] = text or None
    captured = trace.captured_at
    if captured is not None:
        if captured.tzinfo is None:
            raise ValidationError("capture time needs a timezone (DefectLens stores UTC)")
        captured = captured.astimezone(UTC)
    return Traceability(captured_at=captured, **values)


# --------------------------------------------------------------------------- model


def load_active(db: Database, settings: Settings) -> tuple[ModelRecord, Classifier]:
    """The active model and a loaded Classifier; NotFound when no model is active.

    Loading verifies the artifact and builds an ONNX session (about a second): callers that
    ingest repeatedly cache the pair by (model.id, model.artifact_sha256).
    """
    # Deferred: load_classifier imports torch and onnxruntime, which pages must not pay for.
    from core.registry.compare import load_classifier

    model = catalog.get_model(db, "active")
    return model, load_classifier(settings, model)


# --------------------------------------------------------------------------- ingest


def ingest(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    files: Sequence[tuple[str, bytes]],
    trace: Traceability,
    *,
    classifier: tuple[ModelRecord, Classifier] | None = None,
    with_heatmaps: bool = True,
) -> IngestResult:
    """Inspect a batch of (display name, bytes); bad files are rejected, the rest recorded."""
    require(actor, Action.INSPECT)
    started = time.perf_counter()
    trace = _clean_trace(trace)
    model, clf = classifier if classifier is not None else load_active(db, settings)
    rule = flag_rules.active_rule(db, trace.product, class_names=model.class_names)
    limits = images.DecodeLimits.from_settings(settings)
    processed: list[InspectionRecord] = []
    rejected: list[Rejection] = []
    heatmaps = 0
    cam = clf.batch_explainer() if with_heatmaps and files else None
    # With ONNX Runtime's Grad-CAM one pass classifies and explains at about the cost of
    # classifying, so every chunk takes it; PyTorch's is slower, so it is used for a whole chunk
    # only when the previous chunk was mostly flagged.
    always_fused = isinstance(cam, gradcam.OnnxGradCam)
    fused = always_fused
    workers = max(1, settings.num_threads)
    # Chunk N is written (files fsynced, rows inserted) by the writer thread while chunk N+1
    # is decoded and classified: the fsyncs wait on the disk, not the CPU.
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        ThreadPoolExecutor(max_workers=8) as io_pool,
        ThreadPoolExecutor(max_workers=1) as writer,
    ):
        pending: Future[list[InspectionRecord]] | None = None
        for start in range(0, len(files), CHUNK_SIZE):
            t0 = time.perf_counter()
            good, bad, made = _classify_chunk(
                files[start : start + CHUNK_SIZE], clf, rule, limits, pool, cam, fused
            )
            rejected += bad
            heatmaps += made
            if good:
                share = sum(1 for i in good if i.judged.flagged) / len(good)
                fused = always_fused or share > FUSED_ABOVE_FLAGGED_SHARE
            if pending is not None:
                processed += pending.result()
                pending = None
            if good:
                pending = writer.submit(
                    _save_chunk, db, settings, good, trace, model, rule, t0, io_pool
                )
        if pending is not None:
            processed += pending.result()
    return IngestResult(
        processed=processed,
        rejected=rejected,
        flagged=sum(1 for r in processed if r.flagged),
        seconds=time.perf_counter() - started,
        heatmaps=heatmaps,
    )


def _check(
    name: str, data: bytes, limits: images.DecodeLimits, clf: Classifier
) -> _Item | Rejection:
    """Header checks, hash, and decode to the model's input; a bad file becomes a Rejection."""
    shown = display_name(name)
    try:
        # One open for the header facts and the pixels (the info is read before any JPEG draft).
        info, pixels = images.decode_with_info(
            data,
            name=shown,
            limits=limits,
            grayscale=clf.in_channels == 1,
            max_side=clf.img_size,
        )
    except InvalidImageError as e:
        return Rejection.from_error(shown, e)
    return _Item(
        name=shown,
        data=data,
        info=info,
        sha=images.sha256_bytes(data),
        model_input=clf.prepare(pixels),
        hw=(pixels.shape[0], pixels.shape[1]),
    )


def _classify_chunk(
    chunk: Sequence[tuple[str, bytes]],
    clf: Classifier,
    rule: FlagRuleRecord,
    limits: images.DecodeLimits,
    pool: ThreadPoolExecutor,
    cam: gradcam.GradCam | gradcam.OnnxGradCam | None,
    fused: bool,
) -> tuple[list[_Item], list[Rejection], int]:
    """Check, decode, classify, judge and explain one chunk; nothing is stored yet."""
    # Pillow, OpenCV and hashlib release the GIL, so decoding scales over the threads.
    checked = list(pool.map(lambda nd: _check(nd[0], bytes(nd[1]), limits, clf), chunk))
    rejected = [c for c in checked if isinstance(c, Rejection)]
    good = [c for c in checked if isinstance(c, _Item)]
    if not good:
        return [], rejected, 0
    if cam is not None and fused:
        maps = _judge_fused(good, clf, rule, cam)
    else:
        maps = _judge_then_explain(good, clf, rule, cam)
    made = 0
    if maps:
        order = sorted(maps)
        # Each map is cut to its image (letterbox padding off) before it is stored.
        pngs = pool.map(lambda r: gradcam.encode_map(clf.image_map(maps[r], good[r].hw)), order)
        for row, png in zip(order, pngs, strict=True):
            good[row].heatmap_png = png
            good[row].heatmap_rel = image_store.heatmap_path(images.sha256_bytes(png))
            made += 1
    return good, rejected, made


def _judge_fused(
    good: list[_Item],
    clf: Classifier,
    rule: FlagRuleRecord,
    cam: gradcam.GradCam | gradcam.OnnxGradCam,
) -> dict[int, np.ndarray]:
    """Most parts will be flagged: one torch pass classifies and explains them all."""
    inputs = [i.model_input for i in good if i.model_input is not None]

    def choose(probs: np.ndarray) -> list[tuple[int, int]]:
        picks = []
        for row, (item, p) in enumerate(zip(good, probs, strict=True)):
            item.prediction = clf.to_prediction(item.name, p)
            item.judged = flag_rules.judge(rule, item.prediction.class_name, float(p.max()))
            if item.judged.flagged:
                picks.append((row, item.prediction.class_index))
        return picks

    _probs, maps = cam.run(inputs, choose)
    return maps


def _judge_then_explain(
    good: list[_Item],
    clf: Classifier,
    rule: FlagRuleRecord,
    cam: gradcam.GradCam | gradcam.OnnxGradCam | None,
) -> dict[int, np.ndarray]:
    """ONNX Runtime classifies fastest; only flagged parts then go through Grad-CAM."""
    inputs = [i.model_input for i in good if i.model_input is not None]
    predictions = clf.predict_prepared(inputs, [i.name for i in good], batch_size=CHUNK_SIZE)
    for item, pred in zip(good, predictions, strict=True):
        item.prediction = pred
        item.judged = flag_rules.judge(rule, pred.class_name, pred.confidence)
    rows = [r for r, i in enumerate(good) if i.judged.flagged]
    if cam is None or not rows:
        return {}
    explained = cam.explain(
        [inputs[r] for r in rows],
        [good[r].prediction.class_index for r in rows],  # type: ignore[union-attr]
    )
    return dict(zip(rows, explained, strict=True))


def _save_chunk(
    db: Database,
    settings: Settings,
    good: list[_Item],
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
    item: _Item,
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
