"""A budget held by requests in flight says so, and the engine clamps before it refuses.

Requests are held in flight at a gate of the fake upstream (``Script.gate``) so that their
reservations are open when the next request asks; nothing here waits on a clock.
"""

import asyncio

import anthropic
import pytest

from aiwallet.domain.money import format_usd
from aiwallet.preferences import MIN_CLAMPED_OUTPUT_TOKENS
from fakeupstream import Script
from waiting import wait_until

MSGS = [{"role": "user", "content": "write me a long essay"}]
SONNET = "claude-sonnet-4-5"  # $3 in / $15 out per 1M tokens, 64,000 output tokens at most


def set_floor(rig, tokens: int) -> None:
    rig.wallet.set_pref(MIN_CLAMPED_OUTPUT_TOKENS, tokens)
    wait_until(
        lambda: rig.engine.state.min_clamped_output == tokens, what="the engine read the floor"
    )


def open_reserved(rig) -> int:
    return sum(r.amount_nano for r in rig.wallet.budgets.open_reservations())


def test_the_sonnet_price_the_cases_below_assume(rig):
    row = rig.wallet.catalog.get("anthropic", SONNET)
    assert row is not None and row.output_limit == 64000
    assert row.output == 15_000_000_000 and row.input == 3_000_000_000  # nano-$ per 1M


def test_in_flight_402_names_the_reservations(rig):
    key = rig.app("essays", budget="1/day")
    rig.fake.script(Script(gate="held"), times=4)
    client = rig.async_anthropic(key)

    async def main() -> tuple[list[object], str, int]:
        async def one() -> object:
            return await client.messages.with_raw_response.create(
                model=SONNET, max_tokens=20000, messages=MSGS
            )

        # three fit whole ($0.30 each and a little prompt); the fourth is clamped to the rest
        held = [asyncio.ensure_future(one()) for _ in range(4)]
        await asyncio.to_thread(
            wait_until, lambda: rig.fake.at_gate("held") == 4, what="4 requests in flight"
        )
        reserved = await asyncio.to_thread(open_reserved, rig)
        with pytest.raises(anthropic.APIStatusError) as err:
            await client.messages.create(model=SONNET, max_tokens=20000, messages=MSGS)
        assert err.value.status_code == 402
        rig.fake.open_gate("held")
        return list(await asyncio.gather(*held)), err.value.body["error"]["message"], reserved

    answers, message, reserved = asyncio.run(main())
    # 4 requests hold nearly all of the $1.00; the message says so, with the exact figure
    assert 999_900_000 < reserved <= 1_000_000_000
    assert f"4 requests in flight hold {format_usd(reserved, places=None)} of it" in message
    assert "most is returned when they finish" in message and "retry when they finish" in message
    assert f"has {format_usd(1_000_000_000 - reserved, places=None)} left" in message
    clamped = [a.headers.get("x-aiwallet-max-tokens-clamped") for a in answers]
    assert clamped.count(None) == 3  # three whole worst cases; the fourth was clamped
    # they finished: most of what they held came back, and the next request is served
    assert open_reserved(rig) == 0
    ok = rig.anthropic(key).messages.with_raw_response.create(
        model=SONNET, max_tokens=20000, messages=MSGS
    )
    assert ok.http_response.status_code == 200
    assert "x-aiwallet-max-tokens-clamped" not in ok.headers


def test_clamping_stops_at_the_floor_the_user_set(rig):
    # three apps with the same fresh budget send the same request: its clamp is the same
    keys = [rig.app(f"tight-{n}", budget="0.01/day") for n in range(3)]

    def ask(key: str):
        return rig.anthropic(key).messages.with_raw_response.create(
            model=SONNET, max_tokens=4000, messages=MSGS
        )

    first = ask(keys[0])  # the default floor (16 tokens): clamped to what $0.01 pays
    clamped = int(first.headers["x-aiwallet-max-tokens-clamped"])
    assert MIN_CLAMPED_OUTPUT_TOKENS.default == 16 and 16 <= clamped < 4000
    assert rig.fake.served[-1].request_json["max_tokens"] == clamped

    set_floor(rig, clamped + 1)  # one token more than the budget pays for: refused
    with pytest.raises(anthropic.APIStatusError) as err:
        ask(keys[1])
    assert err.value.status_code == 402 and err.value.body["error"]["code"] == "budget_exceeded"
    assert "not enough for this request" in err.value.body["error"]["message"]

    set_floor(rig, clamped)  # exactly what it pays for: served, clamped to the floor
    again = ask(keys[2])
    assert int(again.headers["x-aiwallet-max-tokens-clamped"]) == clamped


def test_eight_sonnet_streams_at_64000_on_a_5_dollar_day(rig):
    """LangChain's and llm-anthropic's default: every stream is served (clamped where the
    budget needs it), or refused with a message naming the reservations in flight."""
    key = rig.app("langchain-agent", budget="5/day")
    rig.fake.set_default(Script(gate="streams", reply_tokens=40))
    client = rig.async_anthropic(key)
    refused: list[str] = []

    async def one() -> tuple[int | None, str]:
        try:
            raw = await client.messages.with_raw_response.create(
                model=SONNET, max_tokens=64000, messages=MSGS, stream=True
            )
        except anthropic.APIStatusError as exc:
            assert exc.status_code == 402 and exc.body["error"]["code"] == "budget_exceeded"
            refused.append(exc.body["error"]["message"])
            return None, "refused"
        clamp = raw.headers.get("x-aiwallet-max-tokens-clamped")
        text = ""
        async for event in await raw.parse():
            if event.type == "content_block_delta":
                text += event.delta.text
        return (int(clamp) if clamp else 64000), text

    async def main() -> list[tuple[int | None, str]]:
        streams = [asyncio.ensure_future(one()) for _ in range(8)]
        await asyncio.to_thread(
            wait_until,
            lambda: rig.fake.at_gate("streams") + len(refused) == 8,
            what="every stream in flight or refused",
        )
        rig.fake.open_gate("streams")
        return list(await asyncio.gather(*streams))

    results = asyncio.run(main())
    served = [(limit, text) for limit, text in results if limit is not None]
    # $5 holds five whole worst cases ($0.96 + prompt each); a sixth is clamped to the rest
    assert len(served) == 6 and len(refused) == 2
    limits = sorted(limit for limit, _ in served)
    assert limits[1:] == [64000] * 5 and 16 <= limits[0] < 64000
    assert all(text.strip() for _, text in served)
    sent = sorted(s.request_json["max_tokens"] for s in rig.fake.served)
    assert sent == limits
    for message in refused:
        assert "6 requests in flight hold $4.99" in message, message
        assert "retry when they finish" in message
    # what was really spent is a fraction of a cent; nothing is left reserved
    spent = sum(r["amount_nano"] for r in rig.ledger_rows())
    assert 0 < spent < 10_000_000
    assert open_reserved(rig) == 0
