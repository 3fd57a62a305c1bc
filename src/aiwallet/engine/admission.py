"""Bounded admission of consent requests: how many prompts may wait per process, per OS user
and in total, and how fast one OS user may ask through ``POST /wallet/v1/connect``.

The bounds are in one place (:class:`AdmissionLimits`); the counters live on the engine's
loop and every check-and-take runs without an ``await`` in between.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from aiwallet.engine.errors import ProxyError
from aiwallet.engine.peer import ProcessInfo

UNKNOWN = "unknown"  # the owner of a caller the platform would not name


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    per_process: int = 4  # prompts waiting for one process
    per_user: int = 16  # ... for one OS user (all its processes, and the unknown ones together)
    total: int = 64  # ... for everyone
    connect_burst: int = 10  # connect requests one OS user may make at once
    connect_per_min: float = 10.0  # ... and then per minute


DEFAULT_LIMITS = AdmissionLimits()


def owner_of(process: ProcessInfo | None) -> str:
    owner = process.owner if process is not None else None
    return owner or UNKNOWN


class Waiting(Protocol):
    """What the bound needs to know of one pending prompt (a ConsentRequest)."""

    @property
    def process(self) -> ProcessInfo | None: ...

    @property
    def deadline(self) -> float: ...  # time.monotonic() when it expires


def check_pending(
    limits: AdmissionLimits, pending: Iterable[Waiting], process: ProcessInfo | None
) -> None:
    """Raise ``too_many_pending`` when one more prompt for ``process`` would pass a bound."""
    owner = owner_of(process)
    everyone: list[float] = []
    mine: list[float] = []
    this_process: list[float] = []
    for w in pending:
        everyone.append(w.deadline)
        if owner_of(w.process) == owner:
            mine.append(w.deadline)
            if process is not None and process.same_process(w.process):
                this_process.append(w.deadline)
    for deadlines, bound, whose in (
        (this_process, limits.per_process, "this program"),
        (mine, limits.per_user, "this OS user"),
        (everyone, limits.total, "the wallet"),
    ):
        if len(deadlines) >= bound:
            retry = max(1, math.ceil(min(deadlines) - time.monotonic()))
            raise ProxyError(
                "too_many_pending",
                f"{whose} already has {len(deadlines)} requests waiting for the wallet's owner "
                f"(at most {bound}); wait for an answer (or retry in {retry} s) instead of "
                "asking again",
                retry_after=retry,
            )


@dataclass
class _Bucket:
    level: float
    stamp: float = field(default_factory=time.monotonic)


class ConnectRate:
    """A token bucket per OS user for ``POST /wallet/v1/connect``."""

    def __init__(self, limits: AdmissionLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buckets: dict[str, _Bucket] = {}

    def take(self, process: ProcessInfo | None) -> None:
        """Take one connect request from the caller's bucket, or raise ``rate_limited``."""
        lim = self.limits
        owner, now = owner_of(process), time.monotonic()
        if len(self._buckets) > 10_000:  # forget full buckets first: they cost nothing to rebuild
            self._buckets = {k: b for k, b in self._buckets.items() if b.level < lim.connect_burst}
        b = self._buckets.setdefault(owner, _Bucket(float(lim.connect_burst), now))
        b.level = min(lim.connect_burst, b.level + (now - b.stamp) * lim.connect_per_min / 60.0)
        b.stamp = now
        if b.level < 1.0:
            wait = max(1, math.ceil((1.0 - b.level) * 60.0 / lim.connect_per_min))
            raise ProxyError(
                "rate_limited",
                f"too many connect requests from this OS user (at most {lim.connect_burst} at "
                f"once, then {lim.connect_per_min:g} a minute); retry in {wait} s",
                retry_after=wait,
            )
        b.level -= 1.0
