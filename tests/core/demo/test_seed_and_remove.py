"""The demo end to end on a small plan: it seeds real predictions over the days on three lines
with a drift on Line 2, two promoted models, reviews from demo inspectors and annotations, all
marked demo; removal takes out exactly that (rows, files, rollup counts) and leaves a real
user, a real part and the audit trail as they were."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from core.auth import permissions
from core.config import Settings
from core.demo import remove, seed, status
from core.errors import PermissionDenied
from core.quality import rollup
from core.vision.artifacts import read_metadata
from db.engine import Database
from db.models import AuditEntry, Inspection, Model, Review, Role, SpcBaseline, User
from db.queries import rollups

pytestmark = pytest.mark.slow

TINY = seed.DemoPlan(days=20, parts_per_shift=4, per_class=14, img_size=32, epochs=2,
                     second_epochs=2, drift_defect_rate=0.5)  # fmt: skip


def test_the_demo_seeds_marked_data_and_is_removed_without_touching_real_data(
    db: Database, settings: Settings, make_user
) -> None:  # type: ignore[no-untyped-def]
    make_user("vic", Role.VIEWER)
    with db.write() as s:
        part = Inspection(captured_at=datetime(2026, 1, 5, 8, tzinfo=UTC), line="Real line",
                          product="pump", predicted_class="ok", confidence=0.99,
                          probabilities={}, is_defect=False, flagged=False)  # fmt: skip
        s.add(part)
        s.flush()
        rollups.apply(s, rollups.cells_of_parts(s, [part.id], rollup.FALLBACK))
        real_part = part.id

    made = seed.seed_demo(db, settings, TINY)

    assert made["datasets"] == 1 and made["models"] == 2 and made["users"] == 3
    assert made["baselines"] > 0  # the demo engineer's frozen phase I limits
    assert made["annotations"] == 3 and made["inspections"] > 200 and made["reviews"] > 0
    assert status.read(settings)["state"] == "ready"  # type: ignore[index]
    with db.read() as s:
        lines = {line for (line,) in s.query(Inspection.line).filter(Inspection.is_demo)}
        promoted = s.query(Model).filter(Model.is_demo, Model.promoted_at.isnot(None)).count()
        paths = [p for (p,) in s.query(Model.artifact_path).order_by(Model.id)]
    assert lines == {"Line 1", "Line 2", "Line 3"} and promoted == 2
    first, second = (read_metadata(Path(path))[0] for path in paths)
    # The mid-month model goes on from the first one's weights (a short run, not a new one).
    assert first.train_config["weights_path"] is None
    assert second.train_config["weights_path"] == str(Path(paths[0]).with_name(first.weights_file))
    assert second.train_config["epochs"] == TINY.second_epochs
    assert (settings.home / "demo").is_dir()

    done = remove.remove_demo(db, settings, permissions.SYSTEM)

    assert done.kept == {} and done.removed["inspections"] == made["inspections"]
    assert all(v == 0 for v in remove.demo_counts(db, permissions.SYSTEM).values())
    assert status.read(settings) is None and not (settings.home / "demo").exists()
    with db.read() as s:
        assert [i.id for i in s.query(Inspection)] == [real_part]
        assert s.query(Review).count() == 0
        assert {u.username for u in s.query(User)} == {"vic"}
        assert s.query(Model).count() == 0
        assert s.query(SpcBaseline).count() == 0
        assert "demo_removed" in {a.action for a in s.query(AuditEntry)}
        cells = {k: v.parts for k, v in rollups.all_cells(s).items() if v.parts}
    assert sum(cells.values()) == 1  # only the real part is still counted ...
    rollup.rebuild(db)
    with db.read() as s:  # ... exactly as a rebuild from the rows counts it
        assert cells == {k: v.parts for k, v in rollups.all_cells(s).items() if v.parts}
    assert not [p for p in settings.models_dir.rglob("*") if p.is_file()]
    assert not [p for p in settings.images_dir.rglob("*") if p.is_file()]


def test_removing_when_there_is_no_demo_does_nothing(db: Database, settings: Settings) -> None:
    done = remove.remove_demo(db, settings, permissions.SYSTEM)
    assert sum(done.removed.values()) == 0 and done.files == 0


def test_only_an_admin_removes_the_demo(db: Database, settings: Settings, make_user) -> None:  # type: ignore[no-untyped-def]
    engineer, _ = make_user("erin", Role.ENGINEER)
    with pytest.raises(PermissionDenied):
        remove.remove_demo(db, settings, engineer)
