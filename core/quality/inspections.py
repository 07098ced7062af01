"""Inspected parts read back: lists, one part, its image, heatmap overlay and thumbnail; and the
backfill of heatmaps for parts ingested without them.

Reading never calls the model: the Grad-CAM map of a flagged part was computed at ingest (or by
``backfill_heatmaps``) and is only drawn over the image here.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

import cv2
import numpy as np

from core.auth.permissions import Action, CurrentUser, can, require
from core.config import Settings
from core.errors import InvalidImageError, NotFound
from core.quality import image_store
from core.quality.ingest import CHUNK_SIZE, load_active
from core.vision import gradcam, images, preprocess
from db.engine import Database
from db.queries import inspections as inspection_queries
from db.queries.catalog import ModelRecord
from db.queries.inspections import InspectionRecord, MissingHeatmap

if TYPE_CHECKING:
    from core.vision.classifier import Classifier

log = logging.getLogger(__name__)


def list_inspections(
    db: Database,
    actor: CurrentUser,
    *,
    limit: int = 200,
    flagged_only: bool = False,
    line: str | None = None,
    product: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[InspectionRecord]:
    """Newest inspections first, optionally only flagged ones, by line, product and time.

    Viewers and up: the Trends page lists recent flagged parts (VIEW_TRENDS) and so does the
    trend PDF a viewer downloads (DOWNLOAD_REPORTS).
    """
    if not can(actor, Action.DOWNLOAD_REPORTS):
        require(actor, Action.VIEW_TRENDS)
    with db.read() as session:
        return inspection_queries.list_inspections(
            session,
            limit=limit,
            flagged_only=flagged_only,
            line=line,
            product=product,
            since=since,
            until=until,
        )


def get_inspection(db: Database, actor: CurrentUser, inspection_id: int) -> InspectionRecord:
    """One inspection by id, with its newest review; NotFound otherwise (reviewers and up)."""
    require(actor, Action.INSPECT)
    with db.read() as session:
        record = inspection_queries.get_inspection(session, inspection_id)
    if record is None:
        raise NotFound(f"no inspection with id {inspection_id}")
    return record


def image_bytes(settings: Settings, actor: CurrentUser, record: InspectionRecord) -> bytes:
    """The original bytes of an inspected image (reviewers and up)."""
    require(actor, Action.INSPECT)
    if not record.image_path:
        raise NotFound(f"inspection {record.id} has no stored image")
    return image_store.read_stored(settings, record.image_path, "image")


def heatmap_png(settings: Settings, actor: CurrentUser, record: InspectionRecord) -> bytes | None:
    """The Grad-CAM overlay (PNG) from the stored map, or None when the part has none.

    Never calls the model: the map was computed at ingest.
    """
    require(actor, Action.INSPECT)
    if not record.heatmap_path:
        return None
    cam = image_store.read_stored(settings, record.heatmap_path, "heatmap")
    limits = images.DecodeLimits.from_settings(settings)
    return gradcam.render_overlay(image_bytes(settings, actor, record), cam, limits)


def thumbnail_png(
    settings: Settings, actor: CurrentUser, record: InspectionRecord, size: int = 96
) -> bytes:
    """A PNG of the image scaled to fit size x size: for result tables (reviewers) and the
    trend PDF's recent flagged parts, which a viewer may download (DOWNLOAD_REPORTS)."""
    if not can(actor, Action.DOWNLOAD_REPORTS):
        require(actor, Action.INSPECT)
    if not record.image_path:
        raise NotFound(f"inspection {record.id} has no stored image")
    data = image_store.read_stored(settings, record.image_path, "image")
    limits = images.DecodeLimits.from_settings(settings)
    arr = images.decode(data, name=record.source_name or "image", limits=limits, max_side=size)
    h, w = arr.shape[:2]
    scale = size / max(h, w)
    if scale < 1:
        arr = cv2.resize(
            arr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    return images.encode_png(arr)


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
        missing = inspection_queries.missing_heatmaps(session, model.id, limit)
    if not missing:
        return 0
    done = 0
    cam = clf.batch_explainer()  # one explainer for the whole backfill, not one per chunk
    with ThreadPoolExecutor(max_workers=max(1, settings.num_threads)) as pool:
        for start in range(0, len(missing), CHUNK_SIZE):
            chunk = missing[start : start + CHUNK_SIZE]
            known = [m for m in chunk if m.predicted_class in clf.class_names]
            made = _explain(settings, clf, cam, known, pool)
            with db.write() as session:
                for insp_id, rel in made.items():
                    inspection_queries.set_heatmap_path(session, insp_id, rel)
            done += len(made)
    return done


def _explain(
    settings: Settings,
    clf: Classifier,
    cam: gradcam.GradCam | gradcam.OnnxGradCam,
    parts: list[MissingHeatmap],
    pool: ThreadPoolExecutor,
) -> dict[int, str]:
    """Grad-CAM maps of the parts' images for their predicted class, stored; {id: store path}."""
    limits = images.DecodeLimits.from_settings(settings)
    inputs: list[np.ndarray] = []
    kept: list[int] = []
    targets: list[int] = []
    shapes: list[tuple[int, int]] = []
    for part in parts:
        try:
            data = image_store.read_stored(settings, part.image_path, "image")
            pixels = preprocess.decode_for_model(
                data,
                name=part.image_path,
                limits=limits,
                img_size=clf.img_size,
                in_channels=clf.in_channels,
            )
        except (NotFound, InvalidImageError) as e:
            log.warning("inspection %s: no heatmap: %s", part.inspection_id, e)
            continue
        inputs.append(clf.prepare(pixels))
        shapes.append((pixels.shape[0], pixels.shape[1]))
        kept.append(part.inspection_id)
        targets.append(clf.class_names.index(part.predicted_class))
    cams = cam.explain(inputs, targets)
    # Each map is cut to its image (letterbox padding off) before it is stored.
    cut = [clf.image_map(c, hw) for c, hw in zip(cams, shapes, strict=True)]
    pngs = list(pool.map(gradcam.encode_map, cut))
    rels = [image_store.heatmap_path(images.sha256_bytes(p)) for p in pngs]
    image_store.store_all(settings, dict(zip(rels, pngs, strict=True)), pool)
    return dict(zip(kept, rels, strict=True))
