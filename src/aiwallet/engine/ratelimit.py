"""Per-app rate limits: requests per minute, tokens per minute, requests at once.

All state lives on the engine's event loop and every check-and-take runs without an ``await``
in between, so no burst can slip past a limit however many requests arrive at once. A refused
request takes nothing from any limit.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from aiwallet.engine.errors import ProxyError


@dataclass(frozen=True, slots=True)
class Limits:
    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens per minute (prompt + output)
    concurrency: int | None = None  # requests in flight

    @property
    def any(self) -> bool:
        return self.rpm is not None or self.tpm is not None or self.concurrency is not None


@dataclass
class _Bucket:
    """A token bucket that refills ``capacity`` per minute; it may go into debt when a
    request turns out to use more than was taken for it."""

    capacity: float
    level: float
    stamp: float = field(default_factory=time.monotonic)

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.capacity / 60.0)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 if it is now)."""
        if self.level >= amount:
            return 0.0
        return (amount - self.level) * 60.0 / self.capacity


@dataclass
class _AppState:
    limits: Limits
    requests: _Bucket | None
    tokens: _Bucket | None
    in_flight: int = 0


class RateLimiter:
    def __init__(self) -> None:
        self._apps: dict[int, _AppState] = {}

    def _state(self, app_id: int, limits: Limits) -> _AppState:
        st = self._apps.get(app_id)
        if st is None or st.limits != limits:
            st = _AppState(
                limits,
                _Bucket(limits.rpm, limits.rpm) if limits.rpm else None,
                _Bucket(limits.tpm, limits.tpm) if limits.tpm else None,
                st.in_flight if st else 0,
            )
            self._apps[app_id] = st
        return st

    def admit(self, app_id: int, limits: Limits, tokens: int) -> None:
        """Take one request and ``tokens`` from the app's limits, or raise ``rate_limited``."""
        if not limits.any:
            return
        st = self._state(app_id, limits)
        now = time.monotonic()
        if limits.concurrency is not None and st.in_flight >= limits.concurrency:
            raise ProxyError(
                "rate_limited",
                f"this app already has {st.in_flight} requests in flight, its limit; "
                "retry when one finishes",
                retry_after=1,
            )
        waits = []
        if st.requests is not None:
            st.requests.refill(now)
            waits.append(st.requests.wait_for(1))
        if st.tokens is not None:
            st.tokens.refill(now)
            if limits.tpm is not None and tokens > limits.tpm:
                raise ProxyError(
                    "rate_limited",
                    f"this request needs about {tokens} tokens, more than the app's limit of "
                    f"{limits.tpm} tokens per minute",
                )
            waits.append(st.tokens.wait_for(tokens))
        wait = max(waits, default=0.0)
        if wait > 0:
            raise ProxyError(
                "rate_limited",
                "this app is over its rate limit "
                f"({_describe(limits)}); retry in {math.ceil(wait)} s",
                retry_after=max(1, math.ceil(wait)),
            )
        if st.requests is not None:
            st.requests.level -= 1
        if st.tokens is not None:
            st.tokens.level -= tokens
        st.in_flight += 1

    def done(self, app_id: int, taken_tokens: int, used_tokens: int) -> None:
        """The request finished: free its slot and correct its token estimate."""
        st = self._apps.get(app_id)
        if st is None:
            return
        st.in_flight = max(0, st.in_flight - 1)
        if st.tokens is not None:
            st.tokens.level += taken_tokens - used_tokens


def _describe(limits: Limits) -> str:
    parts = []
    if limits.rpm is not None:
        parts.append(f"{limits.rpm} requests/min")
    if limits.tpm is not None:
        parts.append(f"{limits.tpm} tokens/min")
    if limits.concurrency is not None:
        parts.append(f"{limits.concurrency} at once")
    return ", ".join(parts)
