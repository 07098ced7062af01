"""The Trends page's engineer panels: freeze or withdraw control limits, add and remove
process annotations. Viewers see what is in force and the history, read-only."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

import pandas as pd
import streamlit as st

from core.auth.permissions import Action, CurrentUser, can
from core.config import Settings
from core.errors import DefectLensError
from core.quality import baselines, timeline
from core.quality.trends import TrendReport
from db.engine import Database
from pages._ui import literal


def limits_panel(
    db: Database, settings: Settings, user: CurrentUser, report: TrendReport, tz: ZoneInfo
) -> None:
    """Which limits are drawn; engineers freeze the displayed period's or withdraw them."""
    with st.expander("Control limits: baseline (phase I)"):
        history = baselines.baseline_history(db, user, report.where, report.by)
        if history:
            st.dataframe(
                pd.DataFrame(
                    {
                        "frozen": f"{b.created_at.astimezone(tz):%Y-%m-%d %H:%M}",
                        "by": b.created_by,
                        "window": f"{b.window_start.astimezone(tz):%Y-%m-%d}"
                        f" to {b.window_end.astimezone(tz):%Y-%m-%d}",
                        "chart": b.chart,
                        "p̄": b.centre,
                        "σ_z": b.sigma_z,
                        "left out": len(b.excluded),
                        "in force": b.retired_at is None,
                        "note": b.note,
                    }
                    for b in history
                ),  # fmt: skip
                hide_index=True,
                width="stretch",
            )
        else:
            st.caption("No limits frozen for this view and bucket: the displayed period is the "
                       "baseline, so limits move as the period does.")  # fmt: skip
        if not can(user, Action.FREEZE_SPC_BASELINE):
            return
        starts = {f"{b.start:%Y-%m-%d %H:%M}": b.start for b in report.buckets}
        with st.form("freeze_baseline"):
            st.write("Freeze the limits of the displayed period for this view.")
            left_out = st.multiselect("Leave out (special causes)", list(starts))
            reason = st.text_input("Why they are left out")
            note = st.text_input("Note", placeholder="e.g. phase I after the die change")
            if st.form_submit_button("Freeze limits", type="primary"):
                try:
                    baselines.freeze_baseline(
                        db, settings, user, report.where, report.by,
                        (report.since, report.until), {starts[s]: reason for s in left_out},
                        note,
                    )  # fmt: skip
                except DefectLensError as e:
                    st.error(literal(e))
                else:
                    st.rerun()
        if report.baseline is not None:
            why = st.text_input("Why withdraw the limits in force", key="withdraw_reason")
            if st.button("Withdraw limits"):
                try:
                    baselines.withdraw_baseline(db, user, report.baseline.id, why)
                except DefectLensError as e:
                    st.error(literal(e))
                else:
                    st.rerun()


def annotations_panel(
    db: Database,
    user: CurrentUser,
    tz: ZoneInfo,
    since: datetime,
    until: datetime,
    line: str | None,
) -> None:
    """The period's annotations; engineers add one or remove one."""
    notes = timeline.annotations_between(db, user, since, until, line)
    with st.expander(f"Process annotations ({len(notes)})"):
        for a in notes:
            c1, c2 = st.columns([5, 1])
            c1.write(f"{a.at.astimezone(tz):%Y-%m-%d %H:%M} · {literal(a.line or 'all lines')} · "
                     f"{literal(a.created_by or 'system')}")  # fmt: skip
            c1.text(a.text)  # as typed: never markdown or HTML
            if can(user, Action.ANNOTATE_TRENDS) and c2.button("Remove", key=f"del_note_{a.id}"):
                timeline.delete_annotation(db, user, a.id)
                st.rerun()
        if not can(user, Action.ANNOTATE_TRENDS):
            return
        with st.form("add_annotation", clear_on_submit=True):
            c1, c2, c3 = st.columns(3)
            day = c1.date_input("Day", value=datetime.now(tz).date())
            at = c2.time_input("Time", value=time(6, 0))
            where = c3.text_input("Line (empty: all lines)", value=line or "")
            text = st.text_input("What changed", max_chars=timeline.MAX_TEXT_LENGTH)
            if st.form_submit_button("Add annotation"):
                try:
                    timeline.add_annotation(db, user, datetime.combine(day, at, tz), text,
                                            line=where.strip() or None)  # fmt: skip
                except DefectLensError as e:
                    st.error(literal(e))
                else:
                    st.rerun()
