"""Model artifacts: safetensors weights + JSON metadata, written atomically (ONNX: onnx_export).

Nothing here unpickles: weights are read with safetensors, metadata is JSON, and the weights
file's SHA-256 and tensor shapes are checked against the metadata before any tensor reaches a
module.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from core.errors import ModelError
from core.files import write_atomic
from core.vision import acceptance, preprocess
from core.vision.architectures import ARCHITECTURES, build_model, classifier_head

if TYPE_CHECKING:
    from core.training.config import TrainResult

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
META_NAME = "model.json"
MAX_META_BYTES = 4 * 1024 * 1024  # metadata is small; refuse to parse anything huge


def defectlens_version() -> str:
    """Installed package version, or 'dev' in a plain checkout."""
    try:
        return version("defectlens")
    except PackageNotFoundError:
        return "dev"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class ModelMetadata:
    """Everything needed to rebuild and trust a model, stored as JSON beside its weights."""

    architecture: str
    class_names: list[str]
    img_size: int
    in_channels: int
    normalisation: dict[str, list[float]]  # {"mean": [...], "std": [...]} on the [0, 1] scale
    # How images become the S x S input (core.vision.preprocess); models saved before
    # letterboxing existed lack the field and stretch, as they were trained to.
    resize: str = "stretch"
    img_size_reason: str = ""  # why training chose img_size (empty: not recorded)
    dataset_id: str | None = None
    dataset_hash: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    train_config: dict[str, Any] = field(default_factory=dict)
    weights_file: str = WEIGHTS_NAME
    sha256: str = ""
    created_at: str = ""
    defectlens_version: str = ""
    format_version: int = FORMAT_VERSION
    # Temperature scaling (core.vision.calibration): probabilities are softmax(logits / T).
    # Older artifacts have neither field and keep T = 1, exactly as before.
    temperature: float = 1.0
    calibration: dict[str, Any] = field(default_factory=dict)
    # When a good call stands (core.vision.acceptance); older artifacts lack it: argmax.
    acceptance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelMetadata:
        """Validate and build from parsed JSON; ModelError names the bad field."""
        if not isinstance(d, dict):
            raise ModelError("metadata is not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        required = ("architecture", "class_names", "img_size", "in_channels", "normalisation")
        for key in required:
            if key not in d:
                raise ModelError(f"metadata lacks {key!r}")
        if d.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
            raise ModelError(f"metadata format {d['format_version']} is newer than this DefectLens")
        meta = cls(**{k: v for k, v in d.items() if k in names})
        if meta.architecture not in ARCHITECTURES:
            raise ModelError(f"unknown architecture {meta.architecture!r}")
        if (
            not isinstance(meta.class_names, list)
            or len(meta.class_names) < 2
            or not all(isinstance(c, str) for c in meta.class_names)
            or len(set(meta.class_names)) != len(meta.class_names)
        ):
            raise ModelError("class_names must be a list of at least 2 distinct names")
        if not isinstance(meta.img_size, int) or not 16 <= meta.img_size <= 2048:
            raise ModelError(f"img_size {meta.img_size!r} is out of range")
        if meta.in_channels not in (1, 3):
            raise ModelError(f"in_channels must be 1 or 3, got {meta.in_channels!r}")
        if meta.resize not in preprocess.RESIZE_MODES:
            modes = ", ".join(preprocess.RESIZE_MODES)
            raise ModelError(f"resize must be one of {modes}, not {meta.resize!r}")
        norm = meta.normalisation
        if (
            not isinstance(norm, dict)
            or any(len(norm.get(k, [])) != meta.in_channels for k in ("mean", "std"))
            or any(float(s) <= 0 for s in norm["std"])
        ):
            raise ModelError("normalisation needs mean and std with one value per channel")
        t = meta.temperature
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < float("inf"):
            raise ModelError(f"temperature must be a positive number, got {t!r}")
        meta.temperature = float(t)
        if not isinstance(meta.calibration, dict):
            raise ModelError("calibration must be a JSON object")
        if not isinstance(meta.acceptance, dict):
            raise ModelError("acceptance must be a JSON object")
        try:
            acceptance.stored_rule(meta.acceptance, meta.class_names)
        except ValueError as e:
            raise ModelError(str(e)) from None
        wf = meta.weights_file
        # A plain file name only: metadata must not point the loader anywhere else on disk.
        if not isinstance(wf, str) or Path(wf).name != wf or wf in ("", ".", ".."):
            raise ModelError(f"weights_file {wf!r} must be a plain file name")
        return meta


def metadata_from_result(
    result: TrainResult, *, dataset_id: str | None = None, dataset_hash: str | None = None
) -> ModelMetadata:
    """Metadata for a freshly trained model."""
    mean, std = result.normalisation
    return ModelMetadata(
        architecture=result.arch,
        class_names=list(result.class_names),
        img_size=result.img_size,
        in_channels=result.in_channels,
        resize=result.resize,
        img_size_reason=result.img_size_reason,
        normalisation={"mean": [float(m) for m in mean], "std": [float(s) for s in std]},
        dataset_id=dataset_id,
        dataset_hash=dataset_hash,
        metrics=result.metrics.to_dict() if result.metrics else {},
        train_config=result.config.to_dict(),
        temperature=result.temperature,
        calibration=dict(result.calibration),
        acceptance=dict(result.acceptance),
    )


@dataclass(frozen=True)
class SavedModel:
    """Where save_model put the artifact."""

    path_weights: Path
    path_meta: Path
    sha256: str


@dataclass
class LoadedModel:
    """A verified model (CPU, eval mode) and its metadata."""

    model: nn.Module
    metadata: ModelMetadata


def save_model(
    result_or_model: TrainResult | nn.Module, metadata: ModelMetadata, directory: Path
) -> SavedModel:
    """Write weights then metadata (each atomically); the metadata carries the weights' SHA-256."""
    model = result_or_model if isinstance(result_or_model, nn.Module) else result_or_model.model
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    head_rows = classifier_head(model)[1].out_features
    if head_rows != len(metadata.class_names):
        raise ModelError(
            f"model head has {head_rows} outputs but metadata names {len(metadata.class_names)}"
        )
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = st_save(state, metadata={"format": "pt", "architecture": metadata.architecture})
    weights_path = directory / metadata.weights_file
    write_atomic(weights_path, blob)
    meta = dataclasses.replace(
        metadata,
        sha256=hashlib.sha256(blob).hexdigest(),
        created_at=metadata.created_at or dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        defectlens_version=metadata.defectlens_version or defectlens_version(),
    )
    meta_path = directory / META_NAME
    # Metadata last: a reader that finds it can rely on the weights already being complete.
    write_atomic(meta_path, json.dumps(meta.to_dict(), indent=2).encode())
    return SavedModel(path_weights=weights_path, path_meta=meta_path, sha256=meta.sha256)


