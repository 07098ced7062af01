"""core.registry.compare: load a registered model, score models on one dataset split, ONNX export.

The models are untrained (but real, verified) defectnets from register_active_model: the tests
check which images were scored and how the labels were counted, not how good the model is.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from core.auth import permissions
from core.config import Settings
from core.datasets import service
from core.datasets.snapshot import ManifestEntry
from core.errors import DatasetError, ModelError
from core.registry import catalog, compare
from core.training import metrics
from core.vision import artifacts, onnx_export
from db.engine import Database
from db.queries.catalog import DatasetRecord, ModelRecord
from tests.conftest import write_tiny_dataset
from tests.core.inspection_support import png, register_active_model
from tests.core.jobs_support import import_tiny


@pytest.fixture
def dataset(tmp_path: Path, db: Database, settings: Settings) -> DatasetRecord:
    """2 x 20 images of ok / scratch, imported with the default 80/20 train/val split."""
    return import_tiny(db, settings, tmp_path / "tiny")


def _val_counts(db: Database, dataset_id: int, split: str = "val") -> dict[str, int]:
    _record, snap = service.load_dataset(db, permissions.SYSTEM, dataset_id)
    counts: dict[str, int] = {}
    for e in snap.entries:
        if split == "all" or e.split == split:
            counts[e.cls] = counts.get(e.cls, 0) + 1
    return counts


def _snapshot_files(db: Database, dataset_id: int, split: str) -> list[Path]:
    _record, snap = service.load_dataset(db, permissions.SYSTEM, dataset_id)
    return [snap.path / e.file for e in snap.entries if e.split == split]


def _expected_metrics(
    settings: Settings, model: ModelRecord, snap_path: Path, entries: list[ManifestEntry]
) -> dict[str, object]:
    """The metrics of the model's own predictions on these files, labels counted by name."""
    names = model.class_names
    preds = compare.load_classifier(settings, model).predict_bytes(
        [(snap_path / e.file).read_bytes() for e in entries]
    )
    result = metrics.evaluate(
        [names.index(e.cls) for e in entries],
        [p.class_index for p in preds],  # type: ignore[union-attr]
        names,
        [[p.probabilities[c] for c in names] for p in preds],  # type: ignore[union-attr]
    )
    assert result.roc_auc is not None
    return result.to_dict()


def _overwrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)  # snapshot files may be stored read-only
    path.write_bytes(data)


def _file_model(db: Database, tmp_path: Path, class_names: list[str]) -> ModelRecord:
    """A registered model whose artifact is not a model at all (loading it would fail)."""
    artifact = tmp_path / "not-a-model" / "model.json"
    artifact.parent.mkdir(parents=True, exist_ok=True)
    artifact.write_text("{}")
    return catalog.register_model(
        db,
        permissions.SYSTEM,
        name="file",
        architecture="defectnet",
        class_names=class_names,
        input_spec={},
        artifact_path=artifact,
        artifact_sha256="0" * 64,
        metrics={},
        dataset_id=None,
    )


def _tamper_weights(model: ModelRecord) -> None:
    weights = next(p for p in Path(model.artifact_path).parent.iterdir() if p.suffix != ".json")
    blob = bytearray(weights.read_bytes())
    blob[-1] ^= 0xFF
    _overwrite(weights, bytes(blob))


# --------------------------------------------------------------------------- load_classifier


def test_load_classifier_gives_the_registered_model_on_the_cpu(
    db: Database, settings: Settings
) -> None:
    model = register_active_model(db, settings, class_names=("ok", "scratch", "dent"))
    # A thread count unlike the default (every core), so passing it on is what is checked.
    threads = (os.cpu_count() or 1) + 1
    configured = dataclasses.replace(settings, num_threads=threads)
    assert configured.device == "auto"
    clf = compare.load_classifier(configured, model)
    assert clf.class_names == ["ok", "scratch", "dent"]
    assert str(clf.device) == "cpu"
    assert clf.num_threads == threads
    (pred,) = clf.predict_bytes([png(1)])
    assert set(pred.probabilities) == {"ok", "scratch", "dent"}  # type: ignore[union-attr]


