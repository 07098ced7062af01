"""The ingest service: check, classify, judge, explain and record parts.

Used by the inspect page, ``defectlens ingest`` and the folder watcher. A batch is processed in
chunks; for each chunk every file is checked (a bad one becomes a Rejection and leaves nothing
behind), the good ones are classified in one batch, judged by the product's flagging rule,
flagged ones get a Grad-CAM map, the image and map files are written to the image store and
only then the rows are inserted in one write transaction. A row therefore never points at a
missing file (see core.quality.image_store; recording writes a chunk).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC
from typing import TYPE_CHECKING

import numpy as np

from core.auth.permissions import SYSTEM, Action, CurrentUser, require
from core.config import Settings
from core.errors import InvalidImageError, StorageError, ValidationError
from core.quality import flag_rules, image_store, recording
from core.quality.recording import ChunkItem, Traceability
from core.quality.uploads import Rejection, display_name
from core.registry import catalog
from core.vision import gradcam, images
from db.engine import Database
from db.queries.catalog import ModelRecord
from db.queries.flag_rules import FlagRuleRecord
from db.queries.inspections import InspectionRecord

if TYPE_CHECKING:
    from core.vision.classifier import Classifier, Prediction

CHUNK_SIZE = 64  # images per classification batch and per write transaction
# Images read and inspected together by ingest_many: what is held in memory at once.
GROUP_SIZE = 256
MAX_FIELD_LENGTH = 100
# Above this share of flagged parts, one torch pass that classifies and explains every image is
# faster than ONNX Runtime for all plus a Grad-CAM pass for the flagged ones (measured on the
# 2-core CPU: ONNX ~760 images/s, fused torch ~465 images/s; bench/ingest_speed.py).
FUSED_ABOVE_FLAGGED_SHARE = 0.4


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
class IngestSummary:
    """What ingest_many did so far: ids and counts only, so a long stream does not pile up
    records in memory (the Inspect page reads the records of the ids it shows)."""

    processed_ids: list[int]
    rejected: list[Rejection]
    flagged: int = 0
    heatmaps: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        """Processed images per wall-clock second of the whole call."""
        return len(self.processed_ids) / self.seconds if self.seconds > 0 else 0.0


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

    model = catalog.get_model(db, SYSTEM, "active")  # loading the model, not a person's read
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
    rule = flag_rules.active_rule(db, actor, trace.product, class_names=model.class_names)
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
                processed += _recorded(pending, len(processed))
                pending = None
            if good:
                pending = writer.submit(
                    recording.save_chunk, db, settings, good, trace, model, rule, t0, io_pool
                )
        if pending is not None:
            processed += _recorded(pending, len(processed))
    return IngestResult(
        processed=processed,
        rejected=rejected,
        flagged=sum(1 for r in processed if r.flagged),
        seconds=time.perf_counter() - started,
        heatmaps=heatmaps,
    )


def _recorded(pending: Future[list[InspectionRecord]], before: int) -> list[InspectionRecord]:
    """A chunk's records; a storage fault learns how many parts earlier chunks committed."""
    try:
        return pending.result()
    except StorageError as e:
        e.kept = before
        raise


def ingest_many(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    items: Iterable[tuple[str, bytes] | Rejection],
    trace: Traceability,
    *,
    classifier: tuple[ModelRecord, Classifier] | None = None,
    with_heatmaps: bool = True,
    group_size: int = GROUP_SIZE,
    on_group: Callable[[IngestSummary], None] | None = None,
) -> IngestSummary:
    """Inspect a stream of (display name, bytes), with rejections from reading passed through,
    group_size images at a time: memory holds one group, however long the stream (a zip of
    100,000 images read entry by entry, every file under a folder). Each group is committed
    when it is done; on_group sees the running totals after each."""
    require(actor, Action.INSPECT)
    started = time.perf_counter()
    model = classifier if classifier is not None else load_active(db, settings)
    summary = IngestSummary(processed_ids=[], rejected=[])
    stream = iter(items)
    while group := list(itertools.islice(stream, group_size)):
        files = [i for i in group if not isinstance(i, Rejection)]
        summary.rejected += [i for i in group if isinstance(i, Rejection)]
        if files:
            try:
                result = ingest(
                    db, settings, actor, files, trace, classifier=model, with_heatmaps=with_heatmaps
                )
            except StorageError as e:  # a full disk mid-stream: say what is kept
                kept = len(summary.processed_ids) + e.kept
                raise StorageError(
                    f"{e} ({kept} images before them were recorded and are kept)"
                ) from e
            del files, group  # the group's bytes go before the next group is read
            summary.processed_ids += [r.id for r in result.processed]
            summary.rejected += result.rejected
            summary.flagged += result.flagged
            summary.heatmaps += result.heatmaps
        summary.seconds = time.perf_counter() - started
        if on_group is not None:
            on_group(summary)
    summary.seconds = time.perf_counter() - started
    return summary


def _check(
    name: str, data: bytes, limits: images.DecodeLimits, clf: Classifier
) -> ChunkItem | Rejection:
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
    return ChunkItem(
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
) -> tuple[list[ChunkItem], list[Rejection], int]:
    """Check, decode, classify, judge and explain one chunk; nothing is stored yet."""
    # Pillow, OpenCV and hashlib release the GIL, so decoding scales over the threads.
    checked = list(pool.map(lambda nd: _check(nd[0], bytes(nd[1]), limits, clf), chunk))
    rejected = [c for c in checked if isinstance(c, Rejection)]
    good = [c for c in checked if isinstance(c, ChunkItem)]
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


def _judged(rule: FlagRuleRecord, clf: Classifier, pred: Prediction) -> flag_rules.Judgement:
    """The rule's judgement of one prediction, a good call the model held back included."""
    return flag_rules.judge(rule, pred.class_name, pred.confidence, held_back=pred.held_back,
                            acceptance=clf.acceptance_threshold)  # fmt: skip


def _judge_fused(
    good: list[ChunkItem],
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
            item.judged = _judged(rule, clf, item.prediction)
            if item.judged.flagged:
                picks.append((row, item.prediction.class_index))
        return picks

    _probs, maps = cam.run(inputs, choose)
    return maps


def _judge_then_explain(
    good: list[ChunkItem],
    clf: Classifier,
    rule: FlagRuleRecord,
    cam: gradcam.GradCam | gradcam.OnnxGradCam | None,
) -> dict[int, np.ndarray]:
    """ONNX Runtime classifies fastest; only flagged parts then go through Grad-CAM."""
    inputs = [i.model_input for i in good if i.model_input is not None]
    predictions = clf.predict_prepared(inputs, [i.name for i in good], batch_size=CHUNK_SIZE)
    for item, pred in zip(good, predictions, strict=True):
        item.prediction = pred
        item.judged = _judged(rule, clf, pred)
    rows = [r for r, i in enumerate(good) if i.judged.flagged]
    if cam is None or not rows:
        return {}
    explained = cam.explain(
        [inputs[r] for r in rows],
        [good[r].prediction.class_index for r in rows],  # type: ignore[union-attr]
    )
    return dict(zip(rows, explained, strict=True))
