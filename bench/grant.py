"""What a reservation costs the request path: the database's conditional update behind the
group-commit writer (waited for) vs the live counters (engine/live_budgets.py: checked in
memory, journaled, recorded by the writer without a wait).

    .venv/bin/python bench/grant.py [--seconds 5] [--concurrency 1,32]

One asyncio loop (uvloop when installed, as the engine), a real BatchWriter on a SQLite file
with a wallet and an app budget, and N tasks each doing reserve → settle (ledger row) in a
loop, bounded in count and time. Prints, per mode and concurrency, the time a task waits for
its reservation (p50/p99, µs) and reserve+settle pairs per second; both modes in the same run,
alternated, so the figures compare like with like.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiwallet.domain.money import BudgetSpec, Period
from aiwallet.engine.live_budgets import LiveBudgets
from aiwallet.engine.writer import BatchWriter
from aiwallet.store.apps import Apps
from aiwallet.store.budgets import Budgets
from aiwallet.store.db import open_database
from aiwallet.store.records import SpendEntry
from aiwallet.store.reservation_journal import ReservationJournal

MAX_OPS = 100_000
SPEND = SpendEntry("openai", "gpt-4o-mini", "models.dev:openai/gpt-4o-mini@bench", None, "provider")
TZ = ZoneInfo("UTC")


async def run(mode: str, tmp: Path, seconds: float, concurrency: int) -> dict[str, float]:
    db = open_database(f"sqlite:///{tmp / f'{mode}-{concurrency}.sqlite3'}")
    budgets = Budgets(db)
    app, _ = Apps(db).create(
        "bench", key_hash=uuid.uuid4().hex, key_prefix="aw-bench", scopes=["*"], budget_spec=None
    )
    wallet_b = budgets.set_budget(BudgetSpec(10**15, Period.DAY))
    app_b = budgets.set_budget(BudgetSpec(10**15, Period.DAY), app_id=app.id)
    assert wallet_b is not None and app_b is not None
    held = (wallet_b, app_b)
    writer = BatchWriter(db, budgets.hot).start()
    pool = ThreadPoolExecutor(2)
    loop = asyncio.get_running_loop()

    async def read(fn: Any, *args: Any) -> Any:
        return await loop.run_in_executor(pool, fn, *args)

    live = None
    if mode == "live":
        journal = ReservationJournal(tmp / f"grants-{concurrency}")
        journal.open()
        live = LiveBudgets(budgets, writer, journal, read, loop)
        db.counter_listener = live.listener
    waits: list[float] = []
    done = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline and done < MAX_OPS:
            now = datetime.now(UTC)
            rid = uuid.uuid4().hex
            t0 = time.perf_counter()
            if live is not None:
                res = await live.reserve(held, 1000, at=now, tz=TZ, request_id=rid,
                                         app_id=app.id, priced=SPEND)  # fmt: skip
            else:
                res = await writer.submit(
                    lambda conn, rid=rid, now=now: budgets.reserve_in(
                        conn,
                        [b.id for b in held],
                        1000,
                        at=now,
                        tz=TZ,
                        request_id=rid,
                        app_id=app.id,
                        known=held,
                        priced=SPEND,
                    )
                )
            waits.append(time.perf_counter() - t0)
            await writer.submit(lambda conn, res=res: budgets.settle_in(conn, res.id, 700, SPEND))
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t0
    await writer.submit(lambda conn: None)
    writer.close()
    pool.shutdown()
    if live is not None:
        assert live._open == {}, "every grant settled"
        live.close()
    db.dispose()
    q = statistics.quantiles(waits, n=100)
    return {"p50_us": q[49] * 1e6, "p99_us": q[98] * 1e6, "pairs_s": done / elapsed}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", default="1,32")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        for _ in range(args.rounds):
            for c in (int(x) for x in args.concurrency.split(",")):
                for mode in ("database", "live"):
                    r = asyncio.run(run(mode, tmp, args.seconds, c))
                    results.setdefault((mode, c), []).append(r)
    print(f"{'mode':<10} {'tasks':>5} {'reserve wait p50 µs':>20} {'p99 µs':>9} {'pairs/s':>9}")
    for (mode, c), rs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(
            f"{mode:<10} {c:>5} {med['p50_us']:>20.1f} {med['p99_us']:>9.1f} {med['pairs_s']:>9.0f}"
        )


if __name__ == "__main__":
    sys.exit(main())
