"""Reservation + settlement throughput of the ledger store, SQLite vs PostgreSQL.

    .venv/bin/python bench/reserve.py [--seconds 5] [--threads 1,8]

Each backend also runs once without what migration 0003 added for the charts (the hourly
spend rollup trigger on SQLite, the covering ledger index on PostgreSQL): the cost of
fast charts on the write path, measured in the same run.

Each run: a wallet budget and an app budget, then reserve → settle (ledger + request row)
in a loop for a bounded time and count. Prints ops/s and per-op latency percentiles for
each backend in the same run, so the figures compare like with like. PostgreSQL is a
throw-away server started here on loopback (tests/pgserver.py).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from sqlalchemy import text

from aiwallet.domain.money import BudgetSpec, Period
from aiwallet.store.apps import Apps
from aiwallet.store.budgets import Budgets
from aiwallet.store.db import open_database
from aiwallet.store.records import RequestRecord, SpendEntry
from pgserver import PgServer, start_pg_server

MAX_OPS = 200_000
SPEND = SpendEntry("openai", "gpt-4o-mini", "models.dev:openai/gpt-4o-mini@bench", None, "provider")


WITHOUT_CHART_AIDS = {
    "sqlite": "DROP TRIGGER IF EXISTS ledger_spend_hourly",
    "postgresql": "DROP INDEX IF EXISTS ix_ledger_spend_cover",
}


def run(url: str, seconds: float, threads: int, strip: str | None = None) -> dict[str, float]:
    db = open_database(url)
    if strip:
        with db.begin() as conn:
            conn.execute(text(strip))
    budgets = Budgets(db)
    app, _ = Apps(db).create(
        f"bench-{uuid.uuid4().hex[:6]}", key_hash=uuid.uuid4().hex * 2, key_prefix="aw_app_b…",
        scopes=["*"], budget_spec=None,
    )  # fmt: skip
    budgets.set_budget(BudgetSpec(10**15, Period.DAY))
    budgets.set_budget(BudgetSpec(10**15, Period.DAY), app_id=app.id)
    ids = [b.id for b in budgets.applicable(app.id)]
    tz = ZoneInfo("UTC")
    latencies: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds
    count = 0

    def worker() -> None:
        nonlocal count
        local: list[float] = []
        while time.monotonic() < deadline:
            with lock:
                if count >= MAX_OPS:
                    break
                count += 1
            t0 = time.perf_counter()
            rid = uuid.uuid4().hex
            now = datetime.now(UTC)
            res = budgets.reserve(ids, 1_000_000, at=now, tz=tz, request_id=rid, app_id=app.id)
            budgets.settle(
                res.id, 123_456, SPEND, RequestRecord(rid, now, "chat", 200, app_id=app.id)
            )
            local.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(local)

    started = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    elapsed = time.monotonic() - started
    db.dispose()
    q = statistics.quantiles(latencies, n=100)
    return {
        "ops": len(latencies),
        "ops_per_s": len(latencies) / elapsed,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", default="1,8")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aiwallet-bench-"))
    backends: list[tuple[str, str, str | None]] = [
        ("sqlite", f"sqlite:///{tmp / 'bench.sqlite3'}", None),
        ("sqlite -rollup", f"sqlite:///{tmp / 'plain.sqlite3'}", WITHOUT_CHART_AIDS["sqlite"]),
    ]
    server = start_pg_server()
    if isinstance(server, PgServer):
        backends.append(("postgresql", server.create_database(), None))
        backends.append(
            ("postgres -cover", server.create_database(), WITHOUT_CHART_AIDS["postgresql"])
        )
    else:
        print(f"(PostgreSQL skipped: {server})")
    try:
        print(f"{'backend':<16} {'threads':>7} {'ops':>7} {'ops/s':>8} {'p50 ms':>7} {'p99 ms':>7}")
        for name, url, strip in backends:
            for threads in (int(x) for x in args.threads.split(",")):
                r = run(url, args.seconds, threads, strip)
                print(
                    f"{name:<16} {threads:>7} {r['ops']:>7.0f} {r['ops_per_s']:>8.0f} "
                    f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f}"
                )
    finally:
        if isinstance(server, PgServer):
            server.stop()


if __name__ == "__main__":
    main()
