"""Atomic reservation and settlement, on SQLite and PostgreSQL."""

import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from aiwallet.domain.errors import BudgetExceeded, InvalidInput
from aiwallet.domain.money import BudgetSpec, Period, parse_budget_spec
from aiwallet.store import schema as t
from aiwallet.store.apps import Apps
from aiwallet.store.audit import AuditLog
from aiwallet.store.budgets import Budgets
from aiwallet.store.db import open_database
from aiwallet.store.records import RequestRecord, SpendEntry

UTCZ = ZoneInfo("UTC")
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SPEND = SpendEntry(
    "openai", "gpt-4o-mini", "models.dev:openai/gpt-4o-mini@x", {"input": 1}, "provider"
)


@pytest.fixture
def db(db_url):
    database = open_database(db_url)
    yield database
    database.dispose()


def _wallet_budget(db, spec="1/day"):
    return Budgets(db).set_budget(parse_budget_spec(spec))


def _counter(db, budget_id):
    with db.read() as conn:
        rows = conn.execute(
            select(t.budget_counters.c.spent_nano, t.budget_counters.c.reserved_nano).where(
                t.budget_counters.c.budget_id == budget_id
            )
        ).all()
    return [tuple(r) for r in rows]


def test_reserve_settle_release_arithmetic(db):
    budgets = Budgets(db)
    b = _wallet_budget(db, "1/day")
    r1 = budgets.reserve([b.id], 300_000_000, at=NOW, tz=UTCZ, request_id="r1")
    r2 = budgets.reserve([b.id], 200_000_000, at=NOW, tz=UTCZ, request_id="r2")
    assert budgets.state(b, NOW, UTCZ).remaining_nano == 500_000_000
    assert budgets.settle(r1.id, 123_456_789, SPEND, RequestRecord("r1", NOW, "chat", 200))
    assert budgets.release(r2.id)
    state = budgets.state(b, NOW, UTCZ)
    assert (state.spent_nano, state.reserved_nano) == (123_456_789, 0)
    assert state.remaining_nano == 1_000_000_000 - 123_456_789
    # settle and release are idempotent: closing twice changes nothing
    assert not budgets.settle(r1.id, 999, SPEND)
    assert not budgets.release(r1.id)
    assert not budgets.settle(r2.id, 999, SPEND)
    assert budgets.state(b, NOW, UTCZ).spent_nano == 123_456_789
    with pytest.raises(InvalidInput):
        budgets.reserve([b.id], -1, at=NOW, tz=UTCZ, request_id="neg")


def test_refusal_names_the_budget_and_reset(db):
    budgets = Budgets(db)
    b = _wallet_budget(db, "0.50/day")
    budgets.reserve([b.id], 400_000_000, at=NOW, tz=UTCZ, request_id="a")
    with pytest.raises(BudgetExceeded) as err:
        budgets.reserve([b.id], 200_000_000, at=NOW, tz=UTCZ, request_id="b")
    assert err.value.code == "budget_exceeded"
    assert "$0.10 left" in str(err.value) and "$0.50 per day" in str(err.value)
    assert err.value.reset_at == datetime(2026, 11, 23, tzinfo=UTC)


def test_all_or_nothing_across_app_and_wallet_budgets(db):
    apps = Apps(db)
    app, _ = apps.create(
        "script", key_hash="h" * 64, key_prefix="aw_app_x…", scopes=["*"], budget_spec="2/day"
    )
    budgets = Budgets(db)
    wallet = budgets.set_budget(parse_budget_spec("1/day"))
    app_budget = budgets.set_budget(parse_budget_spec("2/day"), app_id=app.id)
    ids = [b.id for b in budgets.applicable(app.id)]
    assert sorted(ids) == sorted([wallet.id, app_budget.id])
    budgets.reserve(ids, 900_000_000, at=NOW, tz=UTCZ, request_id="x", app_id=app.id)
    with pytest.raises(BudgetExceeded) as err:
        budgets.reserve(ids, 200_000_000, at=NOW, tz=UTCZ, request_id="y", app_id=app.id)
    assert "wallet's budget" in str(err.value)
    # the app budget was not touched by the refused reservation
    assert budgets.state(app_budget, NOW, UTCZ).reserved_nano == 900_000_000


def test_day_window_rolls_across_dst(db):
    berlin = ZoneInfo("Europe/Berlin")
    budgets = Budgets(db)
    b = _wallet_budget(db, "1/day")
    # 2026-03-29 is the spring-forward day in Berlin; its day ends 22:00 UTC.
    before = datetime(2026, 3, 29, 21, 59, tzinfo=UTC)
    after = datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
    r = budgets.reserve([b.id], 1_000_000_000, at=before, tz=berlin, request_id="late")
    with pytest.raises(BudgetExceeded):
        budgets.reserve([b.id], 1, at=before, tz=berlin, request_id="full")
    fresh = budgets.reserve([b.id], 1_000_000_000, at=after, tz=berlin, request_id="next-day")
    assert fresh.counter_ids != r.counter_ids
    # the old reservation settles against the window it was taken in
    budgets.settle(r.id, 10, SPEND)
    assert budgets.state(b, before, berlin).spent_nano == 10
    assert budgets.state(b, after, berlin).reserved_nano == 1_000_000_000


