"""A circuit breaker per provider: stop sending to a provider that keeps failing.

- **closed** (ok): every request goes. It opens after ``failures_to_open`` consecutive
  failures, or when, over the last ``window_s``, at least ``window_min_calls`` outcomes were
  seen and the share of failures among them reached ``failure_rate``.
- **open**: every request is refused at once until ``retry_at`` (the cool-down,
  ``cooldown_s`` at first).
- **half-open** (probing): after the cool-down ONE request at a time is let through as a
  probe; the others are still refused. A good probe closes the breaker (and the cool-down
  goes back to ``cooldown_s``); a failed one opens it again with the cool-down doubled, up to
  ``max_cooldown_s``. A probe that ends without an outcome (its client left) frees the slot.

What counts: :class:`Outcome.FAILURE` (5xx, 529, timeouts, connection errors) and
:class:`Outcome.SUCCESS`; :class:`Outcome.NEUTRAL` (a 4xx about the request itself, a 429
rate limit) changes nothing but ends a probe (a provider that answers is up, so a neutral
probe closes the breaker). Time comes from an injected clock (seconds, monotonic), so tests
drive it without sleeping; pure otherwise (the engine emits the state changes it is told of).
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiwallet.domain.errors import InvalidInput


class State(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Outcome(enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failures_to_open: int = 5
    window_s: float = 60.0
    window_min_calls: int = 20
    failure_rate: float = 0.5
    cooldown_s: float = 30.0
    max_cooldown_s: float = 600.0

    def __post_init__(self) -> None:
        if self.failures_to_open < 1 or self.window_min_calls < 1:
            raise InvalidInput("failures_to_open and window_min_calls must be at least 1")
        if not 0 < self.failure_rate <= 1:
            raise InvalidInput("failure_rate is a share: more than 0, at most 1")
        for name in ("window_s", "cooldown_s", "max_cooldown_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InvalidInput(f"{name} must be a positive number of seconds")


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A breaker as the engine shows it (admin API, CLI, GUI)."""

    provider: str
    state: State
    failures: int  # consecutive failures (in closed), or failed probes in a row (open)
    retry_at: float | None  # clock time when it lets a probe through (open only)
    retry_in_s: float | None  # ... and how long from the snapshot's time

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "state": self.state.value,
            "failures": self.failures,
            "retry_in_s": None if self.retry_in_s is None else round(self.retry_in_s, 3),
        }


@dataclass(frozen=True, slots=True)
class Ticket:
    """Leave to send one request; give it back with :meth:`Breaker.record` or
    :meth:`Breaker.abandon`."""

    probe: bool
    generation: int


@dataclass(frozen=True, slots=True)
class Refused:
    """The breaker is open (or its one probe is out): wait ``retry_in_s``."""

    retry_in_s: float


Changed = Callable[["Breaker"], None]


class Breaker:
    def __init__(
        self,
        provider: str,
        clock: Callable[[], float],
        policy: BreakerPolicy | None = None,
        on_change: Changed | None = None,
    ) -> None:
        self.provider = provider
        self.policy = policy or BreakerPolicy()
        self._clock = clock
        self._on_change = on_change
        self.state = State.CLOSED
        self.failures = 0
        self._cooldown = self.policy.cooldown_s
        self.retry_at: float | None = None
        self._probing = False
        self._generation = 0  # bumped on each state change: stale tickets change nothing
        self._window: deque[tuple[float, bool]] = deque()

    # -- asking -------------------------------------------------------------------------------
    def admit(self) -> Ticket | Refused:
        now = self._clock()
        if self.state is State.OPEN:
            assert self.retry_at is not None
            if now < self.retry_at:
                return Refused(self.retry_at - now)
            self._move(State.HALF_OPEN)
        if self.state is State.HALF_OPEN:
            if self._probing:
                return Refused(min(1.0, self.policy.cooldown_s))  # the probe's answer decides
            self._probing = True
            return Ticket(True, self._generation)
        return Ticket(False, self._generation)

    # -- telling ------------------------------------------------------------------------------
    def record(self, ticket: Ticket, outcome: Outcome) -> None:
        now = self._clock()
        if ticket.probe:
            if ticket.generation != self._generation or self.state is not State.HALF_OPEN:
                return
            self._probing = False
            if outcome is Outcome.FAILURE:
                self._cooldown = min(self._cooldown * 2, self.policy.max_cooldown_s)
                self.failures += 1
                self._open(now)
            else:
                self._cooldown = self.policy.cooldown_s
                self.failures = 0
                self._window.clear()
                self._move(State.CLOSED)
            return
        if self.state is not State.CLOSED or outcome is Outcome.NEUTRAL:
            return  # an answer to a request sent before it opened: already counted
        failed = outcome is Outcome.FAILURE
        self._window.append((now, failed))
        self._trim(now)
        if not failed:
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= self.policy.failures_to_open or self._rate_exceeded():
            self._open(now)

    def abandon(self, ticket: Ticket) -> None:
        """The request ended with no outcome to tell (its client left): a probe's slot frees."""
        if ticket.probe and ticket.generation == self._generation:
            self._probing = False

    # -- reading ------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        now = self._clock()
        state = self.state
        retry_in = None
        if state is State.OPEN and self.retry_at is not None:
            if now >= self.retry_at:
                state = State.HALF_OPEN  # the next request is the probe
            else:
                retry_in = self.retry_at - now
        return Snapshot(self.provider, state, self.failures, self.retry_at, retry_in)

    # -- inside -------------------------------------------------------------------------------
    def _trim(self, now: float) -> None:
        while self._window and self._window[0][0] <= now - self.policy.window_s:
            self._window.popleft()

    def _rate_exceeded(self) -> bool:
        seen = len(self._window)
        if seen < self.policy.window_min_calls:
            return False
        failed = sum(1 for _, f in self._window if f)
        return failed >= self.policy.failure_rate * seen

    def _open(self, now: float) -> None:
        self.retry_at = now + self._cooldown
        self._window.clear()
        self._move(State.OPEN)

    def _move(self, state: State) -> None:
        self.state = state
        self._generation += 1
        if state is not State.OPEN:
            self.retry_at = None
        if state is not State.HALF_OPEN:
            self._probing = False
        if self._on_change is not None:
            self._on_change(self)
