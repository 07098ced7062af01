"""The ingest service: validate, store, classify, judge, explain and record parts.

Used by the inspect page, ``defectlens ingest`` and the folder watcher. A batch is processed in
chunks; for each chunk every file is checked (a bad one becomes a Rejection and leaves nothing
behind), the good ones are classified in one batch, judged by the product's flagging rule,
flagged ones get a Grad-CAM overlay, the image and overlay files are written (temp name, fsync,
``os.replace``) and only then the rows are inserted in one write transaction. A row therefore
never points at a missing file; a crash can at worst leave an unreferenced file, which
``sweep_orphans`` removes.

File names given by users or cameras are display text only: stored paths are derived from the
content's SHA-256, never from a name.
"""

from __future__ import annotations

import io
import logging
import os
import time
import unicodedata
import zipfile
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.errors import DatasetError, InvalidImageError, NotFound, ValidationError
from core.files import fsync_dir, write_atomic
from core.quality import flag_rules
from core.registry import catalog
from core.registry.catalog import ModelRecord
from core.vision import gradcam, images
from db.engine import Database
from db.models import Image, Inspection, Review, User, utcnow

if TYPE_CHECKING:
    from core.vision.classifier import Classifier, Prediction

log = logging.getLogger(__name__)

CHUNK_SIZE = 64  # images per classification batch and per write transaction
MAX_SOURCE_NAME = 255
MAX_FIELD_LENGTH = 100
HEATMAPS_DIR = "heatmaps"
ORPHAN_GRACE_S = 3600.0
# Above this share of flagged parts, one torch pass that classifies and explains every image is
# faster than ONNX Runtime for all plus a Grad-CAM pass for the flagged ones (measured on the
# 2-core CPU: ONNX ~760 images/s, fused torch ~465 images/s; bench/ingest_speed.py).
FUSED_ABOVE_FLAGGED_SHARE = 0.4

_IGNORED_ZIP_PARTS = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini", ".DS_Store"})


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
class Rejection:
    """A file that was not inspected, and why. file is display text only."""

    file: str
    reason: str


@dataclass(frozen=True)
class InspectionRecord:
    """One inspected part as pages and the CLI show it (paths are relative to images_dir)."""

    id: int
    image_id: int | None
    source_name: str | None
    captured_at: datetime
    line: str | None
    station: str | None
    product: str | None
    lot: str | None
    serial: str | None
    model_id: int | None
    predicted_class: str
    confidence: float
    probabilities: dict[str, float]
    is_defect: bool
    flagged: bool
    flag_reason: str | None
    threshold_id: int | None
    heatmap_path: str | None
    review_version: int
    latency_ms: float | None
    reviewed: bool
    true_class: str | None
    disposition: str | None
    image_sha256: str | None = None
    image_path: str | None = None
    width: int | None = None
    height: int | None = None
    reviewer: str | None = None
    reviewed_at: datetime | None = None
    is_demo: bool = False
    created_at: datetime | None = None


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
    prediction: Prediction | None = None
    heatmap_png: bytes | None = None
    heatmap_rel: str | None = None
    judged: tuple[bool, bool, str | None] = (False, False, None)
    image_rel: str = ""


# --------------------------------------------------------------------------- names and fields


def display_name(name: str, limit: int = MAX_SOURCE_NAME) -> str:
    """A file name made safe to show and store: control characters replaced, length capped."""
    text = "".join(
        "?" if unicodedata.category(ch) in ("Cc", "Cf", "Cs") else ch for ch in str(name)
    )
    text = text.strip() or "(unnamed)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(err: Exception, name: str) -> str:
    """The message of an InvalidImageError without the file name it starts with."""
    text = str(err)
    prefix = f"{name}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


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
    from core.registry.compare import load_classifier

    model = catalog.get_model(db, "active")
    return model, load_classifier(settings, model)


def active_model_key(db: Database) -> tuple[int, str] | None:
    """(id, artifact SHA-256) of the active model, or None; a cheap cache key for pages."""
    try:
        model = catalog.get_model(db, "active")
    except NotFound:
        return None
    return model.id, model.artifact_sha256


# --------------------------------------------------------------------------- files


def _image_rel(sha: str, fmt: str) -> str:
    return f"{sha[:2]}/{sha}.{images.FORMAT_EXTENSIONS.get(fmt, 'bin')}"


def _heatmap_rel(sha: str) -> str:
    return f"{HEATMAPS_DIR}/{sha[:2]}/{sha}.png"


