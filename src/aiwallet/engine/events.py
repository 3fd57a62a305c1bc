"""The engine's event bus.

Events: ``consent.requested`` / ``consent.answered`` / ``consent.cancelled`` (a prompt's
lifecycle), ``consent.ended`` (an "until it exits" grant's process exited; its app is revoked),
``request.logged`` (a request was settled, released or refused; its row is
committed), ``upstream.failed`` (a provider could not be reached or failed),
``provider.breaker`` (a provider's circuit breaker changed state: engine/health.py), and
``engine.reloaded`` (settings, apps or the pause switch changed).

Subscribers are called on the engine's loop thread and must not block; the GUI subscribes
through one bridge that re-emits each event as a Qt signal on the GUI thread.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Subscriber = Callable[[str, dict[str, Any]], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        # The last events, for late joiners.
        self.history: deque[tuple[str, dict[str, Any]]] = deque(maxlen=100)

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn)

    def emit(self, name: str, payload: dict[str, Any]) -> None:
        self.history.append((name, payload))
        for fn in list(self._subscribers):
            try:
                fn(name, payload)
            except Exception:
                log.exception("event subscriber failed on %s", name)
