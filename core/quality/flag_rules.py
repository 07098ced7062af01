"""Flagging rules per product: which classes are good and how sure the model must be.

Rules are versioned: a change adds a row and never updates one, so every inspection can point
at the exact rule it was judged by. The threshold helper replays the model's validation split at
many thresholds, so an engineer can choose one by the cost of false alarms versus escapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy.exc import IntegrityError

from core.auth.audit import record_audit
from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.datasets import service
from core.errors import Conflict, DatasetError, ValidationError
from core.registry.compare import load_classifier
from core.vision.acceptance import looks_good
from db.engine import Database
from db.queries import catalog as catalog_queries
from db.queries import flag_rules as rule_queries
from db.queries.catalog import ModelRecord
from db.queries.flag_rules import FlagRuleRecord

if TYPE_CHECKING:
    from core.vision.classifier import Classifier

DEFAULT_PRODUCT = "*"
DEFAULT_MIN_CONFIDENCE = 0.9
MAX_NAME_LENGTH = 100
# The audit action of a rule change. Kept from when rules were called thresholds: existing
# audit trails are filtered by it, and an audit entry is never rewritten.
AUDIT_ACTION = "threshold_changed"
AUDIT_ENTITY = "threshold"


@dataclass(frozen=True)
class Judgement:
    """What a rule says about one prediction: a defect class?, flagged for review?, and why."""

    is_defect: bool
    flagged: bool
    reason: str | None


@dataclass(frozen=True)
class ThresholdPoint:
    """What one confidence threshold would do on the validation split.

    flagged_share: share of all parts flagged; slipped_defects: true defects predicted good with
    confidence >= threshold (they pass unseen); slipped_share: those as a share of all true
    defects; false_alarms: good parts that would be flagged.
    """

    threshold: float
    flagged_share: float
    slipped_defects: int
    slipped_share: float
    false_alarms: int


def default_good_classes(class_names: Sequence[str]) -> list[str]:
    """The classes of a model that the built-in rule treats as good."""
    return [c for c in class_names if looks_good(c)]


def _normalise_product(product: str | None) -> str:
    text = (product or "").strip()
    return text or DEFAULT_PRODUCT


def fallback_rule(class_names: Sequence[str]) -> FlagRuleRecord:
    """The built-in rule used before an engineer sets one: good-looking names, 90 % confidence."""
    return FlagRuleRecord(
        id=None,
        product=DEFAULT_PRODUCT,
        version=0,
        good_classes=default_good_classes(class_names),
        min_confidence=DEFAULT_MIN_CONFIDENCE,
        created_at=None,
        created_by=None,
    )


def active_rule(
    db: Database,
    actor: CurrentUser,
    product: str | None,
    *,
    class_names: Sequence[str] | None = None,
) -> FlagRuleRecord:
    """The product's newest rule, else the "*" rule, else the built-in fallback (reviewers and
    up: INSPECT, as ingest, which passes its own actor; the Flagging rules page passes its user).

    The fallback's good classes come from class_names, or from the active model when not given.
    """
    require(actor, Action.INSPECT)
    name = _normalise_product(product)
    with db.read() as session:
        rule = rule_queries.newest_rule(session, name)
        if rule is None and name != DEFAULT_PRODUCT:
            rule = rule_queries.newest_rule(session, DEFAULT_PRODUCT)
        if rule is not None:
            return rule
        if class_names is None:
            model = catalog_queries.active_model(session)
            class_names = [] if model is None else model.class_names
    return fallback_rule(class_names)


def _checked_classes(good_classes: Sequence[str]) -> list[str]:
    classes: list[str] = []
    for c in good_classes:
        text = str(c).strip()
        if not text or len(text) > MAX_NAME_LENGTH:
            raise ValidationError(f"class name {c!r} must be 1 to {MAX_NAME_LENGTH} characters")
        if text not in classes:
            classes.append(text)
    if not classes:
        raise ValidationError("name at least one good class")
    return classes


def _checked_confidence(min_confidence: float) -> float:
    try:
        confidence = float(min_confidence)
    except (TypeError, ValueError):
        raise ValidationError(f"minimum confidence {min_confidence!r} is not a number") from None
    if not 0.0 < confidence <= 1.0:
        raise ValidationError(
            f"minimum confidence {confidence} must be above 0 and at most 1 (e.g. 0.9 for 90 %)"
        )
    return confidence


def set_rule(
    db: Database,
    actor: CurrentUser,
    product: str,
    good_classes: Sequence[str],
    min_confidence: float,
) -> FlagRuleRecord:
    """Add a new version of a product's rule ("*" for every product without its own); audited."""
    require(actor, Action.EDIT_FLAG_RULES)
    name = _normalise_product(product)
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError(f"product name must be at most {MAX_NAME_LENGTH} characters")
    classes = _checked_classes(good_classes)
    confidence = _checked_confidence(min_confidence)
    try:
        with db.write() as session:
            previous = rule_queries.newest_rule(session, name)
            rule = rule_queries.add_rule(
                session,
                product=name,
                version=1 if previous is None else previous.version + 1,
                good_classes=classes,
                min_confidence=confidence,
                created_by=actor.id,
                username=actor.username,
            )
            record_audit(
                session,
                actor,
                action=AUDIT_ACTION,
                entity=AUDIT_ENTITY,
                entity_id=rule.id,
                details={
                    "product": name,
                    "version": rule.version,
                    "good_classes": classes,
                    "min_confidence": confidence,
                    "previous": None
                    if previous is None
                    else {
                        "version": previous.version,
                        "good_classes": previous.good_classes,
                        "min_confidence": previous.min_confidence,
                    },
                },
            )
            return rule
    except IntegrityError:
        # Two engineers saved the same product at once (PostgreSQL; SQLite serialises writers).
        raise Conflict(
            f"the rule for {name} was changed by someone else just now; reload and try again"
        ) from None


