"""Each provider's health as the engine sees it: one circuit breaker per provider
(upstreams/breaker.py), made on first use, its state changes announced as
``provider.breaker`` events ({provider, state, failures, retry_at}) and shown by
``GET /admin/v1/providers/health``, ``aiwallet providers list`` and
:meth:`aiwallet.engine.server.Engine.provider_health`.

Lives on the engine's loop: breakers are read and changed there only (no locks)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiwallet.engine.events import EventBus
from aiwallet.upstreams.breaker import Breaker, BreakerPolicy, Snapshot, State

BREAKER_EVENT = "provider.breaker"

# How the health column names each state (``ok`` / ``open`` / ``probing``).
HEALTH_WORDS = {State.CLOSED: "ok", State.OPEN: "open", State.HALF_OPEN: "probing"}


class ProviderHealth:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        policy: BreakerPolicy | None = None,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.clock = clock
        self.policy = policy or BreakerPolicy()
        self.wall = wall
        self.events: EventBus | None = None
        self._breakers: dict[str, Breaker] = {}
        self._until: dict[str, datetime] = {}  # wall-clock retry time, fixed when it opened

    def breaker(self, provider: str) -> Breaker:
        found = self._breakers.get(provider)
        if found is None:
            found = Breaker(provider, self.clock, self.policy, on_change=self._changed)
            self._breakers[provider] = found
        return found

    def healthy(self, provider: str) -> bool:
        """Taking requests as usual: its breaker closed (or none made yet). Routing tries an
        open or probing provider only after every healthy one."""
        found = self._breakers.get(provider)
        return found is None or found.snapshot().state is State.CLOSED

    def retry_at(self, provider: str, snap: Snapshot) -> datetime | None:
        """When an open breaker lets its probe through, on the wall clock (as it was reckoned
        when it opened, so that every read says the same time)."""
        if snap.retry_in_s is None:
            return None
        at = self._until.get(provider)
        if at is None:
            at = self._until[provider] = self.wall() + timedelta(seconds=snap.retry_in_s)
        return at

    def describe(self, snap: Snapshot) -> dict[str, Any]:
        """A breaker as the admin API, the CLI and the GUI show it."""
        at = self.retry_at(snap.provider, snap)
        return {
            **snap.to_json(),
            "health": HEALTH_WORDS[snap.state],
            "retry_at": at.isoformat() if at is not None else None,
        }

    def report(self, providers: list[str]) -> list[dict[str, Any]]:
        """Every provider named (and every one with a breaker), ok where none was made."""
        names = list(dict.fromkeys([*providers, *self._breakers]))
        return [self.describe(self.breaker(n).snapshot()) for n in names]

    def _changed(self, breaker: Breaker) -> None:
        self._until.pop(breaker.provider, None)  # reckoned again from this change
        snap = breaker.snapshot()
        at = self.retry_at(breaker.provider, snap)
        if self.events is None:
            return
        self.events.emit(
            BREAKER_EVENT,
            {
                "provider": breaker.provider,
                "state": breaker.state.value,
                "failures": breaker.failures,
                "retry_at": at.isoformat() if at is not None else None,
            },
        )
