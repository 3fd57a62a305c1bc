"""The suite's one way to wait for something that happens elsewhere (the engine's thread, a
subprocess, the fake upstream): poll a condition until it holds, with a bound.

A test waits for the event it depends on (a consent request is pending, a row is written, a
connection is closed), never for a fixed time. Prefer a callback where one exists (subscribe
to ``engine.events`` and poll what it collected); Qt tests use ``qtbot.waitUntil`` or
``qtbot.waitSignal`` instead, which keep the Qt event loop turning.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL_S = 0.02


def wait_until(
    predicate: Callable[[], T], *, timeout_s: float = 10.0, what: str, poll_s: float = POLL_S
) -> T:
    """Call ``predicate`` every ``poll_s`` until it returns something truthy, and return that.

    Raises ``AssertionError`` naming ``what`` (and the last value seen) when ``timeout_s``
    passes first. The predicate is asked once more after the last sleep, so a condition that
    became true during it is not reported as a timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            seen = repr(value)
            seen = seen if len(seen) <= 200 else seen[:200] + "…"
            raise AssertionError(f"waited {timeout_s:g} s for {what}; last saw {seen}")
        time.sleep(poll_s)
