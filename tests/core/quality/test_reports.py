"""The CSV report: every filtered part with its review, plant-local ISO times with offsets, and
cells a spreadsheet would run as formulas neutralised."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import UTC, datetime, timedelta

import pytest

from core.auth import permissions
from core.auth.permissions import CurrentUser
from core.config import Settings
from core.quality import reports, review
from db.engine import Database
from db.models import Inspection, Role, User
from db.queries.trends import TrendFilter

T0 = datetime(2026, 11, 1, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("cell", "safe"),
    [("=1+1", "'=1+1"), ("+SUM(A1)", "'+SUM(A1)"), ("-2", "'-2"), ("@cmd", "'@cmd"),
     ("\tx", "'\tx"), ("\rx", "'\rx"), ("ok", "ok"), (-2.5, -2.5), (None, None)],
)  # fmt: skip
def test_formula_cells_are_neutralised_and_numbers_kept(cell: object, safe: object) -> None:
    assert reports.neutralise(cell) == safe


def test_csv_has_every_filtered_part_with_its_review(db: Database, settings: Settings) -> None:
    s = dataclasses.replace(settings, timezone="Europe/Berlin")
    with db.write() as session:
        user = User(username="rita", password_hash="x", role="reviewer")
        session.add(user)
        parts = [
            Inspection(captured_at=T0 + timedelta(minutes=i), line="L1" if i < 3 else "L2",
                       serial="=HYPERLINK(\"http://x\")" if i == 0 else f"S{i}",
                       predicted_class="pit", confidence=0.9, probabilities={"ok": 0.1, "pit": 0.9},
                       is_defect=True, flagged=True)
            for i in range(5)
        ]  # fmt: skip
        session.add_all(parts)
        session.flush()
        reviewer = CurrentUser(id=user.id, username="rita", role=Role.REVIEWER)
        first = parts[0].id
    review.record_review(db, reviewer, first, true_class="ok", disposition="accept", note=None,
                         expected_version=0)  # fmt: skip
    text = "".join(reports.inspections_csv(db, s, permissions.SYSTEM, T0, T0 + timedelta(hours=1),
                                           TrendFilter(line="L1")))  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["serial"] for r in rows] == ['\'=HYPERLINK("http://x")', "S1", "S2"]
    assert rows[0]["captured_at"] == "2026-11-01T08:30:00+01:00"
    assert (rows[0]["reviewed_class"], rows[0]["disposition"], rows[0]["reviewer"]) == (
        "ok", "accept", "rita")  # fmt: skip
    assert rows[1]["reviewed_class"] == "" and rows[1]["is_defect"] == "true"
    hour = T0 + timedelta(hours=1)
    everything = "".join(
        reports.inspections_csv(db, s, permissions.SYSTEM, T0, hour, TrendFilter())
    )
    assert len(list(csv.DictReader(io.StringIO(everything)))) == 5


def test_an_empty_period_is_refused_like_the_trends(db: Database, settings: Settings) -> None:
    from core.errors import ValidationError

    with pytest.raises(ValidationError, match="must be after since"):
        next(reports.inspections_csv(db, settings, permissions.SYSTEM, T0, T0, TrendFilter()))
