"""Timeline markers and frozen baselines on SQLite and PostgreSQL: annotations by line, model
promotions from the audit trail (text entity ids joined to model ids), rule versions, and the
baseline in force for exactly one view (NULL scope columns meaning "any")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from db.engine import Database
from db.models import AuditEntry, FlagRule, Model
from db.queries import baselines, timeline
from db.queries.trends import TrendFilter

T0 = datetime(2026, 11, 1, 6, tzinfo=UTC)


def test_annotations_models_and_rules_in_a_period(database: Database) -> None:
    with database.write() as s:
        s.add(Model(name="casting-v2", architecture="defectnet", class_names=["ok", "def"],
                    artifact_path="x", artifact_sha256="0" * 64))  # fmt: skip
        s.flush()
        s.add_all([
            AuditEntry(at=T0 + timedelta(hours=1), action="model_promoted", entity="model",
                       entity_id="1"),
            AuditEntry(at=T0 + timedelta(hours=2), action="user_created", entity="user",
                       entity_id="alice"),  # a text id must not break the join on PostgreSQL
            AuditEntry(at=T0 + timedelta(days=3), action="model_rolled_back", entity="model",
                       entity_id="1"),
            FlagRule(product="pump", version=2, good_classes=["ok"], min_confidence=0.8,
                     created_at=T0 + timedelta(hours=3)),
            FlagRule(product="valve", version=1, good_classes=["ok"], min_confidence=0.9,
                     created_at=T0 + timedelta(hours=4)),
        ])  # fmt: skip
        a1 = timeline.add_annotation(s, at=T0, line="L1", text="new supplier lot", created_by=None)
        timeline.add_annotation(s, at=T0 + timedelta(hours=5), line=None, text="tool change",
                                created_by=None)  # fmt: skip
        timeline.add_annotation(s, at=T0, line="L2", text="cleaned lens", created_by=None)
    end = T0 + timedelta(days=1)
    with database.read() as s:
        l1 = timeline.annotations_between(s, T0, end, "L1")
        everything = timeline.annotations_between(s, T0, end)
        models = timeline.model_changes(s, T0, end)
        pump_rules = timeline.rule_changes(s, T0, end, "pump")
        all_rules = timeline.rule_changes(s, T0, end)
        got = timeline.get_annotation(s, a1)
    assert [a.text for a in l1] == ["new supplier lot", "tool change"]
    assert len(everything) == 3
    assert [m.label for m in models] == ["Model promoted: casting-v2 (#1)"]  # rollback is later
    assert [r.label for r in pump_rules] == ["Flagging rule v2 for pump: unsure below 80%"]
    assert len(all_rules) == 2
    assert got is not None and got.line == "L1"
    with database.write() as s:
        assert timeline.delete_annotation(s, a1) and not timeline.delete_annotation(s, a1)


def _baseline(where: TrendFilter, bucket: str, centre: float) -> dict[str, object]:
    return {
        "line": where.line, "station": where.station, "product": where.product,
        "model_id": where.model_id, "shift": where.shift, "bucket": bucket,
        "window_start": T0, "window_end": T0 + timedelta(days=20), "excluded": [],
        "chart": "p", "centre": centre, "sigma_z": 1.0, "buckets": 20, "parts": 2000,
        "defects": 100, "note": "", "created_by": None, "created_at": T0,
    }  # fmt: skip


def test_the_baseline_in_force_matches_the_view_exactly(database: Database) -> None:
    plant, l1 = TrendFilter(), TrendFilter(line="L1")
    with database.write() as s:
        b_plant = baselines.add_baseline(s, _baseline(plant, "day", 0.05))
        baselines.add_baseline(s, _baseline(l1, "day", 0.07))
        baselines.add_baseline(s, _baseline(l1, "shift", 0.08))
    with database.read() as s:
        got_plant = baselines.active_baseline(s, plant, "day")
        got_l1 = baselines.active_baseline(s, l1, "day")
        none = baselines.active_baseline(s, TrendFilter(line="L2"), "day")
    assert got_plant is not None and got_plant.centre == 0.05 and got_plant.where == plant
    assert got_l1 is not None and got_l1.centre == 0.07
    assert none is None
    with database.write() as s:
        assert baselines.retire(s, b_plant, None, T0 + timedelta(days=30))
        assert not baselines.retire(s, b_plant, None, T0 + timedelta(days=31))
    with database.read() as s:
        assert baselines.active_baseline(s, plant, "day") is None
        (old,) = baselines.history(s, plant, "day")
    assert old.retired_at == T0 + timedelta(days=30)