def test_total_budget_never_resets(db):
    budgets = Budgets(db)
    b = budgets.set_budget(BudgetSpec(5, Period.TOTAL))
    budgets.reserve([b.id], 5, at=NOW, tz=UTCZ, request_id="a")
    with pytest.raises(BudgetExceeded):
        budgets.reserve([b.id], 1, at=NOW + timedelta(days=400), tz=UTCZ, request_id="b")


def test_crash_recovery_bills_open_reservations_and_audits(db):
    budgets = Budgets(db)
    b = _wallet_budget(db, "1/day")
    first = budgets.reserve([b.id], 100, at=NOW, tz=UTCZ, request_id="a")
    budgets.reserve([b.id], 250, at=NOW, tz=UTCZ, request_id="b")
    budgets.settle(first.id, 40, SPEND)  # this one finished before the crash
    outcomes = {res.request_id: outcome for res, outcome in budgets.recover_open()}
    assert outcomes == {"b": "billed"}
    assert budgets.open_reservations() == []
    state = budgets.state(b, NOW, UTCZ)
    assert (state.spent_nano, state.reserved_nano) == (290, 0)
    with db.read() as conn:
        entry = conn.execute(select(t.ledger).where(t.ledger.c.request_id == "b")).mappings().one()
    assert entry["token_source"] == "estimated" and entry["amount_nano"] == 250
    assert [e.action for e in AuditLog(db).entries()].count("reservation.recover") == 1


def _race(db, budget_id, n, amount, results, barrier):
    budgets = Budgets(db)
    barrier.wait()
    try:
        res = budgets.reserve([budget_id], amount, at=NOW, tz=UTCZ, request_id=f"r{n}")
        results.append(res.id)
    except BudgetExceeded:
        results.append(None)


def test_200_concurrent_reservations_never_overspend(db):
    limit, amount, n = 1_000_000, 7_000, 200  # room for exactly 142 of 200
    b = Budgets(db).set_budget(BudgetSpec(limit, Period.DAY))
    results: list = []
    barrier = threading.Barrier(n)
    with ThreadPoolExecutor(max_workers=n) as pool:
        for i in range(n):
            pool.submit(_race, db, b.id, i, amount, results, barrier)
    assert len(results) == n
    granted = [r for r in results if r]
    assert len(granted) == limit // amount == 142
    spent, reserved = _counter(db, b.id)[0]
    assert spent == 0 and reserved == 142 * amount <= limit


def _process_worker(url, budget_id, start, count, amount, queue):
    from aiwallet.store.db import null_pool_database

    db = null_pool_database(url)
    budgets = Budgets(db)
    ok = 0
    for i in range(count):
        try:
            res = budgets.reserve([budget_id], amount, at=NOW, tz=UTCZ, request_id=f"p{start + i}")
            budgets.settle(res.id, amount, SPEND)
            ok += 1
        except BudgetExceeded:
            pass
    db.dispose()
    queue.put(ok)


@pytest.mark.parametrize("processes", [2, 4])
def test_separate_processes_sharing_one_ledger_never_overspend(db, db_url, processes):
    limit, amount, per_process = 1_000_000, 9_000, 60  # room for 111 of 240
    b = Budgets(db).set_budget(BudgetSpec(limit, Period.DAY))
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=_process_worker, args=(db_url, b.id, i * 1000, per_process, amount, queue)
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    oks = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    total = sum(oks)
    assert total == min(limit // amount, processes * per_process)
    spent, reserved = _counter(db, b.id)[0]
    assert (spent, reserved) == (total * amount, 0)
    assert spent <= limit


def test_concurrent_reserve_and_settle_on_two_budgets_do_not_deadlock(db):
    """Regression: settle once locked counters in a different order than reserve, and
    PostgreSQL aborted transactions with 'deadlock detected' under concurrency."""
    apps = Apps(db)
    app, _ = apps.create(
        "busy", key_hash="b" * 64, key_prefix="aw_app_b…", scopes=["*"], budget_spec=None
    )
    budgets = Budgets(db)
    budgets.set_budget(parse_budget_spec("1000/day"), app_id=app.id)  # app budget: lower id
    budgets.set_budget(parse_budget_spec("1000/day"))
    ids = [b.id for b in budgets.applicable(app.id)]
    errors: list = []

    def work(n):
        try:
            for i in range(25):
                r = budgets.reserve(
                    ids, 1_000, at=NOW, tz=UTCZ, request_id=f"{n}-{i}", app_id=app.id
                )
                budgets.settle(r.id, 700, SPEND)
        except Exception as exc:  # any failure is the bug
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    for b in budgets.applicable(app.id):
        state = budgets.state(b, NOW, UTCZ)
        assert (state.spent_nano, state.reserved_nano) == (8 * 25 * 700, 0)
