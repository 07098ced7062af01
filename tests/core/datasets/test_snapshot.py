"""core.datasets.snapshot: content-addressed, immutable snapshots and loading them back."""

from __future__ import annotations

import json

import pytest

from core.config import Settings
from core.datasets.importer import import_dataset
from core.datasets.snapshot import content_hash, load_snapshot
from core.errors import DatasetError
from tests.core.datasets.support import MakeDataset


def test_import_is_idempotent(settings: Settings, make_dataset: MakeDataset) -> None:
    src = make_dataset({"a": 5, "b": 5})
    first = import_dataset(src, "first", settings)
    second = import_dataset(src, "second name", settings)
    assert second.path == first.path and second.content_hash == first.content_hash
    assert second.name == "first"  # the existing snapshot is returned unchanged
    assert len(list(settings.datasets_dir.iterdir())) == 1
    # Another split is another snapshot.
    third = import_dataset(src, "other split", settings, seed=5)
    assert third.content_hash != first.content_hash


def test_load_snapshot_notices_damage(settings: Settings, make_dataset: MakeDataset) -> None:
    snap = import_dataset(make_dataset({"a": 3, "b": 3}), "x", settings)
    victim = snap.path / snap.entries[0].file
    victim.unlink()
    with pytest.raises(DatasetError, match="1 files missing"):
        load_snapshot(snap.path)
    with pytest.raises(DatasetError, match="not a dataset snapshot"):
        load_snapshot(settings.datasets_dir)


def test_load_snapshot_notices_an_edited_manifest(
    settings: Settings, make_dataset: MakeDataset
) -> None:
    snap = import_dataset(make_dataset({"a": 3, "b": 3}), "x", settings)
    manifest = json.loads(snap.manifest_path.read_text())
    manifest["entries"][0]["cls"] = "b" if manifest["entries"][0]["cls"] == "a" else "a"
    snap.manifest_path.chmod(0o644)
    snap.manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match="does not match its content hash"):
        load_snapshot(snap.path)
    assert content_hash(snap.entries) == snap.content_hash
