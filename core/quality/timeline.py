"""Process annotations on the trend timeline ("new supplier lot", "tool change"): engineers add
and remove them (audited); they appear on every Trends chart and in the PDF report."""

from __future__ import annotations

from datetime import datetime

from core.auth.audit import record_audit
from core.auth.permissions import Action, CurrentUser, require
from core.errors import NotFound, ValidationError
from db.engine import Database
from db.models import utcnow
from db.queries import timeline as timeline_queries
from db.queries.timeline import AnnotationRecord

MAX_TEXT_LENGTH = 200
MAX_LINE_LENGTH = 100


def add_annotation(
    db: Database, actor: CurrentUser, at: datetime, text: str, line: str | None = None
) -> AnnotationRecord:
    """Note a process change at ``at`` (on one line, or the whole plant when line is None)."""
    require(actor, Action.ANNOTATE_TRENDS)
    text = text.strip()
    if not text:
        raise ValidationError("an annotation needs a text (what changed)")
    if len(text) > MAX_TEXT_LENGTH:
        raise ValidationError(f"an annotation must be at most {MAX_TEXT_LENGTH} characters")
    if line is not None and len(line) > MAX_LINE_LENGTH:
        raise ValidationError(f"line must be at most {MAX_LINE_LENGTH} characters")
    if at.tzinfo is None:
        raise ValidationError("the annotation's time must carry a time zone offset")
    if at > utcnow():
        raise ValidationError(f"{at.isoformat()} is in the future; annotate what has happened")
    with db.write() as session:
        annotation_id = timeline_queries.add_annotation(
            session, at=at, line=line, text=text, created_by=actor.id
        )
        record_audit(
            session, actor, action="annotation_added", entity="annotation",
            entity_id=annotation_id,
            details={"at": at.isoformat(), "line": line, "text": text},
        )  # fmt: skip
        record = timeline_queries.get_annotation(session, annotation_id)
        assert record is not None
        return record


def delete_annotation(db: Database, actor: CurrentUser, annotation_id: int) -> None:
    """Remove an annotation (audited, with what it said)."""
    require(actor, Action.ANNOTATE_TRENDS)
    with db.write() as session:
        record = timeline_queries.get_annotation(session, annotation_id)
        if record is None or not timeline_queries.delete_annotation(session, annotation_id):
            raise NotFound(f"no annotation {annotation_id}")
        record_audit(
            session, actor, action="annotation_deleted", entity="annotation",
            entity_id=annotation_id,
            details={"at": record.at.isoformat(), "line": record.line, "text": record.text},
        )  # fmt: skip


def annotations_between(
    db: Database, actor: CurrentUser, since: datetime, until: datetime, line: str | None = None
) -> list[AnnotationRecord]:
    """The annotations in [since, until) (a line's and the plant-wide ones), oldest first."""
    require(actor, Action.VIEW_TRENDS)
    with db.read() as session:
        return timeline_queries.annotations_between(session, since, until, line)
