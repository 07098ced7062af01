"""Frozen SPC baselines (phase I limits): an engineer picks the window and the points to leave
out, with a reason each; the centre line and σ_z they give are stored, audited, and used for
that view until someone freezes new limits or withdraws them. Limits never move silently: the
Trends page says which limits it draws and since when."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from core.auth.audit import record_audit
from core.auth.permissions import Action, CurrentUser, require
from core.config import Settings
from core.errors import NotFound, ValidationError
from core.quality import spc
from core.quality.buckets import checked_bucket
from core.quality.trends import checked_period, checked_shift, period_buckets
from db.engine import Database
from db.models import utcnow
from db.queries import baselines as baseline_queries
from db.queries import trends as trend_queries
from db.queries.baselines import BaselineRecord
from db.queries.trends import TrendFilter

# Phase I needs enough subgroups for σ_z and limits to mean anything (AIAG and Montgomery ask
# for 20 to 25; fewer than 10 is refused, the page recommends 20).
MIN_BASELINE_BUCKETS = 10
MAX_REASON_LENGTH = 200


def freeze_baseline(
    db: Database,
    settings: Settings,
    actor: CurrentUser,
    where: TrendFilter,
    by: str,
    window: tuple[datetime, datetime],
    excluded: Mapping[datetime, str] | None = None,
    note: str = "",
) -> BaselineRecord:
    """Freeze the limits of [window) for this view and bucket, leaving out the given bucket
    starts (each with its reason); the limits in force before are retired (audited)."""
    require(actor, Action.FREEZE_SPC_BASELINE)
    start, end = window
    checked_period(start, end)
    checked_shift(where, settings)
    checked_bucket(by)
    excluded = dict(excluded or {})
    _check_reasons(excluded, note)
    with db.write() as session:
        hours = trend_queries.hourly(session, start, end, where)
        buckets = period_buckets(hours, where, by, settings)
        starts = [b.start for b in buckets]
        missing = [t for t in excluded if t not in starts]
        if missing:
            raise ValidationError(
                f"cannot leave out {missing[0].isoformat()}: no {by} with parts starts then "
                "in the baseline window"
            )
        left_out = [i for i, b in enumerate(buckets) if b.start in excluded]
        kept = len(buckets) - len(left_out)
        if kept < MIN_BASELINE_BUCKETS:
            raise ValidationError(
                f"a baseline needs at least {MIN_BASELINE_BUCKETS} {by} buckets with parts "
                f"(20 or more is better); this window has {kept}"
            )
        defects, sizes = [b.defects for b in buckets], [b.parts for b in buckets]
        choice = spc.choose_chart(defects, sizes, excluded=left_out)
        centre = spc.centre_line(defects, sizes, excluded=left_out)
        sigma_z = 1.0
        if choice.chart == spc.LANEY_P_CHART:
            sigma_z = spc.laney_sigma_z(defects, sizes, excluded=left_out)
        previous = baseline_queries.active_baseline(session, where, by)
        now = utcnow()
        if previous is not None:
            baseline_queries.retire(session, previous.id, actor.id, now)
        kept_parts = sum(b.parts for i, b in enumerate(buckets) if i not in left_out)
        kept_defects = sum(b.defects for i, b in enumerate(buckets) if i not in left_out)
        baseline_id = baseline_queries.add_baseline(
            session,
            {
                "line": where.line, "station": where.station, "product": where.product,
                "model_id": where.model_id, "shift": where.shift, "bucket": by,
                "window_start": start, "window_end": end,
                "excluded": [{"start": t.astimezone(UTC).isoformat(), "reason": r}
                             for t, r in sorted(excluded.items())],
                "chart": choice.chart, "centre": centre, "sigma_z": sigma_z, "buckets": kept,
                "parts": kept_parts, "defects": kept_defects, "note": note,
                "created_by": actor.id, "created_at": now,
            },
        )  # fmt: skip
        record_audit(
            session, actor, action="spc_baseline_frozen", entity="spc_baseline",
            entity_id=baseline_id,
            details={"view": _view(where, by), "chart": choice.chart, "centre": centre,
                     "sigma_z": sigma_z, "window": [start.isoformat(), end.isoformat()],
                     "excluded": len(excluded), "replaces": None if previous is None
                     else previous.id, "reason": choice.reason},
        )  # fmt: skip
        record = baseline_queries.active_baseline(session, where, by)
        assert record is not None and record.id == baseline_id
        return record


def withdraw_baseline(db: Database, actor: CurrentUser, baseline_id: int, reason: str) -> None:
    """Take frozen limits out of force (the view goes back to its displayed period; audited)."""
    require(actor, Action.FREEZE_SPC_BASELINE)
    if not reason.strip():
        raise ValidationError("say why the limits are withdrawn")
    _check_reasons({}, reason)
    with db.write() as session:
        if not baseline_queries.retire(session, baseline_id, actor.id, utcnow()):
            raise NotFound(f"no baseline {baseline_id} in force")
        record_audit(
            session, actor, action="spc_baseline_withdrawn", entity="spc_baseline",
            entity_id=baseline_id, details={"reason": reason},
        )  # fmt: skip


def baseline_history(
    db: Database, actor: CurrentUser, where: TrendFilter, by: str
) -> list[BaselineRecord]:
    """Every set of limits ever frozen for this view and bucket, newest first."""
    require(actor, Action.VIEW_TRENDS)
    with db.read() as session:
        return baseline_queries.history(session, where, by)


def _check_reasons(excluded: Mapping[datetime, str], note: str) -> None:
    for t, reason in excluded.items():
        if t.tzinfo is None:
            raise ValidationError("excluded bucket starts must carry a time zone offset")
        if not reason.strip():
            raise ValidationError(f"say why {t.isoformat()} is left out of the baseline")
        if len(reason) > MAX_REASON_LENGTH:
            raise ValidationError(f"a reason must be at most {MAX_REASON_LENGTH} characters")
    if len(note) > 500:
        raise ValidationError("a note must be at most 500 characters")


def _view(where: TrendFilter, by: str) -> dict[str, object]:
    return {"line": where.line, "station": where.station, "product": where.product,
            "model_id": where.model_id, "shift": where.shift, "bucket": by}  # fmt: skip
