"""The engine's event bus: consent requested / answered / cancelled, and more to come.

Subscribers are called on the engine's loop thread and must not block; the GUI subscribes
through one bridge that re-emits each event as a Qt signal on the GUI thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

Subscriber = Callable[[str, dict[str, Any]], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self.history: list[tuple[str, dict[str, Any]]] = []  # the last events, for late joiners

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn)

    def emit(self, name: str, payload: dict[str, Any]) -> None:
        self.history = [*self.history[-99:], (name, payload)]
        for fn in list(self._subscribers):
            try:
                fn(name, payload)
            except Exception:
                log.exception("event subscriber failed on %s", name)
