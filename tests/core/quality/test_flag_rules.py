"""Flagging rules: versions, fallback, validation, audit, judge, and the threshold curve."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.auth import permissions
from core.config import Settings
from core.errors import PermissionDenied, ValidationError
from core.quality import flag_rules
from core.quality.flag_rules import Judgement, curve_from_predictions, judge
from db.engine import Database
from db.models import AuditEntry, FlagRule, Role
from db.queries.flag_rules import FlagRuleRecord
from tests.core.inspection_support import register_active_model


def _rule(good: list[str], minimum: float) -> FlagRuleRecord:
    return FlagRuleRecord(None, "*", 0, good, minimum, None, None)


@pytest.mark.parametrize(
    ("name", "good"),
    [
        ("ok", True),
        ("OK_front", True),
        ("good", True),
        ("Pass", True),
        ("normal", True),
        ("no_defect", True),
        ("No-Defect", True),
        ("def_front", False),
        ("scratch", False),
        ("not_ok", False),
        ("broken", False),
        ("bypass", False),
    ],
)
def test_good_class_names_are_recognised(name: str, good: bool) -> None:
    assert flag_rules.looks_good(name) is good


def test_judge_flags_defects_and_unsure_parts() -> None:
    rule = _rule(["ok"], 0.9)
    assert judge(rule, "ok", 0.95) == Judgement(False, False, None)
    assert judge(rule, "ok", 0.62) == Judgement(False, True, "unsure: 62% < 90%")
    assert judge(rule, "scratch", 0.99) == Judgement(True, True, "defect: scratch")
    assert judge(rule, "scratch", 0.5) == Judgement(
        True, True, "defect: scratch; unsure: 50% < 90%"
    )
    # Rounding never produces a reason that reads as if it should not have been flagged.
    assert judge(rule, "ok", 0.896) == Judgement(False, True, "unsure: 89.6% < 90.0%")
    assert judge(rule, "ok", 0.9) == Judgement(False, False, None)


def test_a_good_call_held_back_by_the_models_threshold_is_flagged_and_says_why() -> None:
    rule = _rule(["ok"], 0.9)
    # The model called "scratch" at 4 % because P(ok) = 93.1 % fell short of its 95.2 %.
    assert judge(rule, "scratch", 0.04, held_back=0.931, acceptance=0.952) == Judgement(
        True, True, "defect: scratch; not sure enough it is good: P(good) 93.1% < 95.2%"
    )
    # Flagged even under a rule that calls the named class good.
    lenient = _rule(["ok", "scratch"], 0.9)
    assert judge(lenient, "scratch", 0.04, held_back=0.931, acceptance=0.952) == Judgement(
        False, True, "not sure enough it is good: P(good) 93.1% < 95.2%"
    )


def test_fallback_rule_uses_the_active_models_good_classes(
    db: Database, settings: Settings
) -> None:
    rule = flag_rules.active_rule(db, permissions.SYSTEM, "pump")
    assert rule.id is None and rule.good_classes == [] and rule.min_confidence == 0.9
    register_active_model(db, settings, class_names=("def_front", "ok_front"))
    rule = flag_rules.active_rule(db, permissions.SYSTEM, "pump")
    assert rule.id is None and rule.good_classes == ["ok_front"]
    assert flag_rules.active_rule(
        db, permissions.SYSTEM, None, class_names=["good", "bad"]
    ).good_classes == ["good"]


def test_rules_are_versioned_per_product_and_audited(db: Database, make_user: Any) -> None:
    eng, _ = make_user("erin", Role.ENGINEER)
    star = flag_rules.set_rule(db, eng, "*", ["ok"], 0.8)
    v1 = flag_rules.set_rule(db, eng, " pump ", ["ok", "ok"], 0.9)
    v2 = flag_rules.set_rule(db, eng, "pump", ["ok", "minor"], 0.95)
    assert (star.version, v1.version, v2.version) == (1, 1, 2)
    assert v1.product == "pump" and v1.good_classes == ["ok"]
    assert v2.created_by == "erin" and v2.created_at is not None

    assert flag_rules.active_rule(db, permissions.SYSTEM, "pump") == v2
    assert flag_rules.active_rule(db, permissions.SYSTEM, "valve") == star  # no rule of its own
    assert flag_rules.active_rule(db, permissions.SYSTEM, None) == star
    assert flag_rules.rule_history(db, permissions.SYSTEM, "pump") == [v2, v1]
    assert flag_rules.list_products(db, permissions.SYSTEM) == ["*", "pump"]

    with db.read() as s:
        rows = s.scalars(select(FlagRule).order_by(FlagRule.id)).all()
        assert [(r.product, r.version) for r in rows] == [("*", 1), ("pump", 1), ("pump", 2)]
        audit = s.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "threshold_changed")
            .order_by(AuditEntry.id)
        ).all()
    assert len(audit) == 3
    assert audit[-1].username == "erin"
    assert audit[-1].details["product"] == "pump" and audit[-1].details["version"] == 2
    assert audit[-1].details["previous"]["min_confidence"] == 0.9


def test_set_rule_validates_and_needs_an_engineer(db: Database, make_user: Any) -> None:
    eng, _ = make_user("erin", Role.ENGINEER)
    rev, _ = make_user("rita", Role.REVIEWER)
    with pytest.raises(PermissionDenied):
        flag_rules.set_rule(db, rev, "*", ["ok"], 0.9)
    for bad in (0.0, -0.1, 1.01, float("nan")):
        with pytest.raises(ValidationError):
            flag_rules.set_rule(db, eng, "*", ["ok"], bad)
    with pytest.raises(ValidationError):
        flag_rules.set_rule(db, eng, "*", [], 0.9)
    with pytest.raises(ValidationError):
        flag_rules.set_rule(db, eng, "*", ["  "], 0.9)
    with pytest.raises(ValidationError):
        flag_rules.set_rule(db, eng, "p" * 101, ["ok"], 0.9)
    assert flag_rules.rule_history(db, permissions.SYSTEM, "*") == []
    ok = flag_rules.set_rule(db, eng, "", ["<b>ok</b>"], 1.0)  # blank product means "*"
    assert ok.product == "*" and ok.good_classes == ["<b>ok</b>"]  # stored verbatim


def test_curve_from_predictions_counts_and_is_monotonic() -> None:
    truth = ["ok", "ok", "ok", "scratch", "scratch", "pit"]
    pred = ["ok", "ok", "scratch", "ok", "scratch", "ok"]
    conf = [0.99, 0.7, 0.8, 0.6, 0.9, 0.95]
    points = curve_from_predictions(truth, pred, conf, ["ok"], [0.5, 0.65, 0.75, 0.96, 1.0])
    by_t = {p.threshold: p for p in points}
    # t=0.5: flagged = predicted defects only (index 2, 4); slipped = true defects predicted ok.
    assert by_t[0.5].flagged_share == pytest.approx(2 / 6)
    assert by_t[0.5].slipped_defects == 2 and by_t[0.5].slipped_share == pytest.approx(2 / 3)
    assert by_t[0.5].false_alarms == 1
    # t=0.65: the 0.6 "ok" on a true scratch is now unsure, so it no longer slips.
    assert by_t[0.65].slipped_defects == 1
    assert by_t[0.96].slipped_defects == 0 and by_t[0.96].false_alarms == 2
    assert by_t[1.0].flagged_share == 1.0
    for a, b in zip(points, points[1:], strict=False):
        assert a.threshold < b.threshold
        assert a.flagged_share <= b.flagged_share
        assert a.slipped_defects >= b.slipped_defects
        assert a.false_alarms <= b.false_alarms
    assert curve_from_predictions([], [], [], ["ok"]) == []


def test_threshold_curve_on_the_models_validation_split(
    db: Database, settings: Settings, tiny_dataset: Any
) -> None:
    model = register_active_model(db, settings, dataset_id=tiny_dataset.id)
    points = flag_rules.threshold_curve(db, settings, permissions.SYSTEM, model, ["ok"])
    assert [p.threshold for p in points] == sorted(flag_rules.DEFAULT_THRESHOLDS)
    for a, b in zip(points, points[1:], strict=False):
        assert a.flagged_share <= b.flagged_share
        assert a.slipped_defects >= b.slipped_defects
    assert points[-1].flagged_share > 0
    custom = flag_rules.threshold_curve(
        db, settings, permissions.SYSTEM, model, ["ok", "scratch"], [0.3, 0.99]
    )
    # With every class good, nothing is a true defect: nothing can slip.
    assert all(p.slipped_defects == 0 and p.slipped_share == 0 for p in custom)


def test_threshold_curve_uses_the_models_calibrated_confidences(
    db: Database, settings: Settings, tiny_dataset: Any
) -> None:
    model = register_active_model(db, settings, dataset_id=tiny_dataset.id)
    good = ["ok", "scratch"]  # only confidence flags a part
    raw = flag_rules.threshold_curve(db, settings, permissions.SYSTEM, model, good)
    # The same weights with a fitted T < 1: every top-class probability rises (it never falls
    # as T shrinks), so no threshold flags more parts and some flag fewer.
    meta_path = Path(model.artifact_path)
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps(dict(meta, temperature=0.1)))
    sharp = flag_rules.threshold_curve(db, settings, permissions.SYSTEM, model, good)
    assert all(s.flagged_share <= r.flagged_share for s, r in zip(sharp, raw, strict=True))
    assert sum(s.flagged_share for s in sharp) < sum(r.flagged_share for r in raw)
