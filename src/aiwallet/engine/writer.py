"""Group commit: the engine's store writes run on one thread, many to a transaction.

Every reservation and settlement must be committed before the engine goes on (a reservation
before forwarding, a settlement before the last byte), so each waits for a commit. One commit
per request pair capped the engine at a few hundred requests/s; here the writer thread takes
whatever writes are waiting (up to ``max_batch``), runs each inside its own SAVEPOINT (so a
refused reservation rolls back alone), commits once, and only then answers each waiter.
Durability is unchanged: no caller hears "done" before its write is committed.

On PostgreSQL several engines may share the database (one ledger, several wallets): each
batch holds a transaction-scoped advisory lock, so their writers' batches never interleave
(which deadlocked them on the budget counter rows, each batch locking in its jobs' order).
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
BATCH_LOCK = 8403  # PostgreSQL advisory lock of a write batch (8402: the migrations')


class BatchWriter:
    def __init__(self, db: Database, hot: HotStatements, *, max_batch: int = 128) -> None:
        self.db = db
        self.hot = hot
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Job | object] = queue.SimpleQueue()
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

    def submit_nowait(self, fn: Callable[[Connection], T]) -> asyncio.Future[T]:
        """Queue ``fn(conn)`` for the next transaction; the future resolves once it committed.
        The write happens whether or not anyone still awaits the future."""
        assert self._thread is not None, "BatchWriter.start() first"
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(fn, future, loop))
        return future

    def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join(30)
        self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                self._drop_connection()
                return
            batch: list[_Job] = [first]  # type: ignore[list-item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)  # type: ignore[arg-type]
            self._commit(batch)
            if stop:
                self._drop_connection()
                return

    def _commit(self, batch: list[_Job]) -> None:
        """One transaction for the batch. A job that fails with a WalletError (a refused
        reservation, an already-closed one) left nothing behind and fails alone; anything else
        rolls the batch back, and then every job runs again in a transaction of its own."""
        try:
            outcomes = self._run_batch(batch)
        except Exception:
            log.exception("a write batch of %d failed; retrying its jobs one by one", len(batch))
            outcomes = []
            for job in batch:
                try:
                    outcomes.extend(self._run_batch([job]))
                except Exception as exc:
                    outcomes.append((False, exc))
        self.batches += 1
        self.jobs += len(batch)
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            job.loop.call_soon_threadsafe(_resolve, job.future, ok, value)

    def _run_batch(self, batch: list[_Job]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        conn = self._connection()
        listener = self.db.counter_listener
        epoch, events = 0, list[CounterEvent]()
        try:
            with conn.begin():
                if self.db.is_postgres:
                    # engines sharing the database take turns: a batch locks many counter
                    # rows in its jobs' order, so two engines' batches would deadlock
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({BATCH_LOCK})")
                if listener is not None:
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
        if events and listener is not None:  # committed; told before any waiter hears
            listener(epoch, events)
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


def _resolve(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
