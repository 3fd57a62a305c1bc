"""Group commit: the engine's store writes run on one thread, many to a transaction.

Every reservation and settlement must be committed before the engine goes on (a reservation
before forwarding, a settlement before the last byte), so each waits for a commit. One commit
per request pair capped the engine at a few hundred requests/s; here the writer thread takes
whatever writes are waiting (up to ``max_batch``), runs each inside its own SAVEPOINT (so a
refused reservation rolls back alone), commits once, and only then answers each waiter.
Durability is unchanged: no caller hears "done" before its write is committed.

Hand-offs between the loop and the writer are batched both ways (each is a futex or eventfd
wake-up and a GIL hand-off): jobs submitted during one pass of the loop go to the writer as
one queue item, and a committed batch wakes each waiting loop once, with the counter changes
it made (:attr:`BatchWriter.counter_sink`) and every job's result in one callback. A job
nobody waits for (``lazy``: a grant the reservation journal already holds) may wait up to
:data:`LAZY_S` for company, so a short request's grant and settlement share one commit.

On PostgreSQL several engines may share the database (one ledger, several wallets): each
batch holds the transaction-scoped advisory lock every write takes (``Database.take_write_lock``),
so their writers' batches never interleave (which deadlocked them on the budget counter rows,
each batch locking in its jobs' order).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection

from aiwallet.domain.errors import WalletError
from aiwallet.store import counter_events
from aiwallet.store.counter_events import CounterEvent
from aiwallet.store.db import Database
from aiwallet.store.hotsql import HotStatements

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class _Job:
    fn: Callable[[Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


_STOP = object()
LAZY_S = 0.002  # how long a lazy job waits for a job someone awaits


@dataclass(slots=True)
class _Pending:
    """What one loop has submitted and not yet handed over."""

    jobs: list[_Job]
    soon: bool = False  # a hand-over is scheduled for the end of this pass
    timer: asyncio.TimerHandle | None = None


CounterSink = tuple[asyncio.AbstractEventLoop, Callable[[int, list[CounterEvent]], None]]


class BatchWriter:
    def __init__(self, db: Database, hot: HotStatements, *, max_batch: int = 128) -> None:
        self.db = db
        self.hot = hot
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[list[_Job] | object] = queue.SimpleQueue()
        # jobs each loop submitted and has not handed over yet
        self._pending: dict[asyncio.AbstractEventLoop, _Pending] = {}
        # where the counter changes of each commit go (on that loop, before any result of the
        # batch); None: to ``db.counter_listener`` on this thread, as other commits do
        self.counter_sink: CounterSink | None = None
        self._conn: Connection | None = None
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.jobs = 0

    def start(self) -> BatchWriter:
        """Start the writer thread (once); returns the writer."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="aiwallet-writer", daemon=True)
            self._thread.start()
        return self

    async def submit(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in the next transaction; returns once that transaction committed."""
        return await self.submit_nowait(fn)

    def submit_nowait(
        self, fn: Callable[[Connection], T], *, lazy: bool = False
    ) -> asyncio.Future[T]:
        """Queue ``fn(conn)`` for a coming transaction; the future resolves once it committed.
        The write happens whether or not anyone still awaits the future. Jobs of one loop are
        written in the order submitted; ``lazy``: nobody needs it soon (it may wait up to
        :data:`LAZY_S` for a job that someone does)."""
        assert self._thread is not None, "BatchWriter.start() first"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        slot = self._pending.get(loop)
        if slot is None:
            slot = self._pending[loop] = _Pending([])
        slot.jobs.append(_Job(fn, future, loop))
        if not lazy and not slot.soon:
            slot.soon = True
            loop.call_soon(self._hand_over, loop)
        elif lazy and slot.timer is None and not slot.soon:
            slot.timer = loop.call_later(LAZY_S, self._hand_over, loop)
        return future

    def _hand_over(self, loop: asyncio.AbstractEventLoop) -> None:
        """What ``loop`` submitted so far, to the writer as one item (on that loop)."""
        slot = self._pending.pop(loop, None)
        if slot is None:
            return
        if slot.timer is not None:
            slot.timer.cancel()
        if slot.jobs:
            self._queue.put(slot.jobs)

    def close(self) -> None:
        """Write what is queued, then stop. Called on a submitting loop's thread or after its
        loop stopped, so jobs not yet handed over are handed over here (none is lost)."""
        if self._thread is None:
            return
        for loop in list(self._pending):
            self._hand_over(loop)
        self._queue.put(_STOP)
        self._thread.join(30)
        self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                self._drop_connection()
                return
            batch: list[_Job] = list(first)  # type: ignore[call-overload]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.extend(nxt)  # type: ignore[arg-type]
            self._commit(batch)
            if stop:
                self._drop_connection()
                return

    def _commit(self, batch: list[_Job]) -> None:
        """One transaction for the batch. A job that fails with a WalletError (a refused
        reservation, an already-closed one) left nothing behind and fails alone; anything else
        rolls the batch back, and then every job runs again in a transaction of its own."""
        changes: list[tuple[int, list[CounterEvent]]] = []  # (epoch, events) per commit
        try:
            outcomes = self._run_batch(batch, changes)
        except Exception:
            log.exception("a write batch of %d failed; retrying its jobs one by one", len(batch))
            outcomes = []
            for job in batch:
                try:
                    outcomes.extend(self._run_batch([job], changes))
                except Exception as exc:
                    outcomes.append((False, exc))
        self.batches += 1
        self.jobs += len(batch)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append((job.future, ok, value))
        sink = self.counter_sink
        if changes and sink is None and self.db.counter_listener is not None:
            for epoch, events in changes:  # committed; told before any waiter hears
                self.db.counter_listener(epoch, events)
        if changes and sink is not None:
            by_loop.setdefault(sink[0], [])
        for loop, results in by_loop.items():
            apply = sink[1] if sink is not None and loop is sink[0] and changes else None
            try:
                loop.call_soon_threadsafe(_deliver, apply, changes, results)
            except RuntimeError:  # that loop has closed: nobody is left to hear
                log.debug("a write batch finished after its loop closed")

    def _run_batch(
        self, batch: list[_Job], changes: list[tuple[int, list[CounterEvent]]]
    ) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        conn = self._connection()
        heard = self.counter_sink is not None or self.db.counter_listener is not None
        epoch, events = 0, list[CounterEvent]()
        try:
            with conn.begin():
                # engines sharing a PostgreSQL ledger take turns: a batch locks many counter
                # rows in its jobs' order, so two engines' batches would deadlock
                self.db.take_write_lock(conn)
                if heard:
                    counter_events.collect(conn)
                if len(batch) > 1:
                    self.hot.start_batch(conn)  # ledger and request rows: one executemany each
                for job in batch:
                    try:
                        outcomes.append((True, job.fn(conn)))
                    except WalletError as exc:
                        outcomes.append((False, exc))
                self.hot.flush_batch(conn)
                epoch, events = self.db.stamp_counter_events(conn)
        except Exception:
            self.hot.abandon_batch(conn)
            counter_events.take(conn)  # rolled back: nothing happened
            self._drop_connection()  # start the next batch on a fresh connection
            raise
        if events and heard:  # committed: delivered before any result
            changes.append((epoch, events))
        return outcomes

    def _connection(self) -> Connection:
        """The writer's own connection, kept for its whole life (no pool round trip per
        batch); only this thread uses it."""
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.db.engine.connect()
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _deliver(
    apply: Callable[[int, list[CounterEvent]], None] | None,
    changes: list[tuple[int, list[CounterEvent]]],
    results: list[tuple[asyncio.Future[Any], bool, Any]],
) -> None:
    """On the waiting loop: the batch's counter changes first, then each job's result."""
    if apply is not None:
        for epoch, events in changes:
            apply(epoch, events)
    for future, ok, value in results:
        if future.done():  # its waiter was cancelled; the write happened anyway
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