def _store_file(root: Path, rel: str, data: bytes) -> Path:
    """Write content-addressed bytes once (temp, fsync, replace); returns the folder touched."""
    path = root / rel
    folder = path.parent
    try:
        if path.stat().st_size == len(data):
            # Already there: refresh its time so the orphan sweep's grace period starts over
            # (a row is about to point at it).
            os.utime(path)
            return folder
    except FileNotFoundError:
        pass
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, sync_dir=False)
    return folder


def _store_all(settings: Settings, files: dict[str, bytes], pool: ThreadPoolExecutor) -> None:
    """Write every (relative path -> bytes) durably, renames included, before any row exists."""
    root = settings.images_dir
    folders = set(pool.map(lambda kv: _store_file(root, kv[0], kv[1]), files.items()))
    list(pool.map(fsync_dir, folders))


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
    cam = gradcam.GradCam(clf) if with_heatmaps and files else None
    fused = False  # decided per chunk from the share the previous chunk flagged
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
                share = sum(1 for i in good if i.judged[1]) / len(good)
                fused = share > FUSED_ABOVE_FLAGGED_SHARE
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
        info = images.probe(data, name=shown, limits=limits)
        pixels = images.decode(
            data,
            name=shown,
            limits=limits,
            grayscale=clf.in_channels == 1,
            max_side=clf.img_size,
        )
    except InvalidImageError as e:
        return Rejection(shown, _reason(e, shown))
    return _Item(
        name=shown,
        data=data,
        info=info,
        sha=images.sha256_bytes(data),
        model_input=clf.prepare(pixels),
    )


def _classify_chunk(
    chunk: Sequence[tuple[str, bytes]],
    clf: Classifier,
    rule: flag_rules.FlagRule,
    limits: images.DecodeLimits,
    pool: ThreadPoolExecutor,
    cam: gradcam.GradCam | None,
    fused: bool,
) -> tuple[list[_Item], list[Rejection], int]:
    """Check, decode, classify, judge and explain one chunk; nothing is stored yet."""
    # Pillow, OpenCV and hashlib release the GIL, so decoding scales over the threads.
    checked = list(pool.map(lambda nd: _check(nd[0], bytes(nd[1]), limits, clf), chunk))
    rejected = [c for c in checked if isinstance(c, Rejection)]
    good = [c for c in checked if isinstance(c, _Item)]
    if not good:
        return [], rejected, 0

    inputs = [i.model_input for i in good if i.model_input is not None]
    maps: dict[int, np.ndarray] = {}
    if cam is not None and fused:
        # Most parts will be flagged: one torch pass classifies and explains them all.
        def choose(probs: np.ndarray) -> list[tuple[int, int]]:
            picks = []
            for row, (item, p) in enumerate(zip(good, probs, strict=True)):
                item.prediction = clf.to_prediction(item.name, p)
                item.judged = flag_rules.judge(rule, item.prediction.class_name, float(p.max()))
                if item.judged[1]:
                    picks.append((row, item.prediction.class_index))
            return picks

        _probs, maps = cam.run(inputs, choose)
    else:
        # ONNX Runtime classifies fastest; only flagged parts then go through Grad-CAM.
        predictions = clf.predict_prepared(inputs, [i.name for i in good], batch_size=CHUNK_SIZE)
        for item, pred in zip(good, predictions, strict=True):
            item.prediction = pred
            item.judged = flag_rules.judge(rule, pred.class_name, pred.confidence)
        rows = [r for r, i in enumerate(good) if i.judged[1]]
        if cam is not None and rows:
            explained = cam.explain(
                [inputs[r] for r in rows],
                [good[r].prediction.class_index for r in rows],  # type: ignore[union-attr]
            )
            maps = dict(zip(rows, explained, strict=True))

    made = 0
    if maps:
        order = sorted(maps)
        for row, png in zip(
            order, pool.map(gradcam.encode_map, [maps[r] for r in order]), strict=True
        ):
            good[row].heatmap_png = png
            good[row].heatmap_rel = _heatmap_rel(images.sha256_bytes(png))
            made += 1

    return good, rejected, made


