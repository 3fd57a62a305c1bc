"""Burn rate and projected run-out of a budget: how fast money went in the last hour and,
at that rate, when what is left runs out (before or after the budget's reset).

Pure: the desktop app (``summaries``) and the notebook (``notebook/status.py``) both use
it. Money stays integer nano-dollars; the run-out instant is display only, never money.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

BURN_WINDOW = timedelta(hours=1)  # the rate is the spend of the last hour


class Outlook(enum.StrEnum):
    NOTHING_LEFT = "nothing_left"  # the budget is used up
    IDLE = "idle"  # nothing spent in the last hour: no projection
    LASTS = "lasts"  # at this rate it lasts until the reset (or a total budget has no end)
    RUNS_OUT = "runs_out"  # at this rate it runs out at ``out_at``, before any reset


@dataclass(frozen=True, slots=True)
class Projection:
    outlook: Outlook
    burn_nano_per_hour: int
    out_at: datetime | None = None  # when RUNS_OUT

    @property
    def runs_out(self) -> bool:
        return self.outlook is Outlook.RUNS_OUT


def project(
    left_nano: int, burn_nano_per_hour: int, now: datetime, reset_at: datetime | None
) -> Projection:
    """Where ``left_nano`` goes at ``burn_nano_per_hour`` from ``now``."""
    burn = max(burn_nano_per_hour, 0)
    if left_nano <= 0:
        return Projection(Outlook.NOTHING_LEFT, burn)
    if burn == 0:
        return Projection(Outlook.IDLE, 0)
    out_at = now + timedelta(hours=left_nano / burn)  # display only: never money
    if reset_at is not None and out_at >= reset_at:
        return Projection(Outlook.LASTS, burn)
    return Projection(Outlook.RUNS_OUT, burn, out_at)


def span_text(at: datetime, now: datetime) -> str:
    """``3 h 20 min``, ``2 d 4 h``, ``5 min`` from ``now`` to ``at`` (at least a minute)."""
    secs = max(int((at - now).total_seconds()), 0)
    days, rem = divmod(secs, 86400)
    hours, rem = divmod(rem, 3600)
    mins = rem // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{max(mins, 1)} min"


def when_text(at: datetime, now: datetime) -> str:
    """``in 3 h 20 min (00:00)``, the clock in local time (the weekday when it is far)."""
    local = at.astimezone()
    far = at - now >= timedelta(hours=20)
    clock = local.strftime("%a %H:%M") if far else local.strftime("%H:%M")
    return f"in {span_text(at, now)} ({clock})"
