"""The engine's group-commit writer on both databases: many jobs, one transaction, exact."""

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from aiwallet.domain.errors import BudgetExceeded
from aiwallet.domain.money import BudgetSpec, Period
from aiwallet.engine.writer import BatchWriter
from aiwallet.store import schema as t
from aiwallet.store.budgets import Budgets
from aiwallet.store.db import open_database
from aiwallet.store.records import RequestRecord, SpendEntry

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SPEND = SpendEntry("openai", "gpt-4o-mini", "ref", {"input": 1}, "provider")


def test_batches_reserve_settle_and_refuse_exactly(db_url):
    db = open_database(db_url)
    budgets = Budgets(db)
    b = budgets.set_budget(BudgetSpec(10_000, Period.DAY))
    writer = BatchWriter(db, budgets.hot).start()
    tz = ZoneInfo("UTC")

    async def one(i):
        try:
            res = await writer.submit(
                lambda conn: budgets.reserve_in(
                    conn, [b.id], 700, at=NOW, tz=tz, request_id=f"r{i}", known=[b]
                )
            )
        except BudgetExceeded:
            return "refused"
        record = RequestRecord(
            f"r{i}", NOW, "/v1/chat/completions", 200, cost_nano=300, stream=i % 2 == 0
        )
        await writer.submit(lambda conn: budgets.settle_in(conn, res.id, 300, SPEND, record))
        return "ok"

    async def main():
        return await asyncio.gather(*(one(i) for i in range(40)))

    try:
        results = asyncio.run(main())
    finally:
        writer.close()
    ok = results.count("ok")
    assert (
        ok >= 14 and "refused" in results
    )  # 10,000 / 700 = 14 fit at once; settled ones free room
    assert writer.batches < writer.jobs  # jobs really shared transactions
    state = budgets.state(b, NOW, tz)
    assert (state.spent_nano, state.reserved_nano) == (ok * 300, 0)
    with db.read() as conn:
        ledger = conn.execute(select(t.ledger.c.request_id, t.ledger.c.price_row)).all()
        requests = conn.execute(select(t.requests.c.id, t.requests.c.stream, t.requests.c.ts)).all()
    assert len(ledger) == len(requests) == ok
    assert all(row.price_row == {"input": 1} for row in ledger)
    assert all(row.ts == NOW for row in requests)
    assert {row.stream for row in requests} <= {True, False}
    db.dispose()


@pytest.mark.parametrize("n", [1, 3])
def test_a_failing_job_fails_alone(db_url, n):
    db = open_database(db_url)
    budgets = Budgets(db)
    writer = BatchWriter(db, budgets.hot).start()

    async def main():
        bad = writer.submit(lambda conn: budgets.settle_in(conn, "no-such-reservation", 1, SPEND))
        good = [writer.submit(lambda conn: 42) for _ in range(n)]
        return await asyncio.gather(bad, *good, return_exceptions=True)

    try:
        bad, *good = asyncio.run(main())
    finally:
        writer.close()
    assert type(bad).__name__ == "NotFound" and good == [42] * n
    db.dispose()


def test_a_batch_wakes_its_loop_once_and_answers_every_job(tmp_path):
    """Forty jobs queued behind one that holds the writer share a transaction and one
    wake-up of the waiting loop; each still gets its own result, and a cancelled waiter's
    write still happens."""
    import threading

    db = open_database(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    budgets = Budgets(db)
    writer = BatchWriter(db, budgets.hot).start()
    hold, holding = threading.Event(), threading.Event()
    wakes: list[int] = []

    async def main():
        loop = asyncio.get_running_loop()
        real = loop.call_soon_threadsafe

        def counting(cb, *args, **kw):
            if getattr(cb, "__module__", "") == BatchWriter.__module__:  # the writer's wake-ups
                wakes.append(len(args[2]))  # (apply, counter changes, results)
            return real(cb, *args, **kw)

        loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
        first = writer.submit_nowait(lambda conn: (holding.set(), hold.wait(30)))
        assert await asyncio.to_thread(holding.wait, 30)
        rest = [writer.submit_nowait(lambda conn, i=i: i) for i in range(40)]
        rest[7].cancel()
        hold.set()
        await first
        return await asyncio.gather(*rest, return_exceptions=True)

    try:
        results = asyncio.run(main())
    finally:
        writer.close()
    assert results[:7] + results[8:] == [i for i in range(40) if i != 7]
    assert isinstance(results[7], asyncio.CancelledError)
    assert wakes[0] == 1 and sum(wakes) == 41  # the holder alone, then the rest together
    assert len(wakes) == 2
    db.dispose()


def test_a_lazy_job_rides_with_the_next_awaited_one_or_goes_alone(tmp_path):
    """A grant the journal holds (lazy) waits for an awaited job and shares its commit, in
    the order submitted; with no company it is still written, on its own."""
    db = open_database(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    writer = BatchWriter(db, Budgets(db).hot).start()
    order: list[str] = []

    async def main():
        alone = writer.submit_nowait(lambda conn: order.append("alone"), lazy=True)
        await alone  # nobody else came: written after LAZY_S
        batches = writer.batches
        lazy = writer.submit_nowait(lambda conn: order.append("lazy"), lazy=True)
        await writer.submit(lambda conn: order.append("awaited"))  # before its timer can fire
        assert lazy.done()
        return writer.batches - batches

    try:
        shared = asyncio.run(main())
    finally:
        writer.close()
    assert order == ["alone", "lazy", "awaited"] and shared == 1
    db.dispose()