def _save_chunk(
    db: Database,
    settings: Settings,
    good: list[_Item],
    trace: Traceability,
    model: ModelRecord,
    rule: flag_rules.FlagRule,
    t0: float,
    io_pool: ThreadPoolExecutor,
) -> list[InspectionRecord]:
    """Write the chunk's files durably, then its rows in one transaction."""
    to_write: dict[str, bytes] = {}
    for item in good:
        item.image_rel = _image_rel(item.sha, item.info.format)
        to_write.setdefault(item.image_rel, item.data)
        if item.heatmap_rel and item.heatmap_png is not None:
            to_write.setdefault(item.heatmap_rel, item.heatmap_png)
    _store_all(settings, to_write, io_pool)

    latency_ms = (time.perf_counter() - t0) * 1000.0 / len(good)
    captured = trace.captured_at or utcnow()
    try:
        records = _insert_rows(db, good, trace, captured, model, rule, latency_ms)
    except IntegrityError:
        # Another process stored one of these images between our lookup and insert
        # (PostgreSQL; SQLite serialises writers): the rows now exist, so look them up again.
        records = _insert_rows(db, good, trace, captured, model, rule, latency_ms)
    return records


def _insert_rows(
    db: Database,
    items: list[_Item],
    trace: Traceability,
    captured: datetime,
    model: ModelRecord,
    rule: flag_rules.FlagRule,
    latency_ms: float,
) -> list[InspectionRecord]:
    with db.write() as session:
        shas = sorted({i.sha for i in items})
        by_sha = {
            row.sha256: row
            for row in session.scalars(select(Image).where(Image.sha256.in_(shas))).all()
        }
        for item in items:
            if item.sha not in by_sha:
                row = Image(
                    sha256=item.sha,
                    stored_path=item.image_rel,
                    size_bytes=len(item.data),
                    format=item.info.format,
                    width=item.info.width,
                    height=item.info.height,
                )
                session.add(row)
                by_sha[item.sha] = row
        session.flush()
        rows: list[tuple[Inspection, Image]] = []
        for item in items:
            pred = item.prediction
            assert pred is not None
            is_defect, flagged, reason = item.judged
            image = by_sha[item.sha]
            insp = Inspection(
                image_id=image.id,
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
                is_defect=is_defect,
                flagged=flagged,
                flag_reason=reason,
                threshold_id=rule.id,
                heatmap_path=item.heatmap_rel,
                latency_ms=latency_ms,
                review_version=0,
            )
            session.add(insp)
            rows.append((insp, image))
        session.flush()
        return [_record(insp, image, None, None) for insp, image in rows]


# --------------------------------------------------------------------------- uploads


def _zip_entry_parts(name: str) -> list[str] | None:
    """The entry's path parts, or None when it is an OS/archiver artefact to skip."""
    from core.datasets.archives import zip_parts

    parts = zip_parts(name)
    if not parts or any(p.startswith(".") or p in _IGNORED_ZIP_PARTS for p in parts):
        return None
    return parts


def expand_upload(
    name: str, data: bytes, settings: Settings
) -> tuple[list[tuple[str, bytes]], list[Rejection]]:
    """A .zip upload -> its image entries (validated like dataset import); else [(name, data)].

    The archive is checked entry by entry before anything is read (no '..', absolute paths,
    links; entry count, size and ratio caps). Entry names are display text only.
    """
    from core.datasets.archives import read_zip_entry, validate_zip

    shown = display_name(name)
    if not data.startswith(b"PK\x03\x04") and not data.startswith(b"PK\x05\x06"):
        return [(name, data)], []
    if len(data) > settings.max_upload_mb * 1024 * 1024:
        return [], [Rejection(shown, f"larger than the {settings.max_upload_mb} MB upload limit")]
    limits = images.DecodeLimits.from_settings(settings)
    files: list[tuple[str, bytes]] = []
    rejected: list[Rejection] = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            validate_zip(zf, settings)
            budget = [settings.max_zip_total_bytes]
            for info in zf.infolist():
                if info.is_dir():
                    continue
                parts = _zip_entry_parts(info.filename)
                if parts is None:
                    continue
                entry_name = display_name(f"{shown}/{'/'.join(parts)}")
                if info.flag_bits & 0x1:
                    rejected.append(Rejection(entry_name, "encrypted entry"))
                    continue
                try:
                    files.append(
                        (entry_name, read_zip_entry(zf, info.filename, entry_name, limits, budget))
                    )
                except InvalidImageError as e:
                    rejected.append(Rejection(entry_name, _reason(e, entry_name)))
    except DatasetError as e:
        return [], [Rejection(shown, f"archive refused: {e}")]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as e:
        return [], [Rejection(shown, f"damaged zip archive ({e})")]
    if not files and not rejected:
        rejected.append(Rejection(shown, "archive holds no files"))
    return files, rejected


