"""Folder watcher: inspect each image a camera drops into a folder exactly once.

A file is taken when its size and modification time are the same on two polls in a row (the
camera has finished writing). It is first moved into ``.inflight/`` (one rename), ingested, then
moved to ``processed/`` or ``rejected/`` with ``<name>.reason.txt`` beside it. On start, files
left in ``.inflight/`` by a crash are finished: one that the database already holds (same bytes,
same name, recorded after it entered ``.inflight/``) is only moved, so nothing is inspected
twice; anything else is ingested again.

Cameras that write in place should write to a dot-file or ``*.tmp``/``*.part`` name and rename
when done; those names are never picked up.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.errors import InvalidImageError, NotFound, ValidationError
from core.quality import ingest, uploads
from core.quality.ingest import IngestResult, Traceability
from core.quality.uploads import Rejection
from core.registry import catalog
from core.vision import images
from db.engine import Database
from db.queries import inspections as inspection_queries
from db.queries.catalog import ModelRecord

if TYPE_CHECKING:
    from core.vision.classifier import Classifier

log = logging.getLogger(__name__)

INFLIGHT = ".inflight"
PROCESSED = "processed"
REJECTED = "rejected"
_SKIP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".reason.txt")
# Clock and file-system time-stamp granularity when matching a recovered file to its row.
_RECOVERY_SLACK = timedelta(seconds=2)


@dataclass
class WatchSummary:
    """Running totals of a watch session."""

    processed: int = 0
    rejected: int = 0
    flagged: int = 0
    recovered: int = 0
    rejections: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True)
class _Seen:
    size: int
    mtime_ns: int


def _unique_target(folder: Path, name: str) -> Path:
    """folder/name, or folder/stem-N.suffix when taken (and never over a reason file)."""
    folder.mkdir(parents=True, exist_ok=True)
    candidate = folder / name
    stem, suffix = os.path.splitext(name)
    n = 1
    while candidate.exists() or Path(f"{candidate}.reason.txt").exists():
        candidate = folder / f"{stem}-{n}{suffix}"
        n += 1
    return candidate


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class FolderWatcher:
    """Polls one folder; call ``poll()`` repeatedly (``run`` does, until told to stop)."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        actor: CurrentUser,
        folder: Path,
        trace: Traceability,
        *,
        with_heatmaps: bool = True,
        classifier: tuple[ModelRecord, Classifier] | None = None,
        on_result: Callable[[IngestResult], None] | None = None,
    ) -> None:
        require(actor, Action.INSPECT)
        self.db = db
        self.settings = settings
        self.actor = actor
        self.folder = Path(folder).resolve()
        if not self.folder.is_dir():
            raise ValidationError(f"{folder}: not a folder")
        self.trace = trace
        self.with_heatmaps = with_heatmaps
        self.on_result = on_result
        self.summary = WatchSummary()
        self._classifier = classifier
        self._seen: dict[str, _Seen] = {}
        self._limits = images.DecodeLimits.from_settings(settings)
        self.inflight = self.folder / INFLIGHT
        self.processed_dir = self.folder / PROCESSED
        self.rejected_dir = self.folder / REJECTED
        self._recovered = False
        self._warned_no_model = False

    # ----------------------------------------------------------------------- model

    def _model(self) -> tuple[ModelRecord, Classifier]:
        """The active model, reloaded when another one is promoted while watching."""
        active = catalog.get_model(self.db, self.actor, "active")
        current = self._classifier
        if current is None or (current[0].id, current[0].artifact_sha256) != (
            active.id,
            active.artifact_sha256,
        ):
            # Deferred: load_classifier imports torch and onnxruntime (only once files arrive).
            from core.registry.compare import load_classifier

            log.info("watcher: using model %s", active.id)
            self._classifier = (active, load_classifier(self.settings, active))
        assert self._classifier is not None
        return self._classifier

    # ----------------------------------------------------------------------- polling

    def _candidates(self) -> dict[str, _Seen]:
        found: dict[str, _Seen] = {}
        try:
            entries = list(os.scandir(self.folder))
        except OSError as e:
            log.warning("watcher: cannot list %s: %s", self.folder, e)
            return found
        for entry in entries:
            name = entry.name
            if name.startswith(".") or name.lower().endswith(_SKIP_SUFFIXES):
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            found[name] = _Seen(st.st_size, st.st_mtime_ns)
        return found

    def poll(self) -> IngestResult | None:
        """One look at the folder: take the files that stopped changing and inspect them."""
        if not self._recovered:
            self._recover()
            self._recovered = True
        now = self._candidates()
        stable = sorted(n for n, seen in now.items() if self._seen.get(n) == seen)
        self._seen = now
        if not stable:
            return None
        try:
            active = self._model()
        except NotFound as e:
            # Leave the files where they are; they are taken once a model is promoted.
            if not self._warned_no_model:
                log.warning("watcher: %s; %d file(s) wait", e, len(stable))
                self._warned_no_model = True
            return None
        self._warned_no_model = False
        for name in stable:
            del self._seen[name]
        self.inflight.mkdir(parents=True, exist_ok=True)
        taken: list[Path] = []
        for name in stable:
            target = _unique_target(self.inflight, name)
            try:
                os.replace(self.folder / name, target)
            except FileNotFoundError:
                continue  # removed by someone else between the polls
            taken.append(target)
        return self._process(taken, active)

    def _process(
        self, paths: list[Path], model: tuple[ModelRecord, Classifier]
    ) -> IngestResult | None:
        if not paths:
            return None
        files: list[tuple[str, bytes]] = []
        by_name: dict[str, Path] = {}
        early: list[Rejection] = []
        for path in paths:
            shown = uploads.display_name(path.name)
            try:
                data = images.read_file_limited(
                    path, self._limits, name=shown, follow_symlinks=False
                )
            except InvalidImageError as e:
                early.append(Rejection.from_error(shown, e))
                by_name[shown] = path
                continue
            files.append((path.name, data))
            by_name[shown] = path
        result = ingest.ingest(
            self.db,
            self.settings,
            self.actor,
            files,
            self.trace,
            classifier=model,
            with_heatmaps=self.with_heatmaps,
        )
        result = IngestResult(
            processed=result.processed,
            rejected=early + result.rejected,
            flagged=result.flagged,
            seconds=result.seconds,
            heatmaps=result.heatmaps,
        )
        self._finish(result, by_name)
        if self.on_result is not None:
            self.on_result(result)
        return result

    def _finish(self, result: IngestResult, by_name: dict[str, Path]) -> None:
        for rec in result.processed:
            path = by_name.pop(rec.source_name or "", None)
            if path is not None:
                os.replace(path, _unique_target(self.processed_dir, path.name))
        for rej in result.rejected:
            path = by_name.pop(rej.file, None)
            if path is None:
                continue
            target = _unique_target(self.rejected_dir, path.name)
            _write_text_atomic(Path(f"{target}.reason.txt"), rej.reason + "\n")
            os.replace(path, target)
        self.summary.processed += len(result.processed)
        self.summary.rejected += len(result.rejected)
        self.summary.flagged += result.flagged
        self.summary.rejections += result.rejected
        for leftover in by_name.values():  # same display name twice in one poll: never lost
            log.warning("watcher: %s left in %s", leftover.name, self.inflight)

    # ----------------------------------------------------------------------- recovery

    def _already_ingested(self, path: Path, data: bytes) -> bool:
        """Whether a crash came after the rows were committed but before the file was moved."""
        moved_at = datetime.fromtimestamp(path.stat().st_ctime, tz=UTC) - _RECOVERY_SLACK
        sha = images.sha256_bytes(data)
        with self.db.read() as session:
            return inspection_queries.recorded_since(
                session, sha, uploads.display_name(path.name), moved_at
            )

    def _recover(self) -> None:
        if not self.inflight.is_dir():
            return
        # Whatever was swapped in (a link, a FIFO) is taken too, and rejected with its reason.
        leftovers = sorted(p for p in self.inflight.iterdir() if p.is_symlink() or not p.is_dir())
        redo: list[Path] = []
        for path in leftovers:
            try:
                data = images.read_file_limited(path, self._limits, follow_symlinks=False)
            except InvalidImageError:
                redo.append(path)  # rejected again, with its reason
                continue
            if self._already_ingested(path, data):
                os.replace(path, _unique_target(self.processed_dir, path.name))
                self.summary.recovered += 1
            else:
                redo.append(path)
        if redo:
            log.info("watcher: finishing %d file(s) left by an interrupted run", len(redo))
            self._process(redo, self._model())

    # ----------------------------------------------------------------------- loop

    def run(self, should_stop: Callable[[], bool], poll_seconds: float = 1.0) -> WatchSummary:
        """Poll until should_stop() is true (checked at least every 0.2 s)."""
        while not should_stop():
            self.poll()
            deadline = time.monotonic() + poll_seconds
            while time.monotonic() < deadline and not should_stop():
                time.sleep(min(0.2, poll_seconds))
        return self.summary
