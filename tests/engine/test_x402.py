"""Paying x402 routers from the user's Solana wallet, on a real offline chain (LiteSVM behind
JSON-RPC), through the SDK's own facilitator, with the official openai and anthropic SDKs as
unmodified clients. Every money check is against the chain's token balances, not only the
ledger: what the payer lost, the payee gained, and the ledger billed are the same number."""

import asyncio
import json
import threading

import anthropic
import openai
import pytest
from x402.schemas import PaymentRequirements

from aiwallet.upstreams.client import Timeouts
from engine.conftest import cli
from engine.test_consent import pending, wait_pending
from engine.x402rig import ANTHROPIC_MODEL, OPENAI_MODEL, make_pay_rig
from waiting import wait_until

MSG = [{"role": "user", "content": "hello"}]
PRICE = 10_000  # atomic USDC: $0.01 per request (the kit's default)


@pytest.fixture
def pay(tmp_path, fake, chain):
    fake.reset()
    pr = make_pay_rig(tmp_path, fake, chain, consent_timeout_s=20)
    yield pr
    pr.close()


def _ledger_nano(pr) -> int:
    return sum(r["amount_nano"] for r in pr.x402_ledger())


def _payments(pr) -> list:
    return pr.wallet.payments.recent(1000)


def test_openai_and_anthropic_calls_plain_and_streamed_are_paid_exactly(pay):
    pay.allow_payee()
    key = pay.app()
    payer0, payee0 = pay.payer_usdc(), pay.payee_usdc()
    oa, an = pay.rig.openai(key), pay.rig.anthropic(key)
    plain = oa.chat.completions.with_raw_response.create(model=OPENAI_MODEL, messages=MSG)
    assert plain.parse().choices[0].message.content
    assert plain.headers["x-aiwallet-cost-usd"] == "0.010000000"
    streamed = oa.chat.completions.create(model=OPENAI_MODEL, messages=MSG, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text
    msg = an.messages.create(model=ANTHROPIC_MODEL, max_tokens=64, messages=MSG)
    assert msg.content[0].text
    with an.messages.stream(model=ANTHROPIC_MODEL, max_tokens=64, messages=MSG) as s:
        assert "".join(s.text_stream)
    # four payments: the chain moved exactly what the ledger billed
    assert payee0 + 4 * PRICE == pay.payee_usdc()
    assert payer0 - 4 * PRICE == pay.payer_usdc()
    assert _ledger_nano(pay) == 4 * PRICE * 1000
    found = _payments(pay)
    assert len(found) == 4 and {p.state for p in found} == {"settled"}
    sigs = {p.tx_signature for p in found}
    assert sigs == set(pay.kit.router.settled_signatures)
    assert {r["price_row"]["tx_signature"] for r in pay.x402_ledger()} == sigs
    assert plain.headers["x-aiwallet-x402-transaction"] in sigs
    # the app never saw the router's 402: every answer was a 200
    assert all(r["status"] == 200 for r in pay.rig.requests())


def test_a_payment_over_the_cap_is_refused_before_anything_is_signed(pay, capsys):
    pay.allow_payee()
    key = pay.app()
    code, _, err = cli(capsys, pay.rig, "prefs", "set", "x402_max_payment_usd", "0.005")
    assert code == 0, err
    payer0 = pay.payer_usdc()
    with pytest.raises(openai.APIStatusError) as refused:
        pay.rig.openai(key).chat.completions.create(model=OPENAI_MODEL, messages=MSG)
    assert refused.value.status_code == 402
    assert refused.value.body["code"] == "payment_over_cap"
    assert "nothing was signed" in refused.value.body["message"]
    assert _payments(pay) == [] and pay.payer_usdc() == payer0
    assert pay.wallet.budgets.open_reservations() == []


def test_a_payment_over_the_budget_is_refused_before_anything_is_signed(pay):
    pay.allow_payee()
    key = pay.app(budget="0.005/day")
    payer0 = pay.payer_usdc()
    with pytest.raises(anthropic.APIStatusError) as refused:
        pay.rig.anthropic(key).messages.create(model=ANTHROPIC_MODEL, max_tokens=16, messages=MSG)
    assert refused.value.status_code == 402
    assert refused.value.body["error"]["code"] == "budget_exceeded"
    assert _payments(pay) == [] and pay.payer_usdc() == payer0
    assert pay.wallet.budgets.open_reservations() == []


def test_a_router_asking_more_than_the_worst_case_is_reserved_or_refused(pay):
    pay.allow_payee()
    pay.kit.router.ask_more = 5_000  # $0.015 asked
    key = pay.app(budget="0.02/day")
    oa = pay.rig.openai(key)
    oa.chat.completions.create(model=OPENAI_MODEL, messages=MSG)
    assert _ledger_nano(pay) == 15_000_000
    with pytest.raises(openai.APIStatusError) as refused:  # $0.005 left
        oa.chat.completions.create(model=OPENAI_MODEL, messages=MSG)
    assert refused.value.body["code"] == "budget_exceeded"
    assert len(_payments(pay)) == 1


def _call_in_thread(client, model=OPENAI_MODEL):
    out: dict = {}

    def run() -> None:
        try:
            out["resp"] = client.chat.completions.create(model=model, messages=MSG)
        except openai.APIStatusError as exc:
            out["error"] = exc

    th = threading.Thread(target=run)
    th.start()
    return th, out


def test_a_new_payee_is_asked_once_and_always_is_remembered(pay, capsys):
    key = pay.app()
    oa = pay.rig.openai(key)
    th, out = _call_in_thread(oa)
    [req] = wait_pending(capsys, pay.rig)
    assert req["kind"] == "payment"
    held = req["held_request"]
    assert held["payee"] == str(pay.kit.payee.pubkey())
    assert held["amount_usd"] == "0.010000000" and held["amount_atomic"] == "10000"
    assert held["network"] == pay.kit.network.caip2 and held["real_money"] is False
    assert held["app"] == "paid" and held["model"] == "router-model"
    assert _payments(pay) == []  # nothing signed while the user decides
    code, _, err = cli(capsys, pay.rig, "consent", "approve", req["id"], "--for", "always")
    assert code == 0, err
    th.join(30)
    assert "resp" in out, out
    oa.chat.completions.create(model=OPENAI_MODEL, messages=MSG)  # not asked again
    assert pending(capsys, pay.rig) == []
    assert len(_payments(pay)) == 2


def test_a_denied_payee_is_never_paid(pay, capsys):
    key = pay.app()
    oa = pay.rig.openai(key)
    payer0 = pay.payer_usdc()
    th, out = _call_in_thread(oa)
    [req] = wait_pending(capsys, pay.rig)
    code, _, err = cli(capsys, pay.rig, "consent", "deny", req["id"], "--always")
    assert code == 0, err
    th.join(30)
    assert out["error"].status_code == 403 and out["error"].body["code"] == "payment_denied"
    with pytest.raises(openai.APIStatusError) as again:  # remembered: refused, not asked
        oa.chat.completions.create(model=OPENAI_MODEL, messages=MSG)
    assert again.value.body["code"] == "payment_denied"
    assert pending(capsys, pay.rig) == []
    assert _payments(pay) == [] and pay.payer_usdc() == payer0
    assert pay.kit.router.served.get("paid", 0) == 0


def test_the_kill_switch_stops_a_payment_waiting_for_its_prompt(pay, capsys):
    key = pay.app()
    th, out = _call_in_thread(pay.rig.openai(key))
    [req] = wait_pending(capsys, pay.rig)
    code, _, err = cli(capsys, pay.rig, "pause")
    assert code == 0, err
    wait_until(lambda: pay.rig.engine.state.paused, what="the engine paused")
    cli(capsys, pay.rig, "consent", "approve", req["id"])
    th.join(30)
    assert out["error"].body["code"] == "wallet_paused"
    assert _payments(pay) == []
    assert pay.wallet.budgets.open_reservations() == []


def test_a_failed_settlement_is_not_billed(pay):
    pay.allow_payee()
    pay.kit.router.settle_fails = True
    key = pay.app()
    payer0 = pay.payer_usdc()
    with pytest.raises(openai.APIStatusError) as failed:
        pay.rig.openai(key).chat.completions.create(model=OPENAI_MODEL, messages=MSG)
    assert failed.value.status_code == 502 and failed.value.body["code"] == "payment_failed"
    [p] = _payments(pay)
    assert not p.billed and _ledger_nano(pay) == 0 and pay.payer_usdc() == payer0
    # the router still holds a signed transaction: its amount stays held on the budget
    # until the chain shows it can never land
    assert p.state == "held" and "held" in p.note
    [held] = pay.wallet.budgets.open_reservations()
    assert held.amount_nano >= PRICE * 1000
    pay.kit.rpc.expire_blockhash()
    engine = pay.rig.engine
    asyncio.run_coroutine_threadsafe(engine.reconciler.run_once(), engine.loop).result(30)
    assert _payments(pay)[0].state == "failed"
    assert pay.wallet.budgets.open_reservations() == []
    assert pay.payer_usdc() == payer0 and _ledger_nano(pay) == 0


def test_a_router_that_settles_and_says_it_failed_is_billed_from_the_chain(pay):
    """A lying router cannot spend past the budget: the amount stayed held, and the chain
    shows the payment landed, so it is billed exactly once."""
    pay.allow_payee()
    pay.kit.router.lie_settle_failed = True
    key = pay.app(budget="0.015/day")
    oa = pay.rig.openai(key)
    payer0 = pay.payer_usdc()
    with pytest.raises(openai.APIStatusError) as failed:
        oa.chat.completions.create(model=OPENAI_MODEL, messages=MSG)
    assert failed.value.body["code"] == "payment_failed"
    assert pay.payer_usdc() == payer0 - PRICE  # it did land
    with pytest.raises(openai.APIStatusError) as again:  # held: no room for a second one
        oa.chat.completions.create(model=OPENAI_MODEL, messages=MSG)
    assert again.value.body["code"] == "budget_exceeded"
    engine = pay.rig.engine
    asyncio.run_coroutine_threadsafe(engine.reconciler.run_once(), engine.loop).result(30)
    [p] = _payments(pay)
    assert p.state == "settled" and p.tx_signature in pay.kit.router.settled_signatures
    assert _ledger_nano(pay) == PRICE * 1000 == (payer0 - pay.payer_usdc()) * 1000
    assert pay.wallet.budgets.open_reservations() == []


def test_a_paid_request_whose_answer_failed_is_billed_and_flagged(pay):
    pay.allow_payee()
    pay.kit.router.error_after_payment = True
    key = pay.app()
    with pytest.raises(openai.APIStatusError):
        pay.rig.openai(key).chat.completions.create(model=OPENAI_MODEL, messages=MSG)
    [p] = _payments(pay)
    assert p.state == "settled" and p.billed and p.flagged
    assert _ledger_nano(pay) == PRICE * 1000
    assert pay.kit.usdc(pay.kit.payee) == PRICE


def test_a_stream_cut_after_payment_is_billed_the_payment(pay):
    pay.allow_payee()
    pay.kit.router.cut_stream_after_payment = True
    key = pay.app()
    with pytest.raises(openai.APIError):
        for _ in pay.rig.openai(key).chat.completions.create(
            model=OPENAI_MODEL, messages=MSG, stream=True
        ):
            pass
    wait_until(lambda: _ledger_nano(pay) == PRICE * 1000, what="the cut stream billed")
    [p] = _payments(pay)
    assert p.state == "settled" and p.flagged


def test_unusable_requirements_are_skipped_and_a_lone_one_is_refused(pay):
    pay.allow_payee()
    router = pay.kit.router
    evm = PaymentRequirements(
        scheme="exact", network="eip155:8453", asset="0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913",
        amount="1", pay_to="0x0000000000000000000000000000000000000001", max_timeout_seconds=60,
        extra={},
    )  # fmt: skip
    router.extra_accepts = [evm]
    key = pay.app()
    pay.rig.openai(key).chat.completions.create(model=OPENAI_MODEL, messages=MSG)
    [p] = _payments(pay)
    assert p.network == pay.kit.network.caip2 and p.amount_atomic == PRICE


def test_a_secret_key_never_reaches_the_app_even_when_the_router_echoes(pay):
    pay.allow_payee()
    pay.kit.router.error_after_payment = True
    pay.kit.router.echo_payment_header_in_error = True
    key = pay.app()
    with pytest.raises(openai.APIStatusError) as failed:
        pay.rig.openai(key).chat.completions.create(model=OPENAI_MODEL, messages=MSG)
    # the leak scan checks every byte the SDK received for the Solana secret (x402rig
    # registered it); the wallet's own error is what the app gets
    assert failed.value.status_code in (502, 503)


def test_200_racing_requests_pay_at_most_the_budget_on_chain(tmp_path, fake, chain):
    """200 concurrent calls against a $0.01 app budget, each asked $0.0001: the chain moves
    exactly $0.01 (the budget used to the last payment, never past it), and exactly what the
    ledger billed."""
    fake.reset()
    chain.router.price_atomic = 100
    # a loaded machine may answer slowly: a paid call that timed out is billed as
    # unconfirmed and settled from the chain below, so the totals hold either way
    pr = make_pay_rig(tmp_path, fake, chain, timeouts=Timeouts(connect_s=10, read_s=60))
    try:
        pr.allow_payee()
        key = pr.app(budget="0.01/day")
        payer0, payee0 = pr.payer_usdc(), pr.payee_usdc()

        async def race() -> list[int]:
            client = pr.rig.async_openai(key, timeout=120)
            sem = asyncio.Semaphore(64)

            async def one() -> int:
                async with sem:
                    try:
                        await client.chat.completions.create(model=OPENAI_MODEL, messages=MSG)
                        return 200
                    except openai.APIStatusError as exc:
                        return exc.status_code

            return await asyncio.gather(*(one() for _ in range(200)))

        codes = asyncio.run(race())
        # 402: the budget could not cover it; 502/504: the router's facilitator failed, or
        # the call timed out, after the payment was signed (billed as unconfirmed until the
        # chain tells); 503: after five such failures in a row the router's circuit breaker
        # opened (engine/health.py) and refused at once, nothing signed
        assert set(codes) <= {200, 402, 502, 503, 504}, codes
        pr.kit.rpc.expire_blockhash()  # whatever has not landed now never will
        engine = pr.rig.engine
        asyncio.run_coroutine_threadsafe(engine.reconciler.run_once(), engine.loop).result(60)
        paid_on_chain = pr.payee_usdc() - payee0
        assert payer0 - pr.payer_usdc() == paid_on_chain
        assert paid_on_chain <= 10_000  # never past $0.01
        assert paid_on_chain >= codes.count(200) * 100  # every served call was paid
        assert _ledger_nano(pr) == paid_on_chain * 1000  # and the ledger says exactly that
        if not set(codes) & {502, 504}:
            assert paid_on_chain == 10_000  # the budget used to the last payment
        assert {p.state for p in _payments(pr)} <= {"settled", "failed"}
        assert pr.wallet.budgets.open_reservations() == []
    finally:
        pr.close()


def test_wallet_cli_shows_the_key_network_balances_and_payments(pay, capsys):
    pay.allow_payee()
    key = pay.app()
    pay.rig.openai(key).chat.completions.create(model=OPENAI_MODEL, messages=MSG)
    code, out, err = cli(capsys, pay.rig, "wallet", "address", "--json")
    assert code == 0, err
    st = json.loads(out)
    assert st["address"] == str(pay.payer.pubkey()) and st["network"] == "devnet"
    assert st["real_money"] is False
    assert st["rpc_host"] == pay.kit.rpc.url.removeprefix("http://").rstrip("/")
    code, out, err = cli(capsys, pay.rig, "wallet", "balance", "--json")
    assert code == 0, err
    bal = json.loads(out)
    assert bal["problem"] is None
    assert bal["tokens"][pay.kit.usdc_mint]["amount_atomic"] == pay.payer_usdc()
    code, out, err = cli(capsys, pay.rig, "wallet", "payments", "--json")
    assert code == 0, err
    [p] = json.loads(out)
    assert p["state"] == "settled" and p["tx_signature"] in p["explorer"]
    assert p["explorer"].endswith("?cluster=devnet")  # never the custom RPC URL
    code, out, _ = cli(capsys, pay.rig, "wallet", "payments")
    assert "settled" in out and p["tx_signature"] in out
