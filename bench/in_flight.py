"""What explaining a budget refusal costs: ``Budgets.in_flight`` next to a plain reserve.

    .venv/bin/python bench/in_flight.py [--open 0,64,1000] [--rounds 300]

The 402 for a budget held by requests in flight names how many hold how much; that takes one
read of the counter and of the open reservations (the requests in flight), on the refusal
path only. This prints, in the same run on SQLite, the p50 / p95 of ``in_flight`` with N open
reservations on the budget, next to one reserve + release (the work every served request
does), so the two compare like with like. Bounded: ``--rounds`` calls per figure.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from aiwallet.domain.money import BudgetSpec, Period
from aiwallet.store.apps import Apps
from aiwallet.store.budgets import Budgets
from aiwallet.store.db import open_database

UTCZ = ZoneInfo("UTC")


def _ms(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=20)
    return f"p50 {statistics.median(samples) * 1e3:.3f} ms, p95 {q[18] * 1e3:.3f} ms"


def run(open_count: int, rounds: int) -> tuple[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        db = open_database(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        try:
            budgets = Budgets(db)
            app, _ = Apps(db).create(
                "bench", key_hash=uuid.uuid4().hex * 2, key_prefix="aw_app_b…", scopes=["*"],
                budget_spec=None,
            )  # fmt: skip
            wallet = budgets.set_budget(BudgetSpec(10**15, Period.DAY))
            own = budgets.set_budget(BudgetSpec(10**15, Period.DAY), app_id=app.id)
            assert wallet is not None and own is not None
            ids = [wallet.id, own.id]
            now = datetime.now(UTC)
            for i in range(open_count):
                budgets.reserve(ids, 1000, at=now, tz=UTCZ, request_id=f"o{i}", app_id=app.id)
            explain: list[float] = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                held = budgets.in_flight(own, now, UTCZ)
                explain.append(time.perf_counter() - t0)
            assert held.requests == open_count
            plain: list[float] = []
            for i in range(rounds):
                t0 = time.perf_counter()
                res = budgets.reserve(ids, 1000, at=now, tz=UTCZ, request_id=f"r{i}", app_id=app.id)
                budgets.release(res.id)
                plain.append(time.perf_counter() - t0)
            return _ms(explain), _ms(plain)
        finally:
            db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--open", default="0,64,1000")
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()
    rounds = max(20, min(args.rounds, 10_000))
    print("| open reservations | in_flight (refusal only) | reserve + release (every request) |")
    print("|---|---|---|")
    for n in (int(x) for x in args.open.split(",")):
        explain, plain = run(min(n, 100_000), rounds)
        print(f"| {n} | {explain} | {plain} |")


if __name__ == "__main__":
    main()
