"""The plant overview shown on the home page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from core.auth import permissions
from core.auth.permissions import Action, CurrentUser
from db.engine import Database
from db.models import utcnow
from db.queries import inspections


@dataclass(frozen=True)
class Overview:
    """Headline numbers for the last `hours` hours."""

    hours: int
    inspected: int
    flagged: int
    defects: int
    open_reviews: int
    jobs_waiting_or_running: int
    active_model: str | None

    @property
    def defect_rate(self) -> float | None:
        return None if self.inspected == 0 else self.defects / self.inspected


def plant_overview(db: Database, user: CurrentUser, hours: int = 24) -> Overview:
    """Headline numbers any logged-in user may see."""
    permissions.require(user, Action.VIEW_TRENDS)
    with db.read() as session:
        counts = inspections.overview_counts(session, utcnow() - timedelta(hours=hours))
    return Overview(hours=hours, **counts)