# --------------------------------------------------------------------------- reading back


def _record(
    insp: Inspection, image: Image | None, review: Review | None, reviewer: str | None
) -> InspectionRecord:
    return InspectionRecord(
        id=insp.id,
        image_id=insp.image_id,
        source_name=insp.source_name,
        captured_at=insp.captured_at,
        line=insp.line,
        station=insp.station,
        product=insp.product,
        lot=insp.lot,
        serial=insp.serial,
        model_id=insp.model_id,
        predicted_class=insp.predicted_class,
        confidence=float(insp.confidence),
        probabilities={str(k): float(v) for k, v in (insp.probabilities or {}).items()},
        is_defect=bool(insp.is_defect),
        flagged=bool(insp.flagged),
        flag_reason=insp.flag_reason,
        threshold_id=insp.threshold_id,
        heatmap_path=insp.heatmap_path,
        review_version=insp.review_version,
        latency_ms=insp.latency_ms,
        reviewed=review is not None,
        true_class=None if review is None else review.true_class,
        disposition=None if review is None else review.disposition,
        image_sha256=None if image is None else image.sha256,
        image_path=None if image is None else image.stored_path,
        width=None if image is None else image.width,
        height=None if image is None else image.height,
        reviewer=reviewer,
        reviewed_at=None if review is None else review.created_at,
        is_demo=bool(insp.is_demo),
        created_at=insp.created_at,
    )


def records_for(
    session: Session, rows: Sequence[tuple[Inspection, Image | None]]
) -> list[InspectionRecord]:
    """InspectionRecords for loaded rows, with each part's newest review (one extra query)."""
    ids = [insp.id for insp, _ in rows]
    latest: dict[int, tuple[Review, str | None]] = {}
    if ids:
        for review, username in session.execute(
            select(Review, User.username)
            .outerjoin(User, User.id == Review.reviewer_id)
            .where(Review.inspection_id.in_(ids))
            .order_by(Review.id)
        ).all():
            latest[review.inspection_id] = (review, username)
    out = []
    for insp, image in rows:
        found = latest.get(insp.id)
        if found is None:
            out.append(_record(insp, image, None, None))
        else:
            out.append(_record(insp, image, found[0], found[1]))
    return out