def read_metadata(path: Path) -> tuple[ModelMetadata, Path]:
    """Parse and validate the metadata JSON of an artifact (a directory or its .json file)."""
    path = Path(path)
    meta_path = path / META_NAME if path.is_dir() else path
    try:
        size = meta_path.stat().st_size
        if size > MAX_META_BYTES:
            raise ModelError(f"{meta_path.name}: metadata is {size} bytes, too large")
        raw = json.loads(meta_path.read_bytes())
    except FileNotFoundError:
        raise ModelError(f"{meta_path}: model metadata not found") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"{meta_path.name}: unreadable metadata ({e})") from None
    return ModelMetadata.from_dict(raw), meta_path


def weights_file(path: Path) -> Path:
    """The safetensors file of an artifact (a directory or its .json file), from its metadata."""
    meta, meta_path = read_metadata(path)
    return meta_path.parent / meta.weights_file


def load_model(path: Path) -> LoadedModel:
    """Load and verify an artifact: hash, tensor names and shapes, then weights (no pickle)."""
    meta, meta_path = read_metadata(path)
    weights_path = meta_path.parent / meta.weights_file
    try:
        blob = weights_path.read_bytes()
    except OSError as e:
        raise ModelError(f"{weights_path}: cannot read weights ({e.strerror})") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != meta.sha256:
        raise ModelError(
            f"{weights_path.name}: SHA-256 {digest[:12]}… does not match the metadata "
            f"({meta.sha256[:12] or 'missing'}…); the file was changed or corrupted"
        )
    model = build_model(meta.architecture, len(meta.class_names), meta.in_channels)
    expected = model.state_dict()
    head_name, _ = classifier_head(model)
    try:
        # Read the header only (names, shapes) before materialising any tensor.
        with safe_open(str(weights_path), framework="pt") as f:
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except SafetensorError as e:
        raise ModelError(f"{weights_path.name}: not a valid safetensors file ({e})") from None
    head_key = f"{head_name}.weight"
    if head_key in shapes and shapes[head_key][0] != len(meta.class_names):
        raise ModelError(
            f"weights have {shapes[head_key][0]} classes but the metadata names "
            f"{len(meta.class_names)} ({', '.join(meta.class_names)})"
        )
    missing = sorted(set(expected) - set(shapes))
    extra = sorted(set(shapes) - set(expected))
    wrong = [k for k in expected if k in shapes and shapes[k] != tuple(expected[k].shape)]
    if missing or extra or wrong:
        raise ModelError(
            f"weights do not fit {meta.architecture}: missing {missing[:3]}, "
            f"unexpected {extra[:3]}, wrong shape {wrong[:3]}"
        )
    state = st_load(blob)
    model.load_state_dict(state, strict=True)
    model.eval()
    return LoadedModel(model=model, metadata=meta)
