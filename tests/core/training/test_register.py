"""core.training.register: import + register, train + register, and what a run without validation
split records."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.auth import permissions
from core.errors import DatasetError, PermissionDenied
from core.registry import catalog
from core.training import register
from core.training.loop import TrainConfig
from tests.conftest import write_tiny_dataset


def test_published_split_without_val_is_measured_on_test(tmp_path: Path, db, settings) -> None:  # type: ignore[no-untyped-def]
    data = write_tiny_dataset(tmp_path / "tiny", n=16)
    rows = ["file,split"]
    for cls in ("ok", "scratch"):
        rows += [
            f"{cls}/{cls}_{i},{'train' if i < 12 else 'test'}".replace(f"_{i},", f"_{i}.png,")
            for i in range(16)
        ]
    split_file = tmp_path / "splits.csv"
    split_file.write_text("\n".join(rows) + "\n")
    record, snap, _ = register.import_dataset(
        db, settings, permissions.SYSTEM, data, "tiny", split_file=split_file
    )
    assert not snap.split_entries("val") and len(snap.split_entries("test")) == 8
    outcome = register.train_and_register(
        db,
        settings,
        permissions.SYSTEM,
        record.id,
        TrainConfig(epochs=2, img_size=32, device="cpu"),
    )
    assert outcome.model is not None
    metrics = catalog.get_model(db, outcome.model.id).metrics
    assert metrics["evaluated_on"] == "test"
    assert metrics["n"] == 8 and sum(map(sum, metrics["confusion_matrix"])) == 8


def test_stopped_run_registers_nothing(db, settings, tiny_dataset) -> None:  # type: ignore[no-untyped-def]
    outcome = register.train_and_register(
        db,
        settings,
        permissions.SYSTEM,
        tiny_dataset.id,
        TrainConfig(epochs=3, img_size=32, device="cpu"),
        should_stop=lambda: True,
    )
    assert outcome.model is None and outcome.result.stopped
    assert catalog.list_models(db) == []


def test_reviewer_may_not_import_or_train(
    tmp_path: Path, db, settings, make_user, tiny_dataset
) -> None:  # type: ignore[no-untyped-def]
    reviewer, _ = make_user("rev", "reviewer")
    with pytest.raises(PermissionDenied):
        register.import_dataset(db, settings, reviewer, write_tiny_dataset(tmp_path / "x"), "x")
    with pytest.raises(PermissionDenied):
        register.train_and_register(db, settings, reviewer, tiny_dataset.id, TrainConfig())


def test_server_folder_must_be_an_absolute_existing_folder(db, settings) -> None:  # type: ignore[no-untyped-def]
    for bad, reason in (
        ("", "give the folder"),
        ("relative/path", "absolute"),
        ("/no/such/folder", "no such folder"),
    ):
        with pytest.raises(DatasetError, match=reason):
            register.import_server_folder(db, settings, permissions.SYSTEM, bad, "x")


def test_upload_error_names_the_uploaded_file_not_the_temp_file(db, settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DatasetError) as err:
        register.import_upload(
            db, settings, permissions.SYSTEM, b"PK\x03\x04 broken", "parts.zip", "x"
        )
    assert "parts.zip" in str(err.value) and ".zip" in str(err.value)
    assert str(settings.home) not in str(err.value)


def test_upload_records_the_uploaded_name_as_source(tmp_path: Path, db, settings) -> None:  # type: ignore[no-untyped-def]
    import shutil

    archive = shutil.make_archive(
        str(tmp_path / "parts"), "zip", write_tiny_dataset(tmp_path / "t")
    )
    record, _snap, _ = register.import_upload(
        db, settings, permissions.SYSTEM, Path(archive).read_bytes(), "line3 parts.zip", "uploaded"
    )
    assert record.source == "upload: line3 parts.zip"
