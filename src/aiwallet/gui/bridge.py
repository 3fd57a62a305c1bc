"""The one place where engine events cross onto the GUI thread.

The engine calls subscribers on its own loop thread; :class:`EngineBridge` re-emits each
event as a Qt signal, which Qt queues onto the GUI thread (the bridge lives there). Receivers
dispatch by name to ``on_event_<name>`` methods (dots become underscores).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal


class EngineBridge(QObject):
    engine_event = Signal(str, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._unsubscribe: Callable[[], None] | None = None

    def attach(self, subscribe: Callable[[Callable[[str, dict[str, Any]], None]], Any]) -> None:
        """Subscribe to an engine event bus (``EventBus.subscribe``)."""
        self.detach()
        self._unsubscribe = subscribe(self._on_engine_thread)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_engine_thread(self, name: str, payload: dict[str, Any]) -> None:
        # Runs on the engine's thread: only emit (queued to the GUI thread), never touch Qt.
        self.engine_event.emit(name, dict(payload))


def dispatch(target: object, name: str, payload: dict[str, Any]) -> None:
    """Call ``target.on_event_<name>(payload)`` if it has one."""
    handler = getattr(target, "on_event_" + name.replace(".", "_"), None)
    if handler is not None:
        handler(payload)