def list_inspections(
    db: Database,
    *,
    limit: int = 200,
    flagged_only: bool = False,
    line: str | None = None,
    product: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[InspectionRecord]:
    """Newest inspections first, optionally only flagged ones, by line, product and time."""
    stmt = (
        select(Inspection, Image)
        .outerjoin(Image, Image.id == Inspection.image_id)
        .order_by(Inspection.captured_at.desc(), Inspection.id.desc())
        .limit(max(1, int(limit)))
    )
    if flagged_only:
        stmt = stmt.where(Inspection.flagged.is_(True))
    if line:
        stmt = stmt.where(Inspection.line == line)
    if product:
        stmt = stmt.where(Inspection.product == product)
    if since is not None:
        stmt = stmt.where(Inspection.captured_at >= since)
    if until is not None:
        stmt = stmt.where(Inspection.captured_at < until)
    with db.read() as session:
        rows = [(i, im) for i, im in session.execute(stmt).all()]
        return records_for(session, rows)


def get_inspection(db: Database, inspection_id: int) -> InspectionRecord:
    """One inspection by id, with its newest review; NotFound otherwise."""
    with db.read() as session:
        row = session.execute(
            select(Inspection, Image)
            .outerjoin(Image, Image.id == Inspection.image_id)
            .where(Inspection.id == inspection_id)
        ).first()
        if row is None:
            raise NotFound(f"no inspection with id {inspection_id}")
        return records_for(session, [(row[0], row[1])])[0]


def _read_stored(settings: Settings, rel: str, what: str) -> bytes:
    root = settings.images_dir.resolve()
    path = (root / rel).resolve()
    if root not in path.parents:  # stored paths are ours, but never trust a row blindly
        raise NotFound(f"{what} path {rel!r} is outside the image store")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NotFound(f"{what} file {rel} is missing from the image store") from None


def image_bytes(settings: Settings, record: InspectionRecord) -> bytes:
    """The original bytes of an inspected image."""
    if not record.image_path:
        raise NotFound(f"inspection {record.id} has no stored image")
    return _read_stored(settings, record.image_path, "image")


def heatmap_png(settings: Settings, record: InspectionRecord) -> bytes | None:
    """The Grad-CAM overlay (PNG) from the stored map, or None when the part has none.

    Never calls the model: the map was computed at ingest.
    """
    if not record.heatmap_path:
        return None
    cam = _read_stored(settings, record.heatmap_path, "heatmap")
    limits = images.DecodeLimits.from_settings(settings)
    return gradcam.render_overlay(image_bytes(settings, record), cam, limits)


def thumbnail_png(settings: Settings, record: InspectionRecord, size: int = 96) -> bytes:
    """A PNG of the image scaled to fit size x size (for result tables)."""
    data = image_bytes(settings, record)
    limits = images.DecodeLimits.from_settings(settings)
    arr = images.decode(data, name=record.source_name or "image", limits=limits, max_side=size)
    h, w = arr.shape[:2]
    scale = size / max(h, w)
    if scale < 1:
        arr = cv2.resize(
            arr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    return images.encode_png(arr)


# --------------------------------------------------------------------------- maintenance


def backfill_heatmaps(
    db: Database,
    settings: Settings,
    *,
    classifier: tuple[ModelRecord, Classifier] | None = None,
    limit: int = 1000,
) -> int:
    """Compute missing heatmaps of flagged parts judged by the active model; returns how many.

    For ingest runs made with ``with_heatmaps=False`` (``defectlens ingest --no-heatmaps``).
    """
    model, clf = classifier if classifier is not None else load_active(db, settings)
    with db.read() as session:
        rows = session.execute(
            select(Inspection.id, Inspection.predicted_class, Image.stored_path)
            .join(Image, Image.id == Inspection.image_id)
            .where(
                Inspection.flagged.is_(True),
                Inspection.heatmap_path.is_(None),
                Inspection.model_id == model.id,
            )
            .order_by(Inspection.id)
            .limit(limit)
        ).all()
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, settings.num_threads)) as pool:
        for start in range(0, len(rows), CHUNK_SIZE):
            chunk = [r for r in rows[start : start + CHUNK_SIZE] if r[1] in clf.class_names]
            limits = images.DecodeLimits.from_settings(settings)
            inputs: list[np.ndarray] = []
            kept: list[int] = []
            targets: list[int] = []
            for insp_id, cls, rel in chunk:
                try:
                    data = _read_stored(settings, rel, "image")
                    pixels = images.decode(
                        data, limits=limits, grayscale=clf.in_channels == 1, max_side=clf.img_size
                    )
                except (NotFound, InvalidImageError) as e:
                    log.warning("inspection %s: no heatmap: %s", insp_id, e)
                    continue
                inputs.append(clf.prepare(pixels))
                kept.append(insp_id)
                targets.append(clf.class_names.index(cls))
            pngs = list(pool.map(gradcam.encode_map, gradcam.cam_batch(clf, inputs, targets)))
            rels = [_heatmap_rel(images.sha256_bytes(p)) for p in pngs]
            _store_all(settings, dict(zip(rels, pngs, strict=True)), pool)
            with db.write() as session:
                for insp_id, rel in zip(kept, rels, strict=True):
                    session.execute(
                        update(Inspection)
                        .where(Inspection.id == insp_id, Inspection.heatmap_path.is_(None))
                        .values(heatmap_path=rel)
                    )
            done += len(rels)
    return done


def sweep_orphans(db: Database, settings: Settings, *, grace_s: float = ORPHAN_GRACE_S) -> int:
    """Delete stored image/heatmap files no row points at, older than grace_s; returns count.

    The grace period keeps files an ingest has written but not yet committed.
    """
    root = settings.images_dir
    if not root.is_dir():
        return 0
    with db.read() as session:
        used = set(session.scalars(select(Image.stored_path)).all())
        used |= {
            p
            for p in session.scalars(
                select(Inspection.heatmap_path).where(Inspection.heatmap_path.is_not(None))
            ).all()
            if p
        }
    cutoff = time.time() - grace_s
    removed = 0
    for dirpath, _dirs, names in os.walk(root):
        for fname in names:
            path = Path(dirpath) / fname
            rel = path.relative_to(root).as_posix()
            try:
                if rel in used or path.stat().st_mtime > cutoff:
                    continue
                path.unlink()
                removed += 1
            except FileNotFoundError:
                continue
    return removed
