"""Budgets hold under concurrency, and the ledger equals what the upstream served."""

import asyncio

import anthropic
import openai
import pytest
from sqlalchemy import select

from aiwallet.domain.cost import cost_of
from aiwallet.domain.money import parse_budget_spec
from aiwallet.domain.usage import Usage
from aiwallet.store import schema as t

MSGS = [{"role": "user", "content": "count to twelve for me"}]


def served_cost(rig, model_row_provider="openai"):
    """What the fake's own record of generated tokens prices to, request by request."""
    total = 0
    for s in rig.fake.served:
        if not s.completed or s.status != 200:
            continue
        g = s.generated
        row = rig.wallet.catalog.get(model_row_provider, s.model)
        usage = Usage(
            input_tokens=g["prompt"] - g.get("cached", 0),
            output_tokens=g["completion"],
            cache_read_tokens=g.get("cached", 0),
            reasoning_tokens=g.get("reasoning", 0),
        )
        total += cost_of(usage, row).nano
    return total


def test_200_concurrent_requests_never_overspend_a_cent(backend_rig):
    """On each backend (SQLite in the data dir, PostgreSQL); every request shape racing for
    one budget is tests/engine/test_race_shapes.py."""
    rig = backend_rig
    key = rig.app("racer", budget="0.01/day")
    outcomes: dict[str, int] = {}

    async def one(client, i):
        try:
            stream = i % 2 == 0
            if stream:
                s = await client.chat.completions.create(
                    model="gpt-4o", messages=MSGS, max_tokens=60, stream=True
                )
                async for _ in s:
                    pass
            else:
                await client.chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=60)
            outcomes["ok"] = outcomes.get("ok", 0) + 1
        except openai.APIStatusError as exc:
            code = exc.body.get("code") if isinstance(exc.body, dict) else None
            outcomes[code] = outcomes.get(code, 0) + 1

    async def main():
        client = rig.async_openai(key, timeout=30)
        await asyncio.gather(*(one(client, i) for i in range(200)))
        await client.close()

    asyncio.run(main())
    assert set(outcomes) <= {"ok", "budget_exceeded"}, outcomes
    assert outcomes["ok"] > 0 and outcomes.get("budget_exceeded", 0) > 0
    spent = sum(r["amount_nano"] for r in rig.ledger_rows())
    assert spent <= 10_000_000  # $0.01: overshoot is exactly zero
    assert spent == served_cost(rig)
    assert rig.wallet.budgets.open_reservations() == []
    assert len(rig.ledger_rows()) == outcomes["ok"]
    [budget] = rig.wallet.budgets.applicable(rig.wallet.apps.get("racer").id)
    with rig.wallet.db.read() as conn:
        counters = conn.execute(
            select(t.budget_counters.c.spent_nano, t.budget_counters.c.reserved_nano).where(
                t.budget_counters.c.budget_id == budget.id
            )
        ).all()
    assert (sum(c[0] for c in counters), sum(c[1] for c in counters)) == (spent, 0)


def test_budget_clamps_max_tokens_then_refuses(rig):
    # claude-opus-4-1: $15 in / $75 out per 1M. With $0.02, 4000 output tokens ($0.30 worst
    # case) do not fit, but a couple of hundred do: the request goes out clamped.
    key = rig.app("tight", budget="0.02/day")
    client = rig.anthropic(key)
    raw = client.messages.with_raw_response.create(
        model="claude-opus-4-1", max_tokens=4000, messages=MSGS
    )
    clamped = int(raw.headers["x-aiwallet-max-tokens-clamped"])
    assert 16 <= clamped < 4000
    assert rig.fake.served[-1].request_json["max_tokens"] == clamped
    spent = sum(r["amount_nano"] for r in rig.ledger_rows())
    assert spent <= 20_000_000
    # keep going until the wallet says no: it must stop at or before $0.002, never after
    with pytest.raises(anthropic.APIStatusError) as err:
        for _ in range(200):
            client.messages.create(model="claude-opus-4-1", max_tokens=4000, messages=MSGS)
    assert getattr(err.value, "status_code", None) == 402
    assert err.value.body["error"]["code"] == "budget_exceeded"
    assert "resets in" in err.value.body["error"]["message"]
    assert sum(r["amount_nano"] for r in rig.ledger_rows()) <= 20_000_000


def test_wallet_budget_applies_to_every_app(rig):
    a, b = rig.app("a", budget=None), rig.app("b", budget=None)
    rig.wallet.set_budget(parse_budget_spec("0.0012/day"))
    spent_ok = 0
    for key in (a, b, a, b, a, b):
        try:
            rig.openai(key).chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=20)
            spent_ok += 1
        except openai.APIStatusError as exc:
            assert exc.status_code == 402 and "wallet's budget" in exc.message
    assert 0 < spent_ok < 6
    assert sum(r["amount_nano"] for r in rig.ledger_rows()) <= 1_200_000
