"""Per-app rate limits hold when 100 requests start at the same instant."""

import asyncio
import json

import openai

from aiwallet.domain.bounds import TEXT_OVERHEAD
from fakeupstream import Script

MSGS = [{"role": "user", "content": "hi"}]


def burst(rig, key, n=100, **kw):
    async def one(client):
        try:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, **kw)
            return "ok", None
        except openai.RateLimitError as exc:
            return exc.body["code"], exc.response.headers.get("retry-after")

    async def main():
        client = rig.async_openai(key, timeout=30)
        out = await asyncio.gather(*(one(client) for _ in range(n)))
        await client.close()
        return out

    return asyncio.run(main())


def test_requests_per_minute(rig):
    key = rig.app()
    rig.wallet.set_app_limits("script", rpm=10, tpm=None, concurrency=None)
    results = burst(rig, key)
    assert sum(1 for r, _ in results if r == "ok") == 10
    refused = [(r, ra) for r, ra in results if r != "ok"]
    assert len(refused) == 90 and all(r == "rate_limited" and int(ra) >= 1 for r, ra in refused)
    assert len(rig.fake.served) == 10 and len(rig.ledger_rows()) == 10


def test_concurrent_requests(rig):
    key = rig.app()
    rig.wallet.set_app_limits("script", rpm=None, tpm=None, concurrency=3)
    rig.fake.set_default(Script(delay_s=0.5))
    try:
        results = burst(rig, key)
    finally:
        rig.fake.set_default(Script())
    assert sum(1 for r, _ in results if r == "ok") == 3
    assert len(rig.fake.served) == 3
    # the slots come back when requests finish
    assert burst(rig, key, n=3) == [("ok", None)] * 3


def test_tokens_per_minute_and_refusals_cost_nothing(rig):
    key = rig.app()
    # each request takes its worst case, the reservation's bound: its body bytes (a token is
    # at least a byte) + the provider's framing allowance + max_tokens 20. A limit of 2.5
    # of them admits 2 at once; one that finishes gives back what it did not use, so a few
    # more may follow during the burst, never all.
    body = json.dumps({"messages": MSGS, "model": "gpt-4o-mini", "max_tokens": 20}).encode()
    each = len(body) + TEXT_OVERHEAD + 20
    rig.wallet.set_app_limits("script", rpm=None, tpm=each * 5 // 2, concurrency=None)
    results = burst(rig, key, max_tokens=20)
    ok = sum(1 for r, _ in results if r == "ok")
    assert 2 <= ok <= 20
    assert len(rig.fake.served) == ok and len(rig.ledger_rows()) == ok
    assert all(r == "rate_limited" for r, _ in results if r != "ok")
