"""Flagging rules per product: which classes are good and how sure the model must be.

Rules are versioned: a change adds a row and never updates one, so every inspection can point
at the exact rule it was judged by. The threshold helper replays the model's validation split at
many thresholds, so an engineer can choose one by the cost of false alarms versus escapes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from core.auth.audit import record_audit
from core.auth.permissions import Action, CurrentUser, require
from core.errors import Conflict, DatasetError, ValidationError
from db.engine import Database
from db.models import Model, ModelStatus, Threshold

if TYPE_CHECKING:
    from core.config import Settings
    from core.registry.catalog import ModelRecord
    from core.vision.classifier import Classifier

DEFAULT_PRODUCT = "*"
DEFAULT_MIN_CONFIDENCE = 0.9
MAX_NAME_LENGTH = 100

# Class names that mean "no defect" in the datasets people bring (ok, ok_front, good, pass, ...).
_GOOD_WORDS = frozenset({"ok", "okay", "good", "pass", "passed", "normal", "nominal"})
_NEGATIONS = frozenset({"not", "no", "non", "un"})
_GOOD_PHRASES = frozenset({"no_defect", "no_defects", "nodefect", "defect_free", "non_defective"})


@dataclass(frozen=True)
class FlagRule:
    """One version of a product's flagging rule (id None: the built-in fallback)."""

    id: int | None
    product: str
    version: int
    good_classes: list[str]
    min_confidence: float
    created_at: datetime | None
    created_by: str | None


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


def looks_good(class_name: str) -> bool:
    """Whether a class name reads as "no defect" (ok, ok_front, good, pass, normal, no_defect)."""
    norm = re.sub(r"[^a-z0-9]+", "_", class_name.lower()).strip("_")
    if norm in _GOOD_PHRASES:
        return True
    tokens = set(norm.split("_"))
    return bool(tokens & _GOOD_WORDS) and not tokens & _NEGATIONS


def default_good_classes(class_names: Sequence[str]) -> list[str]:
    """The classes of a model that the built-in rule treats as good."""
    return [c for c in class_names if looks_good(c)]


def _normalise_product(product: str | None) -> str:
    text = (product or "").strip()
    return text or DEFAULT_PRODUCT


def _rule(row: Threshold, username: str | None) -> FlagRule:
    return FlagRule(
        id=row.id,
        product=row.product,
        version=row.version,
        good_classes=[str(c) for c in row.good_classes],
        min_confidence=float(row.min_confidence),
        created_at=row.created_at,
        created_by=username,
    )


def _newest(db: Database, product: str) -> FlagRule | None:
    from db.models import User

    with db.read() as session:
        row = session.execute(
            select(Threshold, User.username)
            .outerjoin(User, User.id == Threshold.created_by)
            .where(Threshold.product == product)
            .order_by(Threshold.version.desc())
            .limit(1)
        ).first()
        return None if row is None else _rule(row[0], row[1])


def fallback_rule(class_names: Sequence[str]) -> FlagRule:
    """The built-in rule used before an engineer sets one: good-looking names, 90 % confidence."""
    return FlagRule(
        id=None,
        product=DEFAULT_PRODUCT,
        version=0,
        good_classes=default_good_classes(class_names),
        min_confidence=DEFAULT_MIN_CONFIDENCE,
        created_at=None,
        created_by=None,
    )


def active_rule(
    db: Database, product: str | None, *, class_names: Sequence[str] | None = None
) -> FlagRule:
    """The product's newest rule, else the "*" rule, else the built-in fallback.

    The fallback's good classes come from class_names, or from the active model when not given.
    """
    name = _normalise_product(product)
    rule = _newest(db, name)
    if rule is None and name != DEFAULT_PRODUCT:
        rule = _newest(db, DEFAULT_PRODUCT)
    if rule is not None:
        return rule
    if class_names is None:
        with db.read() as session:
            model = session.scalar(select(Model).where(Model.status == ModelStatus.ACTIVE.value))
            class_names = [] if model is None else [str(c) for c in model.class_names]
    return fallback_rule(class_names)


