"""A prepaid x402 router: topped up by an x402 payment of the amount the user chose (counted
against the wallet-wide budget, checked on chain), its credit shown, and requests billed from
the router's own reported cost, which is what its credit went down by."""

import json

from aiwallet.domain.money import parse_budget_spec, usd_string
from engine.conftest import cli
from engine.x402rig import make_pay_rig

MSG = [{"role": "user", "content": "hello"}]


def test_top_up_then_requests_billed_from_the_credit(tmp_path, fake, chain, capsys):
    fake.reset()
    pr = make_pay_rig(tmp_path, fake, chain)
    try:
        w = pr.wallet
        code, _, err = cli(
            capsys, pr.rig, "providers", "add", "credit", "--kind", "x402", "--prepaid",
            "--base-url", chain.router.url + "/v1",
        )  # fmt: skip
        assert code == 0, err
        w.budgets.set_budget(parse_budget_spec("0.50/day"))
        payer0, payee0 = pr.payer_usdc(), pr.payee_usdc()
        code, _, err = cli(capsys, pr.rig, "wallet", "topup", "credit", "1.00")
        assert code != 0 and "budget" in err  # $1 is over the wallet's $0.50 a day
        assert pr.payer_usdc() == payer0 and w.payments.recent(5) == []
        code, out, err = cli(capsys, pr.rig, "wallet", "topup", "credit", "0.40", "--json")
        assert code == 0, err
        result = json.loads(out)
        assert result["payment"]["state"] == "settled"
        assert result["router_balance_atomic"] == 400_000
        assert pr.payer_usdc() == payer0 - 400_000 and pr.payee_usdc() == payee0 + 400_000
        [topup] = [r for r in pr.rig.ledger_rows() if r["kind"] == "topup"]
        assert topup["amount_nano"] == 400_000_000 and topup["token_source"] == "x402"
        state = w.budgets.state(w.budgets.wallet_budget(), topup["ts"], w.timezone)
        assert state.spent_nano == 400_000_000
        # the key the router issued is in the vault, and the engine uses it
        assert w.providers.get("credit").secret_ref is not None
        key = pr.app("reader")
        resp = pr.rig.openai(key).chat.completions.with_raw_response.create(
            model="credit/gpt-4.1", messages=MSG, max_tokens=50
        )
        assert resp.parse().choices[0].message.content
        code, out, err = cli(capsys, pr.rig, "wallet", "credit", "credit", "--json")
        assert code == 0, err
        left = json.loads(out)["amount_atomic"]
        spent_atomic = 400_000 - left
        assert spent_atomic > 0
        [spend] = [
            r for r in pr.rig.ledger_rows() if r["kind"] == "spend" and r["provider"] == "credit"
        ]
        assert spend["token_source"] == "provider_cost"
        assert spend["amount_nano"] == spent_atomic * 1000  # what the router's credit went down
        assert "catalog's price" in spend["note"]
        assert resp.headers["x-aiwallet-cost-usd"] == usd_string(spend["amount_nano"])
        assert pr.payer_usdc() == payer0 - 400_000  # the request paid nothing more on chain
        # the wallet-wide budget counted the money once, at the top-up; the app's budget
        # counts what the app used of the credit
        state = w.budgets.state(w.budgets.wallet_budget(), topup["ts"], w.timezone)
        assert state.spent_nano == 400_000_000
        app_budget = w.budgets.app_budget(w.apps.get("reader").id)
        assert (
            w.budgets.state(app_budget, topup["ts"], w.timezone).spent_nano == spend["amount_nano"]
        )
    finally:
        pr.close()


def test_a_top_up_the_router_says_it_did_not_settle_is_held_then_released(
    tmp_path, fake, chain, capsys
):
    """Not billed, but held on the wallet budget (the router still holds a signed
    transaction) until the chain shows it can never land; then released, and a restart
    finds nothing open to bill."""
    import asyncio

    fake.reset()
    pr = make_pay_rig(tmp_path, fake, chain)
    try:
        w = pr.wallet
        code, _, err = cli(
            capsys, pr.rig, "providers", "add", "credit", "--kind", "x402", "--prepaid",
            "--base-url", chain.router.url + "/v1",
        )  # fmt: skip
        assert code == 0, err
        budget = w.budgets.set_budget(parse_budget_spec("1/day"))
        chain.router.settle_fails = True
        payer0 = pr.payer_usdc()
        code, _, err = cli(capsys, pr.rig, "wallet", "topup", "credit", "0.40")
        assert code != 0 and "did not settle" in err
        [p] = w.payments.recent(5)
        assert p.state == "held" and not p.billed
        [held] = w.budgets.open_reservations()
        assert held.amount_nano == 400_000_000
        assert [r for r in pr.rig.ledger_rows() if r["kind"] == "topup"] == []
        chain.rpc.expire_blockhash()
        engine = pr.rig.engine
        asyncio.run_coroutine_threadsafe(engine.reconciler.run_once(), engine.loop).result(30)
        assert w.payments.get(p.id).state == "failed"
        assert w.budgets.open_reservations() == []
        state = w.budgets.state(budget, p.created_at, w.timezone)
        assert (state.spent_nano, state.reserved_nano) == (0, 0)
        assert pr.payer_usdc() == payer0
    finally:
        pr.close()
