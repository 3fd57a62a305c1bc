"""The store's part of x402 payments, on SQLite and PostgreSQL: a reservation grown to what
a router asks (all budgets or none, racing threads never past the limit), a payment billed
once per signature, a refund of one that never landed, and the payments table's rules."""

import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import IntegrityError

from aiwallet.domain.money import parse_budget_spec
from aiwallet.store.apps import Apps
from aiwallet.store.budgets import BudgetRefused, Budgets
from aiwallet.store.db import open_database
from aiwallet.store.payments import PaymentRecord, Payments, bill_in

UTCZ = ZoneInfo("UTC")
NOW = datetime.now(UTC)


@pytest.fixture
def db(db_url):
    database = open_database(db_url)
    yield database
    database.dispose()


def _payment(n: int, request_id: str, amount_atomic: int = 10_000) -> PaymentRecord:
    return PaymentRecord(
        id=f"00000000-0000-0000-0000-{n:012d}",
        kind="request",
        request_id=request_id,
        app_id=None,
        provider="router",
        payee="Payee1111111111111111111111111111111111111",
        network="solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
        asset="4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
        amount_atomic=amount_atomic,
        amount_nano=amount_atomic * 1000,
        payer="Payer111111111111111111111111111111111111111",
        payer_signature=f"sig{n}",
        blockhash="Hash11111111111111111111111111111111111111",
        created_at=NOW,
    )


def _spent(db, budgets: Budgets, budget) -> tuple[int, int]:
    state = budgets.state(budget, datetime.now(UTC), UTCZ)
    return state.spent_nano, state.reserved_nano


def test_a_reservation_grows_on_every_budget_or_none(db):
    budgets, apps = Budgets(db), Apps(db)
    wallet = budgets.set_budget(parse_budget_spec("1/day"))
    app, _ = apps.create("a", key_hash="h" * 64, key_prefix="aw_a", scopes=["*"], budget_spec=None)
    app_budget = budgets.set_budget(parse_budget_spec("0.01/day"), app_id=app.id)
    ids = sorted([wallet.id, app_budget.id])
    res = budgets.reserve(ids, 1_000_000, at=NOW, tz=UTCZ, request_id="r1", app_id=app.id)
    with db.begin() as conn:
        grown = budgets.grow_in(conn, res, 8_000_000)
    assert grown.amount_nano == 9_000_000
    assert _spent(db, budgets, app_budget) == (0, 9_000_000)
    assert _spent(db, budgets, wallet) == (0, 9_000_000)
    with pytest.raises(BudgetRefused) as refused, db.begin() as conn:
        budgets.grow_in(conn, grown, 1_000_001)  # one nano over the app's $0.01
    assert refused.value.budget.id == app_budget.id
    # the wallet's counter, taken first, was given back: nothing half-grown
    assert _spent(db, budgets, wallet) == (0, 9_000_000)
    assert _spent(db, budgets, app_budget) == (0, 9_000_000)
    assert budgets.settle(grown.id, 9_000_000, _spend())
    assert _spent(db, budgets, app_budget) == (9_000_000, 0)


def _spend():
    from aiwallet.store.records import SpendEntry

    return SpendEntry("router", "m", "x402:test", None, "x402")


def test_racing_growths_never_pass_the_limit(db):
    budgets = Budgets(db)
    wallet = budgets.set_budget(parse_budget_spec("0.01/day"))
    reservations = [
        budgets.reserve([wallet.id], 0, at=NOW, tz=UTCZ, request_id=f"r{i}") for i in range(40)
    ]
    won: list[int] = []
    lock = threading.Lock()

    def grow(res) -> None:
        try:
            with db.begin() as conn:
                budgets.grow_in(conn, res, 1_000_000)  # $0.001 each: ten fit
        except BudgetRefused:
            return
        with lock:
            won.append(1)

    threads = [threading.Thread(target=grow, args=(r,)) for r in reservations]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert len(won) == 10
    assert _spent(db, budgets, wallet) == (0, 10_000_000)


def test_a_payment_is_billed_once_and_its_signature_is_unique(db):
    budgets, payments = Budgets(db), Payments(db)
    wallet = budgets.set_budget(parse_budget_spec("1/day"))
    budgets.reserve([wallet.id], 10_000_000, at=NOW, tz=UTCZ, request_id="r1")
    p = _payment(1, "r1")
    payments.add(p)
    with db.begin() as conn:
        assert bill_in(conn, budgets, payments, p, state="settled", tx_signature="tx1", note="n")
    with db.begin() as conn:  # again: nothing open any more
        assert not bill_in(conn, budgets, payments, p, state="settled", tx_signature="tx1", note="")
    got = payments.get(p.id)
    assert (got.state, got.tx_signature, got.billed) == ("settled", "tx1", True)
    assert _spent(db, budgets, wallet) == (10_000_000, 0)
    # a second payment cannot claim the same transaction
    budgets.reserve([wallet.id], 10_000_000, at=NOW, tz=UTCZ, request_id="r2")
    q = _payment(2, "r2")
    payments.add(q)
    with pytest.raises(IntegrityError), db.begin() as conn:
        payments.finish_in(conn, q.id, "settled", tx_signature="tx1")
    same_sig = PaymentRecord(**{**_payment(3, "r3").row(), "payer_signature": "sig1"})
    with pytest.raises(IntegrityError):
        payments.add(same_sig)


def test_an_unconfirmed_payment_that_never_landed_is_refunded_once(db):
    budgets, payments = Budgets(db), Payments(db)
    wallet = budgets.set_budget(parse_budget_spec("1/day"))
    budgets.reserve([wallet.id], 10_000_000, at=NOW, tz=UTCZ, request_id="r1")
    p = _payment(1, "r1")
    payments.add(p)
    with db.begin() as conn:
        bill_in(conn, budgets, payments, p, state="unconfirmed", tx_signature=None, note="n")
    assert _spent(db, budgets, wallet) == (10_000_000, 0)
    with db.begin() as conn:
        assert budgets.refund_in(conn, "r1", 10_000_000, "never landed")
        payments.finish_in(conn, p.id, "failed")
    with db.begin() as conn:
        assert not budgets.refund_in(conn, "r1", 10_000_000, "never landed")
    assert _spent(db, budgets, wallet) == (0, 0)
    assert payments.get(p.id).state == "failed"
    assert payments.open() == []
    assert [p.state for p in payments.recent(10)] == ["failed"]  # nothing counted as paid


def test_finishing_a_closed_payment_changes_nothing(db):
    payments = Payments(db)
    p = _payment(1, "r1")
    payments.add(p)
    with db.begin() as conn:
        assert payments.finish_in(conn, p.id, "failed", note="refused") is not None
    with db.begin() as conn:
        assert payments.finish_in(conn, p.id, "settled", tx_signature="tx") is None
    assert payments.get(p.id).state == "failed"
    assert [x.id for x in payments.recent(5)] == [p.id]