def rule_history(db: Database, actor: CurrentUser, product: str) -> list[FlagRuleRecord]:
    """Every version of a product's rule, newest first (engineers and up)."""
    require(actor, Action.EDIT_FLAG_RULES)
    with db.read() as session:
        return rule_queries.rule_versions(session, _normalise_product(product))


def list_products(db: Database, actor: CurrentUser) -> list[str]:
    """Every product that has a rule of its own ("*" first when set; engineers and up)."""
    require(actor, Action.EDIT_FLAG_RULES)
    with db.read() as session:
        names = rule_queries.rule_products(session)
    return sorted(names, key=lambda n: (n != DEFAULT_PRODUCT, n.lower()))


def _percent(value: float) -> str:
    return f"{value:.0%}"


def judge(
    rule: FlagRuleRecord,
    class_name: str,
    confidence: float,
    *,
    held_back: float | None = None,
    acceptance: float | None = None,
) -> Judgement:
    """Flagged for a defect class or a confidence below the rule's, with the reason.

    ``held_back`` is P(good) of a good call the model's acceptance threshold (``acceptance``)
    turned into a defect call (core.vision.acceptance): always flagged, and the reason says so
    instead of quoting the defect class's own low confidence as "unsure".
    """
    is_defect = class_name not in rule.good_classes
    unsure = confidence < rule.min_confidence
    reasons: list[str] = []
    if is_defect:
        reasons.append(f"defect: {class_name}")
    if held_back is not None:
        limit = "its threshold" if acceptance is None else f"{acceptance:.1%}"
        reasons.append(f"not sure enough it is good: P(good) {held_back:.1%} < {limit}")
    elif unsure:
        shown, limit = _percent(confidence), _percent(rule.min_confidence)
        if shown == limit:  # 89.6 % would read "90% < 90%"
            shown, limit = f"{confidence:.1%}", f"{rule.min_confidence:.1%}"
        reasons.append(f"unsure: {shown} < {limit}")
    return Judgement(
        is_defect=is_defect,
        flagged=is_defect or unsure or held_back is not None,
        reason="; ".join(reasons) if reasons else None,
    )


DEFAULT_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.01 * i, 2) for i in range(50))


def curve_from_predictions(
    true_classes: Sequence[str],
    predicted_classes: Sequence[str],
    confidences: Sequence[float],
    good_classes: Sequence[str],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
) -> list[ThresholdPoint]:
    """The threshold curve from already classified, labelled parts."""
    n = len(true_classes)
    if n == 0:
        return []
    good = set(good_classes)
    true_defect = np.array([c not in good for c in true_classes])
    pred_defect = np.array([c not in good for c in predicted_classes])
    conf = np.asarray(confidences, dtype=np.float64)
    defects = int(true_defect.sum())
    points: list[ThresholdPoint] = []
    for t in sorted(float(x) for x in thresholds):
        flagged = pred_defect | (conf < t)
        slipped = int((true_defect & ~flagged).sum())
        points.append(
            ThresholdPoint(
                threshold=t,
                flagged_share=float(flagged.mean()),
                slipped_defects=slipped,
                slipped_share=slipped / defects if defects else 0.0,
                false_alarms=int((~true_defect & flagged).sum()),
            )
        )
    return points


def threshold_curve(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    model: ModelRecord,
    good_classes: Sequence[str],
    thresholds: Sequence[float] | None = None,
    *,
    classifier: Classifier | None = None,
) -> list[ThresholdPoint]:
    """Flagged share and escaped defects at each threshold, on the model's validation split.

    Uses the split the model was validated on ("val", or "test" for datasets imported with a
    published train/test split). Classifies once; pages should cache the result. Engineers and
    up (EDIT_FLAG_RULES, as the Flagging rules page).
    """
    require(actor, Action.EDIT_FLAG_RULES)
    from core.vision.classifier import Prediction  # deferred: imports torch

    if model.dataset_id is None:
        raise DatasetError(f"model {model.id} has no dataset recorded; no validation data")
    _record, snap = service.load_dataset(db, actor, model.dataset_id)
    entries = snap.split_entries("val") or snap.split_entries("test")
    entries = [e for e in entries if e.cls in model.class_names]
    if not entries:
        raise DatasetError(f"dataset {model.dataset_id} has no validation images for this model")
    clf = classifier or load_classifier(settings, model)
    truths: list[str] = []
    predicted: list[str] = []
    confidences: list[float] = []
    for start in range(0, len(entries), 256):
        chunk = entries[start : start + 256]
        results = clf.predict_bytes(
            [(snap.path / e.file).read_bytes() for e in chunk], [e.file for e in chunk]
        )
        for entry, res in zip(chunk, results, strict=True):
            if isinstance(res, Prediction):
                truths.append(entry.cls)
                predicted.append(res.class_name)
                confidences.append(res.confidence)
    return curve_from_predictions(
        truths, predicted, confidences, good_classes, thresholds or DEFAULT_THRESHOLDS
    )