def test_load_classifier_refuses_a_changed_artifact(db: Database, settings: Settings) -> None:
    model = register_active_model(db, settings)
    _tamper_weights(model)
    with pytest.raises(ModelError, match="does not match the metadata"):
        compare.load_classifier(settings, model)


# --------------------------------------------------------------------------- score_model


def test_two_models_are_scored_on_the_same_split(
    db: Database, settings: Settings, dataset: DatasetRecord
) -> None:
    first = register_active_model(db, settings, dataset_id=dataset.id, seed=0)
    second = register_active_model(db, settings, dataset_id=dataset.id, seed=1)
    val = _val_counts(db, dataset.id)
    assert sum(val.values()) > 0 and set(val) == {"ok", "scratch"}
    a = compare.score_model(db, settings, permissions.SYSTEM, first, dataset.id)
    b = compare.score_model(db, settings, permissions.SYSTEM, second, dataset.id)
    for score, model in ((a, first), (b, second)):
        assert (score.model_id, score.dataset_id, score.split) == (model.id, dataset.id, "val")
        assert (score.images, score.rejected) == (sum(val.values()), 0)
        assert score.metrics["n"] == sum(val.values())
        assert score.seconds >= 0
        per_class = score.metrics["per_class"]
        assert {c: per_class[c]["support"] for c in val} == val  # type: ignore[index]
    # Same images, same labels: the rows (true classes) of both confusion matrices agree.
    rows_a = [sum(r) for r in a.metrics["confusion_matrix"]]  # type: ignore[attr-defined]
    rows_b = [sum(r) for r in b.metrics["confusion_matrix"]]  # type: ignore[attr-defined]
    assert rows_a == rows_b == [val["ok"], val["scratch"]]
    _record, snap = service.load_dataset(db, permissions.SYSTEM, dataset.id)
    entries = snap.split_entries("val")
    assert a.metrics == _expected_metrics(settings, first, snap.path, entries)
    assert b.metrics == _expected_metrics(settings, second, snap.path, entries)


def test_score_model_uses_the_requested_split(
    db: Database, settings: Settings, dataset: DatasetRecord
) -> None:
    model = register_active_model(db, settings)
    train = _val_counts(db, dataset.id, "train")
    everything = _val_counts(db, dataset.id, "all")
    assert sum(everything.values()) == 40 and sum(train.values()) < 40
    assert compare.score_model(
        db, settings, permissions.SYSTEM, model, dataset.id, "train"
    ).images == sum(train.values())
    scored = compare.score_model(db, settings, permissions.SYSTEM, model, dataset.id, "all")
    assert (scored.split, scored.images) == ("all", 40)


def test_labels_follow_the_model_class_order(
    tmp_path: Path, db: Database, settings: Settings
) -> None:
    # Fewer scratch than ok images, and a model that lists the classes the other way round
    # from the dataset (ok, scratch): labels must be counted by name, not by position.
    root = write_tiny_dataset(tmp_path / "uneven", n=20, size=32)
    for path in sorted((root / "scratch").iterdir())[:10]:
        path.unlink()
    dataset, snap, _ = service.import_dataset(db, settings, permissions.SYSTEM, root, "uneven")
    val = [e for e in snap.entries if e.split == "val"]
    n_ok, n_scratch = (sum(e.cls == c for e in val) for c in ("ok", "scratch"))
    assert n_ok != n_scratch and n_scratch > 0
    model = register_active_model(db, settings, class_names=("scratch", "ok"), explainable=True)
    scored = compare.score_model(db, settings, permissions.SYSTEM, model, dataset.id)
    rows = [sum(r) for r in scored.metrics["confusion_matrix"]]  # type: ignore[attr-defined]
    assert rows == [n_scratch, n_ok]
    assert scored.metrics["class_names"] == ["scratch", "ok"]
    # Everything else agrees with the model's own predictions on those files.
    assert scored.metrics == _expected_metrics(settings, model, snap.path, val)