def set_rule(
    db: Database,
    actor: CurrentUser,
    product: str,
    good_classes: Sequence[str],
    min_confidence: float,
) -> FlagRule:
    """Add a new version of a product's rule ("*" for every product without its own); audited."""
    require(actor, Action.EDIT_THRESHOLDS)
    name = _normalise_product(product)
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError(f"product name must be at most {MAX_NAME_LENGTH} characters")
    classes: list[str] = []
    for c in good_classes:
        text = str(c).strip()
        if not text or len(text) > MAX_NAME_LENGTH:
            raise ValidationError(f"class name {c!r} must be 1 to {MAX_NAME_LENGTH} characters")
        if text not in classes:
            classes.append(text)
    if not classes:
        raise ValidationError("name at least one good class")
    try:
        confidence = float(min_confidence)
    except (TypeError, ValueError):
        raise ValidationError(f"minimum confidence {min_confidence!r} is not a number") from None
    if not 0.0 < confidence <= 1.0:
        raise ValidationError(
            f"minimum confidence {confidence} must be above 0 and at most 1 (e.g. 0.9 for 90 %)"
        )
    try:
        with db.write() as session:
            previous = session.scalar(
                select(Threshold)
                .where(Threshold.product == name)
                .order_by(Threshold.version.desc())
                .limit(1)
            )
            version = 1 if previous is None else previous.version + 1
            row = Threshold(
                product=name,
                version=version,
                good_classes=classes,
                min_confidence=confidence,
                created_by=actor.id,
            )
            session.add(row)
            session.flush()
            record_audit(
                session,
                actor,
                action="threshold_changed",
                entity="threshold",
                entity_id=row.id,
                details={
                    "product": name,
                    "version": version,
                    "good_classes": classes,
                    "min_confidence": confidence,
                    "previous": None
                    if previous is None
                    else {
                        "version": previous.version,
                        "good_classes": list(previous.good_classes),
                        "min_confidence": previous.min_confidence,
                    },
                },
            )
            return _rule(row, actor.username)
    except IntegrityError:
        # Two engineers saved the same product at once (PostgreSQL; SQLite serialises writers).
        raise Conflict(
            f"the rule for {name} was changed by someone else just now; reload and try again"
        ) from None


def rule_history(db: Database, product: str) -> list[FlagRule]:
    """Every version of a product's rule, newest first."""
    from db.models import User

    name = _normalise_product(product)
    with db.read() as session:
        rows = session.execute(
            select(Threshold, User.username)
            .outerjoin(User, User.id == Threshold.created_by)
            .where(Threshold.product == name)
            .order_by(Threshold.version.desc())
        ).all()
        return [_rule(t, u) for t, u in rows]


def list_products(db: Database) -> list[str]:
    """Every product that has a rule of its own ("*" first when set)."""
    with db.read() as session:
        names = session.scalars(
            select(Threshold.product).group_by(Threshold.product).order_by(func.min(Threshold.id))
        ).all()
    return sorted(names, key=lambda n: (n != DEFAULT_PRODUCT, n.lower()))


def _percent(value: float) -> str:
    return f"{value:.0%}"


def judge(rule: FlagRule, class_name: str, confidence: float) -> tuple[bool, bool, str | None]:
    """(is_defect, flagged, reason): flagged for a defect class or confidence below the rule's."""
    is_defect = class_name not in rule.good_classes
    unsure = confidence < rule.min_confidence
    reasons: list[str] = []
    if is_defect:
        reasons.append(f"defect: {class_name}")
    if unsure:
        shown, limit = _percent(confidence), _percent(rule.min_confidence)
        if shown == limit:  # 89.6 % would read "90% < 90%"
            shown, limit = f"{confidence:.1%}", f"{rule.min_confidence:.1%}"
        reasons.append(f"unsure: {shown} < {limit}")
    flagged = is_defect or unsure
    return is_defect, flagged, "; ".join(reasons) if reasons else None


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
    model: ModelRecord,
    good_classes: Sequence[str],
    thresholds: Sequence[float] | None = None,
    *,
    classifier: Classifier | None = None,
) -> list[ThresholdPoint]:
    """Flagged share and escaped defects at each threshold, on the model's validation split.

    Uses the split the model was validated on ("val", or "test" for datasets imported with a
    published train/test split). Classifies once; pages should cache the result.
    """
    from core.datasets import service
    from core.registry.compare import load_classifier
    from core.vision.classifier import Prediction

    if model.dataset_id is None:
        raise DatasetError(f"model {model.id} has no dataset recorded; no validation data")
    _record, snap = service.load_dataset(db, model.dataset_id)
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
