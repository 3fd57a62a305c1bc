"""kill -9 of `aiwallet serve` between signing a payment and hearing of its settlement, then a
restart: a payment that landed is billed once (exactly its amount, found on chain by the
payer's signature), and one that never landed is not billed (refunded once the chain says it
can no longer land). Checked against the chain's balances."""

import asyncio
import contextlib
import os
import signal
import threading

import httpx
import pytest

from aiwallet.domain.money import parse_budget_spec
from aiwallet.engine.payflow import payee_id
from aiwallet.paths import DataDir
from aiwallet.payments.keys import SolanaKey
from aiwallet.service import Wallet
from engine.test_crash import start_serve
from engine.x402rig import OPENAI_MODEL
from leakscan import register_key

PRICE = 10_000


def _prepare(tmp_path, kit) -> tuple[DataDir, str, object]:
    data_dir = DataDir(tmp_path / "wallet")
    payer = kit.new_payer(usdc_atomic=1_000_000)
    secret = SolanaKey(payer).secret_text()
    register_key(secret)
    w = Wallet.open(data_dir)
    w.solana.set_network("devnet", kit.rpc.url)
    w.solana.import_key(secret)
    w.add_provider("router", kind="x402", api_key=None, base_url=kit.router.url + "/v1")
    w.consent_rules.add("payee", payee_id(kit.network.caip2, str(kit.payee.pubkey())), "allow")
    _, key = w.create_app("paid", budget=parse_budget_spec("1/day"))
    w.close()
    return data_dir, key, payer


def _call(port: int, key: str) -> None:
    with contextlib.suppress(httpx.HTTPError):  # the engine was killed under it
        httpx.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )


def _kill(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)


def _restart_in_process(data_dir: DataDir) -> tuple[Wallet, object]:
    w = Wallet.open(data_dir)
    engine = w.new_engine(port=0)
    engine.start()
    return w, engine


@pytest.mark.parametrize("moment", ["after_settle", "before_settle"])
def test_kill_9_between_signing_and_settlement(tmp_path, chain, moment):
    router = chain.router
    data_dir, key, payer = _prepare(tmp_path, chain)
    payer0 = chain.usdc(payer)
    if moment == "after_settle":
        router.stall_after_settle = True
        reached = router.after_settle_reached
    else:
        router.stall_before_settle = True
        reached = router.before_settle_reached
    proc, port = start_serve(data_dir)
    th = threading.Thread(target=_call, args=(port, key))
    th.start()
    try:
        assert reached.wait(30), "the router never got the paid request"
        _kill(proc)  # signed and recorded; the router has (or has not) settled
    finally:
        router.release_after_settle.set()
        router.release_before_settle.set()
        th.join(30)
        if proc.poll() is None:
            _kill(proc)
    w, engine = _restart_in_process(data_dir)
    try:
        [p] = w.payments.recent(10)
        ledger = [r for r in _ledger(w) if r["token_source"] == "x402"]
        if moment == "after_settle":
            # landed: found on chain at start and billed once, exactly its amount
            assert chain.usdc(payer) == payer0 - PRICE
            assert p.state == "settled" and p.tx_signature in router.settled_signatures
            assert [r["amount_nano"] for r in ledger] == [PRICE * 1000]
        else:
            # not landed yet, its blockhash still valid: billed at its amount meanwhile
            assert chain.usdc(payer) == payer0
            assert p.state == "unconfirmed" and p.billed
            assert sum(r["amount_nano"] for r in ledger) == PRICE * 1000
            chain.rpc.expire_blockhash()  # now it can never land
            # what the 30 s timer does, now
            asyncio.run_coroutine_threadsafe(engine.reconciler.run_once(), engine.loop).result(30)
            assert w.payments.get(p.id).state == "failed"
            rows = _ledger(w)
            assert sum(r["amount_nano"] for r in rows) == 0  # spend and its refund
            assert chain.usdc(payer) == payer0
        assert w.budgets.open_reservations() == []
    finally:
        engine.stop()
        w.close()
    # a second restart bills nothing twice
    w, engine = _restart_in_process(data_dir)
    try:
        total = sum(r["amount_nano"] for r in _ledger(w))
        assert total == (PRICE * 1000 if moment == "after_settle" else 0)
    finally:
        engine.stop()
        w.close()


def _ledger(w: Wallet) -> list[dict]:
    from sqlalchemy import select

    from aiwallet.store import schema as t

    with w.db.read() as conn:
        return [dict(r) for r in conn.execute(select(t.ledger)).mappings()]


def test_a_reservation_left_before_any_payment_is_released_not_billed(tmp_path, chain):
    """The engine stopped after reserving for an x402 router and before signing: the router
    serves nothing unpaid, so the restart releases it instead of billing its worst case."""
    from datetime import UTC, datetime

    from aiwallet.store.records import SpendEntry

    data_dir, _key, _payer = _prepare(tmp_path, chain)
    w = Wallet.open(data_dir)
    app = w.apps.get("paid")
    budget = w.budgets.app_budget(app.id)
    w.budgets.reserve(
        [budget.id], 7_000_000, at=datetime.now(UTC), tz=w.timezone, request_id="awreq_cut",
        app_id=app.id, priced=SpendEntry("router", "router-model", "x402:router/m", None, "x"),
    )  # fmt: skip
    w.close()
    w, engine = _restart_in_process(data_dir)
    try:
        assert w.budgets.open_reservations() == []
        assert _ledger(w) == []
        assert w.budgets.state(budget, datetime.now(UTC), w.timezone).spent_nano == 0
    finally:
        engine.stop()
        w.close()
