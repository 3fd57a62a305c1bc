"""Budget counters in memory: reservations granted without waiting for a commit.

Where the ledger is SQLite and this engine is its only writer (store/writer_lock.py holds the
lock), the counters this engine keeps are the authority: a reservation is checked and taken
here, on the event loop, in one step no other request can interleave with (the loop runs one
callback at a time), for every budget at once or none. Then it is appended to the reservation
journal (store/reservation_journal.py: one ``write(2)``, durable against a crash of this
process) and handed to the group-commit writer, and the request goes on without waiting for
that commit. Settlements still wait for theirs (invariant 3: durable before the last byte).

What a counter holds here is what the database holds plus the grants the writer has not yet
recorded. Room comes back only once the database says so: settlements, releases and refunds
(made by the writer, or by anything else in this process, e.g. the payment reconciler) reach
:meth:`LiveBudgets.apply` after their commit (store/counter_events.py), so a grant is never
made from room a crash could still take back. A counter is read from the database the first
time a window of a budget is used (off the loop, once per window).

PostgreSQL ledgers, which several wallets may share, keep the database's conditional update
(store/budgets.py): no process's memory could know the others' grants.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future as ThreadFuture
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, TypeVar

from aiwallet.domain.errors import NotFound
from aiwallet.domain.money import Period
from aiwallet.domain.windows import Window, window_for
from aiwallet.engine.writer import BatchWriter
from aiwallet.store.budgets import BudgetRefused, Budgets, counter_key
from aiwallet.store.counter_events import CounterEvent
from aiwallet.store.records import Budget, Reservation, SpendEntry
from aiwallet.store.reservation_journal import Granted, Grown, ReservationJournal

log = logging.getLogger(__name__)


def _budget_id(b: Budget) -> int:
    return b.id


T = TypeVar("T")
Key = tuple[int, str]  # (budget id, counter key)


@dataclass(slots=True)
class _Counter:
    used: int  # spent + reserved: committed, plus grants not yet recorded
    counter_id: int | None
    epoch: int  # the counter events its read from the database already includes


@dataclass(slots=True)
class _Open:
    amount: int
    parts: tuple[tuple[Budget, Key, datetime | None], ...]  # (budget, key, window end)


class LiveBudgets:
    def __init__(
        self,
        budgets: Budgets,
        writer: BatchWriter,
        journal: ReservationJournal | None,
        read: Callable[..., Coroutine[Any, Any, Any]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        """``read(fn, *args)`` runs blocking store reads off the loop; ``journal`` None: a
        ledger that cannot outlive the process (SQLite in memory)."""
        self._budgets = budgets
        self._writer = writer
        self._journal = journal
        self._read = read
        self._loop = loop
        self._counters: dict[Key, _Counter] = {}
        self._by_id: dict[int, Key] = {}
        self._open: dict[str, _Open] = {}
        self._loading: dict[Key, asyncio.Future[None]] = {}
        self._windows: dict[tuple[Period, tzinfo], tuple[Window, str]] = {}
        self._keep_journal = False  # a grant failed to record: the next start replays it

    # -- granting (on the loop) --------------------------------------------------------
    async def reserve(
        self,
        held: Sequence[Budget],
        amount_nano: int,
        *,
        at: datetime,
        tz: tzinfo,
        request_id: str,
        app_id: int | None,
        priced: SpendEntry | None,
    ) -> Reservation:
        """Grant ``amount_nano`` on every budget of ``held`` or raise :class:`BudgetRefused`;
        on disk (the journal) on return, in the database soon after."""
        res, _ = await self._grant(
            held, amount_nano, at=at, tz=tz, request_id=request_id, app_id=app_id, priced=priced
        )
        return res

    async def _grant(
        self,
        held: Sequence[Budget],
        amount_nano: int,
        *,
        at: datetime,
        tz: tzinfo,
        request_id: str,
        app_id: int | None,
        priced: SpendEntry | None,
    ) -> tuple[Reservation, asyncio.Future[dict[int, int]]]:
        parts = []
        for b in sorted(held, key=_budget_id):
            window, ckey = self._window(b, at, tz)
            parts.append((b, (b.id, ckey), window.end))
        missing = [key for _, key, _ in parts if key not in self._counters]
        if missing:
            await self._load(missing)
        # from here to the hand-off nothing awaits: the check and the take are one step
        remaining: int | None = None
        for b, key, end in parts:
            used = self._counters[key].used
            if used + amount_nano > b.amount_nano:
                raise BudgetRefused(b, b.amount_nano - used, end)
            left = b.amount_nano - used - amount_nano  # what is left once this is taken
            remaining = left if remaining is None else min(remaining, left)
        for _, key, _ in parts:
            self._counters[key].used += amount_nano
        granted = Granted(
            id=os.urandom(16).hex(),
            request_id=request_id,
            app_id=app_id,
            amount_nano=amount_nano,
            created_at=datetime.now(UTC),
            parts=tuple((b.id, key[1], end) for b, key, end in parts),
            provider=priced.provider if priced else None,
            model=priced.model if priced else None,
            price_row_ref=priced.price_row_ref if priced else None,
        )
        try:
            self._append(granted)
        except OSError:
            for _, key, _ in parts:
                self._counters[key].used -= amount_nano
            raise
        self._open[granted.id] = _Open(amount_nano, tuple(parts))
        budgets = self._budgets
        # the journal holds the grant: its row may wait a moment to share a commit
        recorded = self._writer.submit_nowait(
            lambda conn: budgets.record_in(conn, granted), lazy=True
        )
        recorded.add_done_callback(lambda f: self._recorded(f, tuple(k for _, k, _ in parts)))
        res = Reservation(
            granted.id, request_id, app_id, amount_nano, (), granted.created_at,
            remaining_nano=remaining, provider=granted.provider, model=granted.model,
            price_row_ref=granted.price_row_ref,
        )  # fmt: skip
        return res, recorded

    async def grow(self, res: Reservation, extra_nano: int) -> Reservation:
        """Take ``extra_nano`` more for an open grant on all its budgets, or refuse."""
        if extra_nano <= 0:
            return res
        entry = self._open.get(res.id)
        if entry is None:
            raise NotFound(f"reservation {res.id} is no longer open")
        for b, key, end in entry.parts:
            used = self._counters[key].used
            if used + extra_nano > b.amount_nano:
                raise BudgetRefused(b, b.amount_nano - used, end)
        for _, key, _ in entry.parts:
            self._counters[key].used += extra_nano
        entry.amount += extra_nano
        self._append(Grown(res.id, entry.amount))
        budgets, total = self._budgets, entry.amount
        await self._writer.submit(lambda conn: budgets.grow_granted_in(conn, res.id, total))
        left = None if res.remaining_nano is None else res.remaining_nano - extra_nano
        return replace(res, amount_nano=total, remaining_nano=left)

    def remaining(self, held: Sequence[Budget], at: datetime, tz: tzinfo) -> list[int]:
        """What each budget of ``held`` has left in its window as this engine sees it (a
        window not read yet: not known here, left out)."""
        out = []
        for b in held:
            c = self._counters.get((b.id, counter_key(b, window_for(b.period, at, tz))))
            if c is not None:
                out.append(b.amount_nano - c.used)
        return out

    def in_flight(self, budget: Budget, at: datetime, tz: tzinfo) -> tuple[int, int]:
        """(grants open, nano-dollars they hold) on ``budget``'s current window."""
        key = (budget.id, counter_key(budget, window_for(budget.period, at, tz)))
        held = [o.amount for o in self._open.values() if any(k == key for _, k, _ in o.parts)]
        return len(held), sum(held)

    def forget_idle(self) -> None:
        """Drop every counter no open grant holds: the database has all of it committed (room
        comes back here only after a commit), so the next use reads it again, exactly. After
        a budget change that keeps memory from outliving a removed budget (SQLite may give a
        new one the same id)."""
        held = {key for o in self._open.values() for _, key, _ in o.parts}
        for key in [k for k in self._counters if k not in held and k not in self._loading]:
            c = self._counters.pop(key)
            if c.counter_id is not None:
                self._by_id.pop(c.counter_id, None)

    # -- what the database says (after each commit) --------------------------------------
    def listener(self, epoch: int, events: list[CounterEvent]) -> None:
        """``Database.counter_listener``: called on the committing thread."""
        if self._loop.is_closed():
            return
        self._loop.call_soon_threadsafe(self.apply, epoch, events)

    def apply(self, epoch: int, events: Sequence[CounterEvent]) -> None:
        for ev in events:
            entry = self._open.pop(ev.reservation_id, None) if ev.reservation_id else None
            if entry is not None:  # a grant of this engine: its counters were read before it
                for _, key, _ in entry.parts:
                    self._counters[key].used += ev.delta_nano
                continue
            # not granted here (an earlier life's, a refund): by counter id, unless the
            # counter was read from the database after this commit (the read has it)
            for cid in ev.counter_ids:
                found = self._by_id.get(cid)
                c = self._counters.get(found) if found is not None else None
                if c is not None and epoch > c.epoch:
                    c.used += ev.delta_nano

    # -- blocking callers in this process (a top-up) ------------------------------------
    def reserve_blocking(
        self,
        budget_ids: Sequence[int],
        amount_nano: int,
        *,
        at: datetime,
        tz: tzinfo,
        request_id: str,
        app_id: int | None = None,
        priced: SpendEntry | None = None,
    ) -> Reservation:
        """``Budgets.live_reserve``: a grant for a thread other than the loop's, returned
        once recorded (the caller goes on in the database with it)."""

        async def grant() -> Reservation:
            held = await self._read(self._budgets.by_ids, list(budget_ids))
            res, recorded = await self._grant(
                held, amount_nano, at=at, tz=tz, request_id=request_id, app_id=app_id,
                priced=priced,
            )  # fmt: skip
            ids = await asyncio.shield(recorded)  # committed: the caller goes on in the database
            return replace(res, counter_ids=tuple(ids[b.id] for b in held if b.id in ids))

        future: ThreadFuture[Reservation] = asyncio.run_coroutine_threadsafe(grant(), self._loop)
        return future.result(60)

    # -- internals ------------------------------------------------------------------------
    def _window(self, budget: Budget, at: datetime, tz: tzinfo) -> tuple[Window, str]:
        """``budget``'s window at ``at`` and its counter key, worked out once per window."""
        cached = self._windows.get((budget.period, tz))
        if cached is not None and cached[0].contains(at):
            return cached
        window = window_for(budget.period, at, tz)
        found = self._windows[(budget.period, tz)] = (window, counter_key(budget, window))
        return found

    async def _load(self, keys: list[Key]) -> None:
        waits = [self._loading[k] for k in keys if k in self._loading]
        todo = [k for k in keys if k not in self._loading]
        if todo:
            done: asyncio.Future[None] = self._loop.create_future()
            for k in todo:
                self._loading[k] = done
            try:
                epoch, found = await self._read(self._budgets.counters_now, todo)
                for k, (cid, used) in zip(todo, found, strict=True):
                    self._counters.setdefault(k, _Counter(used, cid, epoch))
                    if cid is not None:
                        self._by_id[cid] = k
                done.set_result(None)
            except BaseException as exc:
                done.set_exception(exc)
                done.exception()  # retrieved: each waiter re-raises its own
                raise
            finally:
                for k in todo:
                    self._loading.pop(k, None)
        for w in waits:
            await w

    def _recorded(self, future: asyncio.Future[dict[int, int]], keys: tuple[Key, ...]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            self._keep_journal = True
            log.error("a granted reservation could not be recorded (the journal keeps it): %s", exc)
            return
        ids = future.result()
        for key in keys:
            cid = ids.get(key[0])
            if cid is None:
                continue
            c = self._counters.get(key)
            if c is not None and c.counter_id is None:
                c.counter_id = cid
            self._by_id[cid] = key

    def _append(self, entry: Granted | Grown) -> None:
        if self._journal is None:
            return
        rolled = self._journal.append(entry)
        if rolled is not None:
            barrier = self._writer.submit_nowait(lambda conn: None)
            barrier.add_done_callback(lambda f: self._segment_done(f, rolled))

    def _segment_done(self, future: asyncio.Future[None], segment: Path) -> None:
        """Every grant in ``segment`` is committed (the barrier after them is)."""
        if future.cancelled() or future.exception() is not None or self._keep_journal:
            return
        segment.unlink(missing_ok=True)

    def close(self) -> None:
        """After the writer has drained: every grant is recorded, the journal can go."""
        if self._journal is not None:
            if self._keep_journal:
                self._journal.close()
            else:
                self._journal.remove_all()
