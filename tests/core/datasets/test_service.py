"""core.datasets.service: import + register (CLI path, browser upload, server folder) and loading
a registered dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from core.auth import permissions
from core.datasets import service
from core.errors import DatasetError, PermissionDenied
from core.registry import catalog
from tests.conftest import write_tiny_dataset


def test_import_registers_the_snapshot_and_loads_it_back(tmp_path: Path, db, settings) -> None:  # type: ignore[no-untyped-def]
    data = write_tiny_dataset(tmp_path / "tiny", n=4)
    record, snap, created = service.import_dataset(db, settings, permissions.SYSTEM, data, "tiny")
    assert created and record.content_hash == snap.content_hash
    assert record.counts == {"ok": 4, "scratch": 4} and record.source == str(data)
    again, _snap, created_again = service.import_dataset(
        db, settings, permissions.SYSTEM, data, "tiny"
    )
    assert again.id == record.id and not created_again
    loaded_record, loaded = service.load_dataset(db, permissions.SYSTEM, record.id)
    assert loaded_record == record and loaded == snap


def test_load_dataset_says_when_the_snapshot_folder_is_gone(tmp_path: Path, db, settings) -> None:  # type: ignore[no-untyped-def]
    data = write_tiny_dataset(tmp_path / "tiny", n=4)
    record, snap, _ = service.import_dataset(db, settings, permissions.SYSTEM, data, "tiny")
    for f in snap.path.rglob("*"):
        f.chmod(0o644 if f.is_file() else 0o755)
    shutil.rmtree(snap.path)
    with pytest.raises(DatasetError, match=f"dataset {record.id} \\(tiny\\): snapshot folder"):
        service.load_dataset(db, permissions.SYSTEM, record.id)


def test_reviewer_may_not_import(tmp_path: Path, db, settings, make_user) -> None:  # type: ignore[no-untyped-def]
    reviewer, _ = make_user("rev", "reviewer")
    data = write_tiny_dataset(tmp_path / "x")
    archive = Path(shutil.make_archive(str(tmp_path / "parts"), "zip", data))
    with pytest.raises(PermissionDenied):
        service.import_dataset(db, settings, reviewer, data, "x")
    with pytest.raises(PermissionDenied):
        service.import_upload(db, settings, reviewer, archive.read_bytes(), "parts.zip", "x")
    with pytest.raises(PermissionDenied):
        service.import_server_folder(db, settings, reviewer, str(data), "x")
    assert catalog.list_datasets(db, permissions.SYSTEM) == []


def test_server_folder_must_be_an_absolute_existing_folder(db, settings) -> None:  # type: ignore[no-untyped-def]
    inside = settings.home / "import"
    for bad, reason in (
        ("", "give the folder"),
        ("relative/path", "absolute"),
        (str(inside / "no" / "such" / "folder"), "no such folder"),
    ):
        with pytest.raises(DatasetError, match=reason):
            service.import_server_folder(db, settings, permissions.SYSTEM, bad, "x")


def test_server_folder_import_reads_only_inside_the_import_roots(  # type: ignore[no-untyped-def]
    tmp_path: Path, db, settings
) -> None:
    settings.ensure_dirs()
    inside = write_tiny_dataset(settings.home / "import" / "line3")
    outside = write_tiny_dataset(tmp_path / "elsewhere")
    (settings.home / "import" / "sneaky").symlink_to(outside)  # a link out of the root
    for path in (outside, settings.home / "import" / "sneaky", Path("/home"), Path("/"),
                 Path("/no/such/folder"), settings.home / "import" / ".." / "images"):  # fmt: skip
        with pytest.raises(DatasetError, match="outside the folders the server imports from"):
            service.import_server_folder(db, settings, permissions.SYSTEM, str(path), "x")
    # Nothing was read, nothing half-stored.
    assert catalog.list_datasets(db, permissions.SYSTEM) == []
    record, _snap, _ = service.import_server_folder(
        db, settings, permissions.SYSTEM, str(inside), "line 3"
    )
    assert record.num_images == 32


def test_import_roots_are_a_setting(tmp_path: Path) -> None:
    from core.config import load_settings
    from core.errors import ValidationError

    env = {"DEFECTLENS_HOME": str(tmp_path / "h"), "DEFECTLENS_IMPORT_ROOTS": "/srv/a:/mnt/b"}
    assert load_settings(env).import_dirs == (Path("/srv/a"), Path("/mnt/b"))
    assert load_settings({"DEFECTLENS_HOME": str(tmp_path / "h")}).import_dirs == (
        tmp_path / "h" / "import",
    )
    with pytest.raises(ValidationError, match="not an absolute path"):
        load_settings({**env, "DEFECTLENS_IMPORT_ROOTS": "relative/x"})


def test_upload_error_names_the_uploaded_file_not_the_temp_file(db, settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DatasetError) as err:
        service.import_upload(
            db, settings, permissions.SYSTEM, b"PK\x03\x04 broken", "parts.zip", "x"
        )
    assert "parts.zip" in str(err.value) and ".zip" in str(err.value)
    assert str(settings.home) not in str(err.value)


def test_upload_records_the_uploaded_name_as_source(tmp_path: Path, db, settings) -> None:  # type: ignore[no-untyped-def]
    archive = shutil.make_archive(
        str(tmp_path / "parts"), "zip", write_tiny_dataset(tmp_path / "t")
    )
    record, _snap, _ = service.import_upload(
        db, settings, permissions.SYSTEM, Path(archive).read_bytes(), "line3 parts.zip", "uploaded"
    )
    assert record.source == "upload: line3 parts.zip"
    assert not list(settings.home.glob("*.zip"))  # the temp copy of the upload is gone
