"""Plant-local time buckets for the trends: hours of the rollup (UTC) summed into the plant's
hours, shifts, days or weeks, correct across daylight-saving changes (a day of 23 or 25 hours),
and the shift filter. Shift starts are the DEFECTLENS_SHIFTS setting."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.config import Settings
from core.errors import ValidationError
from db.queries.trends import HourCounts

BUCKETS = ("hour", "shift", "day", "week")


def plant_zone(settings: Settings) -> ZoneInfo:
    """The plant's time zone (DEFECTLENS_TIMEZONE); ValidationError for an unknown name."""
    try:
        return ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"DEFECTLENS_TIMEZONE={settings.timezone!r} is not a time zone name "
            "(for example Europe/Berlin)"
        ) from None


def checked_bucket(by: str) -> str:
    """The bucket name, or ValidationError listing the valid ones."""
    if by not in BUCKETS:
        raise ValidationError(f"bucket must be one of {', '.join(BUCKETS)}, not {by!r}")
    return by


def bucket_start(hour: datetime, by: str, tz: ZoneInfo, shifts: Sequence[str]) -> datetime:
    """The plant-local start of the bucket that the UTC hour ``hour`` falls in (aware, in tz)."""
    return _bucket_start(hour, by, tz, tuple(shifts))


# A year's report maps each of its 8,760 hours several times (rates, mix, days for the
# forecast, the previous period): the answers are pure, so they are remembered.
@functools.lru_cache(maxsize=200_000)
def _bucket_start(hour: datetime, by: str, tz: ZoneInfo, shifts: tuple[str, ...]) -> datetime:
    local = hour.astimezone(tz)
    if by == "hour":
        return local
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if by == "day":
        return _localise(midnight, tz)
    if by == "week":  # weeks start on Monday, as ISO 8601
        return _localise(midnight - timedelta(days=midnight.weekday()), tz)
    if by == "shift":
        starts = [tuple(int(x) for x in s.split(":")) for s in shifts]
        wall = (local.hour, local.minute)
        earlier = [s for s in starts if s <= wall]
        if earlier:
            h, m = earlier[-1]
            return _localise(midnight.replace(hour=h, minute=m), tz)
        h, m = starts[-1]  # before the first shift: the previous day's last shift
        return _localise((midnight - timedelta(days=1)).replace(hour=h, minute=m), tz)
    raise ValidationError(f"bucket must be one of {', '.join(BUCKETS)}, not {by!r}")


def shift_of(hour: datetime, tz: ZoneInfo, shifts: Sequence[str]) -> str:
    """The start time ("06:00") of the shift the UTC hour ``hour`` falls in."""
    return f"{bucket_start(hour, 'shift', tz, shifts):%H:%M}"


def in_shift(
    hours: Sequence[HourCounts], shift: str | None, tz: ZoneInfo, shifts: Sequence[str]
) -> list[HourCounts]:
    """The hours of one shift (every hour when shift is None)."""
    if shift is None:
        return list(hours)
    return [h for h in hours if shift_of(h.hour, tz, shifts) == shift]


def _localise(wall: datetime, tz: ZoneInfo) -> datetime:
    """A wall-clock time in tz with its correct offset (after date arithmetic changed the day)."""
    naive = wall.replace(tzinfo=None)
    return naive.replace(tzinfo=tz)


def default_bucket(since: datetime, until: datetime) -> str:
    """The bucket for a range: hours up to 2 days, shifts up to 7, days up to 120, else weeks."""
    days = (until - since).total_seconds() / 86400
    if days <= 2:
        return "hour"
    if days <= 7:
        return "shift"
    return "day" if days <= 120 else "week"


@dataclass
class Bucket:
    """The counts of one plant-local bucket."""

    start: datetime
    parts: int = 0
    defects: int = 0
    flagged: int = 0
    reviewed: int = 0
    corrections: int = 0
    unsure: int = 0
    confidence_sum: float = 0.0

    def add(self, h: HourCounts) -> None:
        self.parts += h.parts
        self.defects += h.defects
        self.flagged += h.flagged
        self.reviewed += h.reviewed
        self.corrections += h.corrections
        self.unsure += h.unsure
        self.confidence_sum += h.confidence_sum


def into_buckets(
    hours: Sequence[HourCounts], by: str, tz: ZoneInfo, shifts: Sequence[str]
) -> list[Bucket]:
    """Sum UTC hours into plant-local buckets, in time order (buckets without parts absent)."""
    out: dict[datetime, Bucket] = {}
    for h in hours:
        start = bucket_start(h.hour, by, tz, shifts)
        key = start.astimezone(UTC)
        if key not in out:
            out[key] = Bucket(start=start)
        out[key].add(h)
    return [out[k] for k in sorted(out)]
