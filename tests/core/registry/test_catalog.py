"""core.registry.catalog: register, list and get datasets and models; promote and roll back.

The catalog only checks that a model's artifact exists, so most tests register a plain file as
the artifact and stay fast; loading real artifacts is tested in test_compare.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from core.auth import audit, permissions
from core.auth.permissions import CurrentUser
from core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from core.registry import catalog
from db.engine import Database
from db.models import ModelStatus, Role
from db.queries.catalog import DatasetRecord, ModelRecord


def _artifact(root: Path, name: str = "model") -> Path:
    """A file standing in for a model artifact (the catalog only checks that it exists)."""
    path = root / name / "model.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("{}")
    return path


def _register(
    db: Database,
    root: Path,
    name: str = "m",
    actor: CurrentUser = permissions.SYSTEM,
    dataset_id: int | None = None,
) -> ModelRecord:
    return catalog.register_model(
        db,
        actor,
        name=name,
        architecture="defectnet",
        class_names=["ok", "scratch"],
        input_spec={"img_size": 32, "in_channels": 1},
        artifact_path=_artifact(root, name),
        artifact_sha256="ab" * 32,
        metrics={"accuracy": 0.5},
        dataset_id=dataset_id,
    )


def _register_dataset(
    db: Database, root: Path, content_hash: str, name: str = "d", actor: CurrentUser | None = None
) -> tuple[DatasetRecord, bool]:
    return catalog.register_dataset(
        db,
        actor or permissions.SYSTEM,
        name=name,
        source=str(root / "src"),
        class_names=["ok", "scratch"],
        counts={"ok": 3, "scratch": 2},
        manifest_path=root / content_hash[:8] / "manifest.json",
        content_hash=content_hash,
        health={"warnings": []},
    )


def _statuses(db: Database) -> dict[int, ModelStatus]:
    return {m.id: m.status for m in catalog.list_models(db, permissions.SYSTEM)}


def _audit(db: Database, action: str) -> list[dict[str, object]]:
    return audit.audit_log(db, permissions.SYSTEM, action=action)


# --------------------------------------------------------------------------- datasets


def test_register_dataset_records_it_once_and_audits(tmp_path: Path, db: Database) -> None:
    record, created = catalog.register_dataset(
        db,
        permissions.SYSTEM,
        name="tiny",
        source="/data/tiny",
        class_names=["ok", "scratch"],
        counts={"ok": 3, "scratch": 2},
        manifest_path=tmp_path / "snap" / "manifest.json",
        content_hash="c" * 64,
        health={"warnings": []},
    )
    assert created
    assert (record.name, record.num_images, record.class_names) == ("tiny", 5, ["ok", "scratch"])
    assert record.snapshot_dir == tmp_path / "snap"
    again, created_again = _register_dataset(db, tmp_path, "c" * 64, name="other name")
    assert not created_again
    assert again == record  # the same content is the first record, name and all
    assert [d.id for d in catalog.list_datasets(db, permissions.SYSTEM)] == [record.id]
    (entry,) = _audit(db, "dataset_imported")
    assert (entry["user"], entry["entity"], entry["entity_id"]) == (
        "system",
        "dataset",
        str(record.id),
    )
    assert entry["details"] == {"name": "tiny", "images": 5, "classes": ["ok", "scratch"]}


def test_list_datasets_newest_first_and_get_by_id(tmp_path: Path, db: Database) -> None:
    first, _ = _register_dataset(db, tmp_path, "1" * 64, name="first")
    second, _ = _register_dataset(db, tmp_path, "2" * 64, name="second")
    assert [d.name for d in catalog.list_datasets(db, permissions.SYSTEM)] == ["second", "first"]
    assert catalog.get_dataset(db, permissions.SYSTEM, first.id) == first
    assert catalog.get_dataset(db, permissions.SYSTEM, second.id).name == "second"
    with pytest.raises(NotFound, match="no dataset with id 999"):
        catalog.get_dataset(db, permissions.SYSTEM, 999)


@pytest.mark.parametrize("role", [Role.VIEWER, Role.REVIEWER])
def test_below_engineer_may_not_register_a_dataset(
    tmp_path: Path, db: Database, make_user, role: Role
) -> None:  # type: ignore[no-untyped-def]
    user, _ = make_user("someone", role)
    with pytest.raises(PermissionDenied, match="manage datasets"):
        _register_dataset(db, tmp_path, "d" * 64, actor=user)
    assert catalog.list_datasets(db, permissions.SYSTEM) == []
    assert _audit(db, "dataset_imported") == []


# --------------------------------------------------------------------------- models


def test_register_model_is_a_candidate_and_audited(tmp_path: Path, db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    engineer, _ = make_user("eng", Role.ENGINEER)
    dataset, _ = _register_dataset(db, tmp_path, "e" * 64)
    model = _register(db, tmp_path, "net", actor=engineer, dataset_id=dataset.id)
    assert model.status == ModelStatus.CANDIDATE and model.promoted_at is None
    assert (model.name, model.class_names, model.dataset_id) == (
        "net",
        ["ok", "scratch"],
        dataset.id,
    )
    assert model.artifact_path == str(tmp_path / "net" / "model.json")
    assert catalog.get_model(db, permissions.SYSTEM, model.id) == model
    (entry,) = _audit(db, "model_registered")
    assert (entry["user"], entry["entity"], entry["entity_id"]) == ("eng", "model", str(model.id))
    assert entry["details"] == {"architecture": "defectnet", "dataset_id": dataset.id}


def test_model_without_artifact_is_not_registered(tmp_path: Path, db: Database) -> None:
    missing = tmp_path / "gone" / "model.json"
    with pytest.raises(ValidationError, match="artifact does not exist"):
        catalog.register_model(
            db,
            permissions.SYSTEM,
            name="ghost",
            architecture="defectnet",
            class_names=["ok", "scratch"],
            input_spec={},
            artifact_path=missing,
            artifact_sha256="0" * 64,
            metrics={},
            dataset_id=None,
        )
    assert catalog.list_models(db, permissions.SYSTEM) == []
    assert _audit(db, "model_registered") == []


def test_reviewer_may_not_register_a_model(tmp_path: Path, db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    reviewer, _ = make_user("rev", Role.REVIEWER)
    with pytest.raises(PermissionDenied, match="train"):
        _register(db, tmp_path, actor=reviewer)
    assert catalog.list_models(db, permissions.SYSTEM) == []


def test_list_models_newest_first(tmp_path: Path, db: Database) -> None:
    a, b, c = (_register(db, tmp_path, n) for n in ("a", "b", "c"))
    assert [m.id for m in catalog.list_models(db, permissions.SYSTEM)] == [c.id, b.id, a.id]


def test_get_model_by_id_string_and_active(tmp_path: Path, db: Database) -> None:
    a, b = _register(db, tmp_path, "a"), _register(db, tmp_path, "b")
    with pytest.raises(NotFound, match="no active model yet"):
        catalog.get_model(db, permissions.SYSTEM, "active")
    catalog.promote_model(db, permissions.SYSTEM, b.id)
    assert catalog.get_model(db, permissions.SYSTEM, "active").id == b.id
    assert catalog.get_model(db, permissions.SYSTEM, "  Active ").id == b.id
    assert catalog.get_model(db, permissions.SYSTEM, str(a.id)).id == a.id
    assert catalog.get_model(db, permissions.SYSTEM, a.id).name == "a"


@pytest.mark.parametrize("ref", ["latest", "1.5", ""])
def test_get_model_refuses_what_is_neither_id_nor_active(db: Database, ref: str) -> None:
    with pytest.raises(ValidationError, match="neither an id nor 'active'"):
        catalog.get_model(db, permissions.SYSTEM, ref)


def test_get_unknown_model_is_not_found(tmp_path: Path, db: Database) -> None:
    _register(db, tmp_path)
    with pytest.raises(NotFound, match="no model with id 42"):
        catalog.get_model(db, permissions.SYSTEM, 42)
    with pytest.raises(NotFound, match="no model with id 42"):
        catalog.get_model(db, permissions.SYSTEM, "42")


# --------------------------------------------------------------------------- promote


def test_promote_archives_the_previous_active_and_audits(
    tmp_path: Path, db: Database, make_user
) -> None:  # type: ignore[no-untyped-def]
    engineer, _ = make_user("eng", Role.ENGINEER)
    a, b, c = (_register(db, tmp_path, n) for n in ("a", "b", "c"))
    promoted = catalog.promote_model(db, engineer, a.id)
    assert promoted.status == ModelStatus.ACTIVE and promoted.promoted_at is not None
    catalog.promote_model(db, engineer, b.id)
    assert _statuses(db) == {
        a.id: ModelStatus.ARCHIVED,
        b.id: ModelStatus.ACTIVE,
        c.id: ModelStatus.CANDIDATE,
    }
    newest, oldest = _audit(db, "model_promoted")
    assert (newest["user"], newest["entity"], newest["entity_id"]) == ("eng", "model", str(b.id))
    assert newest["details"] == {"previous_active": [a.id]}
    assert (oldest["entity_id"], oldest["details"]) == (str(a.id), {"previous_active": []})


def test_promoting_the_active_model_is_a_conflict(tmp_path: Path, db: Database) -> None:
    a = _register(db, tmp_path, "a")
    catalog.promote_model(db, permissions.SYSTEM, a.id)
    before = catalog.get_model(db, permissions.SYSTEM, a.id)
    with pytest.raises(Conflict, match=f"model {a.id} is already active"):
        catalog.promote_model(db, permissions.SYSTEM, a.id)
    # Still active, same promotion time.
    assert catalog.get_model(db, permissions.SYSTEM, a.id) == before
    assert len(_audit(db, "model_promoted")) == 1


def test_promoting_an_unknown_model_keeps_the_active_one(tmp_path: Path, db: Database) -> None:
    a = _register(db, tmp_path, "a")
    catalog.promote_model(db, permissions.SYSTEM, a.id)
    with pytest.raises(NotFound, match="no model with id 77"):
        catalog.promote_model(db, permissions.SYSTEM, 77)
    assert catalog.get_model(db, permissions.SYSTEM, "active").id == a.id


@pytest.mark.parametrize("role", [Role.VIEWER, Role.REVIEWER])
def test_below_engineer_may_not_promote(
    tmp_path: Path, db: Database, make_user, role: Role
) -> None:  # type: ignore[no-untyped-def]
    user, _ = make_user("someone", role)
    a = _register(db, tmp_path, "a")
    with pytest.raises(PermissionDenied, match="manage models"):
        catalog.promote_model(db, user, a.id)
    assert catalog.get_model(db, permissions.SYSTEM, a.id).status == ModelStatus.CANDIDATE
    assert _audit(db, "model_promoted") == []


def test_admin_may_promote(tmp_path: Path, db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    admin, _ = make_user("boss", Role.ADMIN)
    a = _register(db, tmp_path, "a")
    assert catalog.promote_model(db, admin, a.id).status == ModelStatus.ACTIVE


# --------------------------------------------------------------------------- roll back


def test_rollback_restores_the_newest_archived(tmp_path: Path, db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    engineer, _ = make_user("eng", Role.ENGINEER)
    a, b, c = (_register(db, tmp_path, n) for n in ("a", "b", "c"))
    for model in (a, b, c):
        catalog.promote_model(db, engineer, model.id)
    restored = catalog.rollback_model(db, engineer)
    assert restored.id == b.id and restored.status == ModelStatus.ACTIVE
    # The model rolled back from is a candidate again, not archived: a second rollback goes
    # further back (to a), not back to c.
    assert _statuses(db) == {
        a.id: ModelStatus.ARCHIVED,
        b.id: ModelStatus.ACTIVE,
        c.id: ModelStatus.CANDIDATE,
    }
    assert catalog.rollback_model(db, engineer).id == a.id
    assert catalog.get_model(db, permissions.SYSTEM, "active").id == a.id
    newest, oldest = _audit(db, "model_rolled_back")
    assert (oldest["user"], oldest["entity"], oldest["entity_id"]) == ("eng", "model", str(b.id))
    assert oldest["details"] == {"from": c.id, "to": b.id}
    assert newest["details"] == {"from": b.id, "to": a.id}


def test_rollback_follows_promotion_time_not_id(tmp_path: Path, db: Database) -> None:
    a, b, c = (_register(db, tmp_path, n) for n in ("a", "b", "c"))
    # Active in turn: c, a, then b. Of the two archived (a and c), a was active last, so a
    # rollback gives a back, although c has the higher id.
    for model in (c, a, b):
        catalog.promote_model(db, permissions.SYSTEM, model.id)
    assert catalog.rollback_model(db, permissions.SYSTEM).id == a.id
    assert _statuses(db) == {
        a.id: ModelStatus.ACTIVE,
        b.id: ModelStatus.CANDIDATE,
        c.id: ModelStatus.ARCHIVED,
    }


def test_an_archived_model_can_be_promoted_again(tmp_path: Path, db: Database) -> None:
    a, b = _register(db, tmp_path, "a"), _register(db, tmp_path, "b")
    catalog.promote_model(db, permissions.SYSTEM, a.id)
    catalog.promote_model(db, permissions.SYSTEM, b.id)
    assert catalog.promote_model(db, permissions.SYSTEM, a.id).status == ModelStatus.ACTIVE
    assert _statuses(db) == {a.id: ModelStatus.ACTIVE, b.id: ModelStatus.ARCHIVED}
    assert catalog.rollback_model(db, permissions.SYSTEM).id == b.id


def test_rollback_with_nothing_to_roll_back_to_is_a_clear_conflict(
    tmp_path: Path, db: Database
) -> None:
    with pytest.raises(Conflict, match="no earlier active model to roll back to"):
        catalog.rollback_model(db, permissions.SYSTEM)
    a = _register(db, tmp_path, "a")
    catalog.promote_model(db, permissions.SYSTEM, a.id)
    with pytest.raises(Conflict, match="no earlier active model to roll back to"):
        catalog.rollback_model(db, permissions.SYSTEM)
    # The failed rollback changed nothing.
    assert catalog.get_model(db, permissions.SYSTEM, "active").id == a.id
    assert _audit(db, "model_rolled_back") == []


def test_reviewer_may_not_roll_back(tmp_path: Path, db: Database, make_user) -> None:  # type: ignore[no-untyped-def]
    reviewer, _ = make_user("rev", Role.REVIEWER)
    a, b = _register(db, tmp_path, "a"), _register(db, tmp_path, "b")
    catalog.promote_model(db, permissions.SYSTEM, a.id)
    catalog.promote_model(db, permissions.SYSTEM, b.id)
    with pytest.raises(PermissionDenied, match="manage models"):
        catalog.rollback_model(db, reviewer)
    assert catalog.get_model(db, permissions.SYSTEM, "active").id == b.id
    assert _audit(db, "model_rolled_back") == []
