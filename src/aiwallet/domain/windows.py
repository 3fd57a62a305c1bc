"""Budget windows: when a day, week (Monday start) or month begins and ends for the user.

Windows are computed in the user's local time zone and returned as aware UTC instants, so a
day across a DST change is 23 or 25 hours long and "resets at midnight" means the user's
midnight. A local midnight that does not exist (a DST gap at 00:00) starts the day at the
first instant that does; an ambiguous one (a fold at 00:00) starts it at the first occurrence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import Period


@dataclass(frozen=True, slots=True)
class Window:
    """One budget window. ``start``/``end`` are aware UTC; ``end`` is exclusive and is the
    reset instant. Both are ``None`` for a TOTAL budget, which never resets."""

    period: Period
    start: datetime | None
    end: datetime | None

    def contains(self, at: datetime) -> bool:
        if self.start is None or self.end is None:
            return True
        return self.start <= at < self.end

    @property
    def key(self) -> str:
        """A stable identifier of the window (its UTC start), ``total`` for TOTAL."""
        return "total" if self.start is None else self.start.isoformat()


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    """The first instant of ``day`` in ``tz``, as aware UTC."""
    local = datetime(day.year, day.month, day.day, tzinfo=tz, fold=0)
    instant = local.astimezone(UTC)
    # In a gap, fold=0 maps 00:00 through the pre-gap offset, which lands after the gap: the
    # first existing instant of the day. In a fold, fold=0 is the first occurrence. Either way
    # make sure the instant really is on ``day`` locally (guards odd historic zones).
    if instant.astimezone(tz).date() < day:  # pragma: no cover - no such zone in tzdata today
        instant = (local + timedelta(hours=1)).astimezone(UTC)
    return instant


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput("budget windows need an aware datetime (with a time zone)")


def window_for(period: Period, at: datetime, tz: tzinfo) -> Window:
    """The window of ``period`` that contains the instant ``at``, in the user's zone ``tz``."""
    _require_aware(at)
    if period is Period.TOTAL:
        return Window(period, None, None)
    local_day = at.astimezone(tz).date()
    if period is Period.DAY:
        start_day, end_day = local_day, local_day + timedelta(days=1)
    elif period is Period.WEEK:
        start_day = local_day - timedelta(days=local_day.weekday())
        end_day = start_day + timedelta(days=7)
    elif period is Period.MONTH:
        start_day = local_day.replace(day=1)
        end_day = (
            date(start_day.year + 1, 1, 1)
            if start_day.month == 12
            else date(start_day.year, start_day.month + 1, 1)
        )
    else:  # pragma: no cover - exhaustive over Period
        raise InvalidInput(f"unknown budget period {period!r}")
    return Window(period, _local_midnight(start_day, tz), _local_midnight(end_day, tz))


def reset_instant(period: Period, at: datetime, tz: tzinfo) -> datetime | None:
    """When the budget of ``period`` next starts over after ``at`` (None for TOTAL)."""
    return window_for(period, at, tz).end


def describe_until(at: datetime, until: datetime | None) -> str:
    """``resets in 3 h`` style text: the coarsest unit that is still informative."""
    if until is None:
        return "never resets"
    seconds = int((until - at).total_seconds())
    if seconds <= 0:
        return "resets now"
    if seconds < 60:
        return f"resets in {seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"resets in {minutes} min"
    hours = minutes // 60
    if hours < 48:
        rest = minutes % 60
        if hours >= 10 or rest == 0:
            return f"resets in {hours} h"
        return f"resets in {hours} h {rest} min"
    return f"resets in {hours // 24} days"


# -- chart buckets ------------------------------------------------------------------------
# What the spend chart offers: (label, bucket unit, number of buckets).
CHART_RANGES: dict[str, tuple[str, int]] = {
    "today": ("hour", 24),
    "7 days": ("day", 7),
    "30 days": ("day", 30),
    "12 weeks": ("week", 12),
    "12 months": ("month", 12),
}


def bucket_edges(unit: str, count: int, at: datetime, tz: tzinfo) -> list[datetime]:
    """UTC edges of ``count`` consecutive local buckets (``hour``, ``day``, ``week``,
    ``month``), the last one containing ``at``; ``hour`` over today spans the local day."""
    _require_aware(at)
    if count < 1:
        raise InvalidInput("a chart needs at least one bucket")
    if unit == "hour":
        day = window_for(Period.DAY, at, tz)
        assert day.start is not None and day.end is not None
        edges = [day.start]
        while edges[-1] < day.end:  # 23, 24 or 25 hours: local hours of today
            edges.append(min(edges[-1] + timedelta(hours=1), day.end))
        return edges
    period = {"day": Period.DAY, "week": Period.WEEK, "month": Period.MONTH}.get(unit)
    if period is None:
        raise InvalidInput(f"unknown chart bucket {unit!r}; use hour, day, week or month")
    current = window_for(period, at, tz)
    assert current.start is not None and current.end is not None
    edges = [current.end, current.start]
    while len(edges) < count + 1:
        previous = window_for(period, edges[-1] - timedelta(microseconds=1), tz)
        assert previous.start is not None
        edges.append(previous.start)
    return edges[::-1]
