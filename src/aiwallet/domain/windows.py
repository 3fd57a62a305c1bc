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