def test_a_model_that_does_not_know_the_classes_is_refused(
    tmp_path: Path, db: Database, settings: Settings, dataset: DatasetRecord
) -> None:
    # The artifact is not a model: the classes are checked before anything is loaded.
    model = _file_model(db, tmp_path, ["ok", "dent"])
    with pytest.raises(DatasetError, match=r"does not know the classes scratch .*same classes"):
        compare.score_model(db, settings, permissions.SYSTEM, model, dataset.id)


@pytest.mark.parametrize("split", ["test", "nonsense"])
def test_a_split_without_images_is_refused(
    tmp_path: Path, db: Database, settings: Settings, dataset: DatasetRecord, split: str
) -> None:
    model = _file_model(db, tmp_path, ["ok", "scratch"])
    with pytest.raises(DatasetError, match=f"has no images in split '{split}'"):
        compare.score_model(db, settings, permissions.SYSTEM, model, dataset.id, split)


def test_unreadable_files_are_counted_as_rejected(
    db: Database, settings: Settings, dataset: DatasetRecord
) -> None:
    model = register_active_model(db, settings)
    val_files = _snapshot_files(db, dataset.id, "val")
    _overwrite(val_files[0], b"this is not an image")
    _overwrite(val_files[1], png(5)[:40])  # a truncated PNG
    scored = compare.score_model(db, settings, permissions.SYSTEM, model, dataset.id)
    assert (scored.images, scored.rejected) == (len(val_files) - 2, 2)
    assert scored.metrics["n"] == len(val_files) - 2


def test_a_split_of_only_unreadable_files_is_refused(
    db: Database, settings: Settings, dataset: DatasetRecord
) -> None:
    model = register_active_model(db, settings)
    for path in _snapshot_files(db, dataset.id, "val"):
        _overwrite(path, b"garbage")
    with pytest.raises(DatasetError, match="no readable images in split 'val'"):
        compare.score_model(db, settings, permissions.SYSTEM, model, dataset.id)


def test_scoring_a_dataset_whose_snapshot_is_gone_is_a_dataset_error(
    db: Database, settings: Settings, dataset: DatasetRecord
) -> None:
    model = register_active_model(db, settings)
    _snapshot_files(db, dataset.id, "val")[0].unlink()
    with pytest.raises(DatasetError, match="files missing"):
        compare.score_model(db, settings, permissions.SYSTEM, model, dataset.id)


# --------------------------------------------------------------------------- ONNX export


def test_onnx_export_runs_and_matches_the_classifier(db: Database, settings: Settings) -> None:
    model = register_active_model(db, settings, img_size=32, explainable=True)
    data = compare.onnx_export_bytes(model)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["pixels"]
    assert [o.name for o in session.get_outputs()] == ["probabilities"]
    clf = compare.load_classifier(settings, model)
    prepared = np.random.default_rng(0).integers(0, 256, (3, 1, 32, 32), dtype=np.uint8)
    (got,) = session.run(None, {"pixels": prepared.astype(np.float32) / 255.0})
    assert got.shape == (3, 2)  # the batch axis is dynamic (export traced a batch of 2)
    want = [
        [p.probabilities[c] for c in ("ok", "scratch")]
        for p in clf.predict_prepared(list(prepared))
    ]
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_onnx_export_refuses_a_changed_artifact(db: Database, settings: Settings) -> None:
    model = register_active_model(db, settings)
    _tamper_weights(model)
    with pytest.raises(ModelError, match="does not match the metadata"):
        compare.onnx_export_bytes(model)


def test_onnx_export_is_checked_against_pytorch(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = register_active_model(db, settings, seed=0, explainable=True)
    other = register_active_model(db, settings, seed=1, explainable=True)
    other_bytes = onnx_export.onnx_bytes(artifacts.load_model(Path(other.artifact_path)))
    # An export that came out as a different network must not be handed out.
    monkeypatch.setattr(onnx_export, "onnx_bytes", lambda loaded: other_bytes)
    with pytest.raises(ModelError, match="ONNX export differs from torch"):
        compare.onnx_export_bytes(model)
