"""Budget counter changes, reported once their transaction has committed.

An engine that keeps its budget counters in memory (engine/live_budgets.py) must hear about
every change it did not make itself on the event loop: a settlement's real cost, a release, a
refund. :mod:`aiwallet.store.budgets` notes each change on the connection
(:func:`note`); :class:`~aiwallet.store.db.Database` and the engine's group-commit writer hand
the notes to ``Database.counter_listener`` only after the commit, and drop them when the
transaction rolls back, so the listener never hears of a change that did not happen (room
given back too early could be taken twice).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection

EVENTS_KEY = "aiwallet_counter_events"


@dataclass(frozen=True, slots=True)
class CounterEvent:
    """``delta_nano`` added to spent + reserved of each counter in ``counter_ids``;
    ``reservation_id`` is the reservation this closes (None: a refund)."""

    reservation_id: str | None
    counter_ids: tuple[int, ...]
    delta_nano: int


def note(conn: Connection, event: CounterEvent) -> None:
    """Keep ``event`` until ``conn``'s transaction ends (only when someone listens)."""
    events = conn.info.get(EVENTS_KEY)
    if events is not None:
        events.append(event)


def collect(conn: Connection) -> None:
    """Start noting events on ``conn`` (the transaction's owner calls it)."""
    conn.info[EVENTS_KEY] = []


def take(conn: Connection) -> list[CounterEvent]:
    """The events noted since :func:`collect`, and stop noting."""
    events: list[CounterEvent] | None = conn.info.pop(EVENTS_KEY, None)
    return events or []
