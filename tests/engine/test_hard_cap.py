"""A budget is a hard cap for request shapes whose cost their bytes do not bound.

Each test is a row of the hard-cap issue's table: a fake upstream that bills what a real
provider would for that shape (hidden prompt tokens, n choices, search fees, stored context,
more output than asked), the same concurrency, a $0.05/day budget. Each ends at or under its
budget, or is refused with a clear error.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import anthropic
import httpx
import openai
import pytest

from aiwallet.domain.bounds import cache_write_of
from aiwallet.domain.money import usd_string
from aiwallet.domain.strictjson import parse_object
from fakeupstream import Script
from waiting import wait_until

BUDGET = "0.05/day"
LIMIT_NANO = 50_000_000
MSGS = [{"role": "user", "content": "hi"}]


def spent(rig) -> int:
    return sum(r["amount_nano"] for r in rig.ledger_rows() if r["kind"] == "spend")


def settled_all(rig) -> None:
    wait_until(
        lambda: (
            rig.wallet.budgets.open_reservations() == []
            and not (rig.engine.proxy and rig.engine.proxy.background)
        ),
        what="every request settled",
    )


def reserved_of(rig) -> dict[str, int]:
    from sqlalchemy import select

    from aiwallet.store import schema as t

    with rig.wallet.db.read() as conn:
        rows = conn.execute(select(t.reservations.c.request_id, t.reservations.c.amount_nano))
        return {r[0]: int(r[1]) for r in rows}


def no_row_passed_its_reservation(rig) -> None:
    """settled <= reserved for every row not marked over_reserved."""
    reserved = reserved_of(rig)
    for row in rig.requests():
        if row["id"] in reserved and not row["over_reserved"]:
            assert row["cost_nano"] <= reserved[row["id"]], row


async def _gather(n: int, make: Any) -> list[Any]:
    return await asyncio.gather(*(make(i) for i in range(n)), return_exceptions=True)


def _refusals(results: list[Any]) -> list[Any]:
    return [r for r in results if isinstance(r, BaseException)]


def _assert_clear(errors: list[Any], code: str) -> None:
    for e in errors:
        assert isinstance(e, openai.APIStatusError | anthropic.APIStatusError), repr(e)
        body = e.body if isinstance(e, openai.APIStatusError) else e.body["error"]
        assert body["code"] == code, body


def test_n_choices_are_reserved_for_every_choice(rig):
    key = rig.app(budget=BUDGET)
    rig.fake.set_default(Script(reply_tokens=500))
    try:

        async def main() -> list[Any]:
            client = rig.async_openai(key, timeout=60)

            async def one(i: int) -> Any:
                return await client.chat.completions.create(
                    model="gpt-4o-mini", messages=MSGS, n=8, max_tokens=500
                )

            try:
                return await _gather(300, one)
            finally:
                await client.close()

        results = asyncio.run(main())
    finally:
        rig.fake.set_default(Script())
    settled_all(rig)
    ok = [r for r in results if not isinstance(r, BaseException)]
    assert ok and all(len(r.choices) == 8 for r in ok)
    _assert_clear(_refusals(results), "budget_exceeded")
    assert spent(rig) <= LIMIT_NANO
    no_row_passed_its_reservation(rig)


def test_images_by_url_are_reserved_at_the_providers_image_maximum(rig):
    key = rig.app(budget=BUDGET)
    image = {"type": "image_url", "image_url": {"url": "https://example.invalid/cat.png"}}
    msgs = [{"role": "user", "content": [{"type": "text", "text": "what is it"}, image]}]
    rig.fake.set_default(Script(hidden_prompt_tokens=1_100))  # what the image really costs
    try:

        async def main() -> list[Any]:
            client = rig.async_openai(key, timeout=60)
            try:
                return await _gather(
                    100,
                    lambda i: client.chat.completions.create(
                        model="gpt-4o", messages=msgs, max_tokens=16
                    ),
                )
            finally:
                await client.close()

        results = asyncio.run(main())
    finally:
        rig.fake.set_default(Script())
    settled_all(rig)
    assert any(not isinstance(r, BaseException) for r in results)
    _assert_clear(_refusals(results), "budget_exceeded")
    assert spent(rig) <= LIMIT_NANO
    no_row_passed_its_reservation(rig)
    assert all(r["input_tokens"] >= 1_100 for r in rig.requests() if r["status"] == 200)


def test_anthropic_client_tools_add_their_hidden_system_prompts(rig):
    key = rig.app(budget=BUDGET)
    tools = [{"type": "bash_20250124", "name": "bash"}]
    # the tool-use system prompt (~346) and the bash tool's own (~245)
    rig.fake.set_default(Script(hidden_prompt_tokens=600))
    try:

        async def main() -> list[Any]:
            client = rig.async_anthropic(key, timeout=60)
            try:
                return await _gather(
                    100,
                    lambda i: client.messages.create(
                        model="claude-sonnet-4-5", max_tokens=64, messages=MSGS, tools=tools
                    ),
                )
            finally:
                await client.close()

        results = asyncio.run(main())
    finally:
        rig.fake.set_default(Script())
    settled_all(rig)
    assert any(not isinstance(r, BaseException) for r in results)
    _assert_clear(_refusals(results), "budget_exceeded")
    assert spent(rig) <= LIMIT_NANO
    no_row_passed_its_reservation(rig)


def test_anthropic_web_search_is_bounded_capped_and_its_fees_billed(rig):
    key = rig.app(budget=BUDGET)
    tools = [{"type": "web_search_20250305", "name": "web_search"}]
    rig.fake.set_default(Script(web_searches=8, hidden_prompt_tokens=20_000))
    try:
        client = rig.anthropic(key)
        for _ in range(4):  # results can fill the context window: no room in $0.05
            with pytest.raises(anthropic.APIStatusError) as err:
                client.messages.create(
                    model="claude-sonnet-4-5", max_tokens=256, messages=MSGS, tools=tools
                )
            assert err.value.status_code == 402
        assert spent(rig) == 0
        # with room for the worst case, it runs: the wallet capped the searches it did not
        # cap itself (max_uses), and bills each search's fee besides the tokens
        rig.wallet.set_budget(None, "script")
        raw = client.messages.with_raw_response.create(
            model="claude-sonnet-4-5", max_tokens=256, messages=MSGS, tools=tools
        )
    finally:
        rig.fake.set_default(Script())
    assert raw.headers["x-aiwallet-capped"] == "tools.0.max_uses=5"
    sent = rig.fake.served[-1].request_json
    assert sent["tools"][0]["max_uses"] == 5
    settled_all(rig)
    [row] = [r for r in rig.requests() if r["status"] == 200]
    [spend] = [r for r in rig.ledger_rows() if r["kind"] == "spend"]
    fees = 5 * 10_000_000  # five searches at $10 per 1,000
    tokens = row["input_tokens"] * 3_000 + row["output_tokens"] * 15_000  # $3 / $15 per 1M
    assert spend["amount_nano"] == row["cost_nano"] == tokens + fees


def test_stored_context_is_bounded_by_the_context_window(rig):
    key = rig.app(budget=BUDGET)
    rig.fake.set_default(Script(hidden_prompt_tokens=50_000))  # the earlier turns
    try:

        async def main() -> list[Any]:
            client = rig.async_openai(key, timeout=60)
            try:
                return await _gather(
                    10,
                    lambda i: client.responses.create(
                        model="gpt-4o-mini",
                        input="and then?",
                        previous_response_id="resp_earlier",
                        max_output_tokens=64,
                    ),
                )
            finally:
                await client.close()

        results = asyncio.run(main())
    finally:
        rig.fake.set_default(Script())
    settled_all(rig)
    assert any(not isinstance(r, BaseException) for r in results)
    _assert_clear(_refusals(results), "budget_exceeded")
    assert spent(rig) <= LIMIT_NANO
    no_row_passed_its_reservation(rig)


def test_a_provider_that_streams_past_max_tokens_is_stopped_at_the_bound(rig):
    key = rig.app(budget=BUDGET)
    over: list[dict] = []
    unsubscribe = rig.engine.events.subscribe(
        lambda name, p: over.append(p) if name == "request.over_reserved" else None
    )
    rig.fake.script(Script(reply_tokens=400, ignore_max_tokens=True))
    words = 0
    try:
        with pytest.raises((openai.APIError, httpx.HTTPError)):
            for chunk in rig.openai(key).chat.completions.create(
                model="gpt-4o-mini", messages=MSGS, max_tokens=100, stream=True
            ):
                for choice in chunk.choices:
                    words += 1 if choice.delta.content else 0
        settled_all(rig)
        wait_until(lambda: over, what="the over_reserved event")
    finally:
        unsubscribe()
    assert words <= 100  # never more than the request allowed reached the client
    [row] = rig.requests()
    assert row["over_reserved"] and row["error_code"] == "over_reserved"
    assert over[0]["provider"] == "openai"


def test_a_provider_that_reports_more_than_the_bound_is_flagged_and_reported(rig, capsys):
    from engine.conftest import cli

    key = rig.app(budget=BUDGET)
    rig.fake.set_default(Script(reply_tokens=64, output_multiplier=2))
    try:
        client = rig.openai(key)
        for _ in range(200):
            try:
                client.chat.completions.create(model="gpt-4o", messages=MSGS, max_tokens=64)
            except openai.APIStatusError as exc:
                assert exc.status_code == 402 and exc.body["code"] == "budget_exceeded"
                break
        else:
            raise AssertionError("the budget never ran out")
    finally:
        rig.fake.set_default(Script())
    settled_all(rig)
    rows = [r for r in rig.requests() if r["status"] == 200]
    assert rows and all(r["over_reserved"] for r in rows)
    no_row_passed_its_reservation(rig)
    # what passed the reservations is reported apart; what was within them stays in budget
    reserved = reserved_of(rig)
    beyond = sum(r["cost_nano"] - reserved[r["id"]] for r in rows)
    assert spent(rig) - beyond <= LIMIT_NANO
    code, out, _ = cli(capsys, rig, "usage", "--json")
    assert code == 0
    report = json.loads(out)["over_reserved"]
    assert report["requests"] == len(rows)
    assert report["beyond_reserved_usd"] == usd_string(max(beyond, 0))


def test_token_rate_limits_count_the_output_worst_case(rig):
    key = rig.app(budget=None)
    rig.wallet.set_app_limits("script", rpm=None, tpm=1000, concurrency=None)

    async def main(**kw: Any) -> list[Any]:
        client = rig.async_openai(key, timeout=60)
        try:
            return await _gather(
                50,
                lambda i: client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, **kw),
            )
        finally:
            await client.close()

    # without max_tokens the worst case is the model's output limit: more than a minute allows
    results = asyncio.run(main())
    assert all(isinstance(r, openai.RateLimitError) for r in results)
    assert "more than the app's limit of 1000 tokens per minute" in results[0].body["message"]
    assert rig.fake.served == []
    # with max_tokens the worst cases admitted in one minute fit the limit
    results = asyncio.run(main(max_tokens=100))
    ok = [r for r in results if not isinstance(r, BaseException)]
    assert 1 <= len(ok) < 50
    settled_all(rig)
    used = sum(r["input_tokens"] + r["output_tokens"] for r in rig.requests() if r["status"] == 200)
    assert used <= 1000


# -- the request that runs is the request that was priced -----------------------------------


AMBIGUOUS = [
    (b'{"model":"gpt-4o-mini","model":"gpt-4o","messages":[]}', "twice"),
    (b'{"model":"gpt-4o-mini","messages":[],"temperature":NaN}', "not JSON"),
    (b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"\\ud800"}]}', "surrogate"),
    (b'\xef\xbb\xbf{"model":"gpt-4o-mini","messages":[]}', "byte-order mark"),
    (b'{"model":"gpt-4o-mini","messages":[],"n":2.0}', "n must be a whole number"),
    (b'{"model":"gpt-4o-mini","messages":[],"stream":"true"}', "stream must be true or false"),
    (b'{"model":"gpt-4o-mini","messages":[],"max_tokens":10,"max_completion_tokens":20}',
     "differ"),
    (b'{"model":"gpt-4o-mini","messages":[],"max_tokens":1e3}', "whole number"),
    (b'{"model":"gpt-4o-mini","models":["gpt-4o"],"messages":[]}', "one model per request"),
    (b'{"model":"gpt-4o-mini","messages":[],"background":true}', None),  # chat ignores it
]  # fmt: skip


@pytest.mark.parametrize(("raw", "why"), AMBIGUOUS)
def test_what_two_parsers_could_read_differently_is_refused(rig, raw, why):
    key = rig.app(budget=BUDGET)
    resp = httpx.post(
        rig.url + "/v1/chat/completions",
        content=raw,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    if why is None:
        assert resp.status_code == 200
        return
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_request"
    assert why in resp.json()["error"]["message"]
    assert rig.fake.served == [] and spent(rig) == 0


def test_cache_control_is_found_by_structure_not_by_bytes():
    escaped = (
        b'{"model":"claude-sonnet-4-5","max_tokens":10,"system":[{"type":"text","text":"x",'
        b'"cache\\u005fcontrol":{"type":"ephemeral","ttl":"1h"}}],"messages":[]}'
    )
    assert b"cache_control" not in escaped  # a byte search would have missed it
    assert cache_write_of(parse_object(escaped)).value == "1h"


@pytest.mark.parametrize(
    ("path", "body", "why"),
    [
        ("/v1/responses", {"model": "gpt-4o-mini", "input": "hi", "background": True},
         "background"),
        ("/v1/chat/completions",
         {"model": "gpt-4o-mini", "messages": MSGS, "modalities": ["text", "audio"]}, "audio"),
        ("/v1/chat/completions",
         {"model": "gpt-4o-mini", "messages": MSGS, "service_tier": "priority"}, "priority"),
        ("/v1/messages",
         {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": MSGS,
          "tools": [{"type": "code_execution_20250825", "name": "code_execution"}]},
         "container hours"),
    ],
)  # fmt: skip
def test_requests_with_no_bound_are_refused_clearly(rig, path, body, why):
    key = rig.app(budget=BUDGET)
    headers = {"Authorization": f"Bearer {key}", "anthropic-version": "2023-06-01"}
    if not path.startswith("/v1/messages"):
        headers.pop("anthropic-version")
    resp = httpx.post(rig.url + path, json=body, headers=headers)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["code"] == "invalid_request" and why in err["message"]
    assert rig.fake.served == []


def test_a_part_type_spelled_with_an_escape_is_still_found():
    """Names are found by structure; the byte search that skips the walk for plain bodies
    gives way to it whenever the body holds any \\u escape."""
    from aiwallet.domain.bounds import OPENAI_IMAGE_TOKENS, TEXT_OVERHEAD, chat_bound
    from aiwallet.domain.catalog import PriceRow

    row = PriceRow("openai", "some-model", "m", 1_000, 1_000, context_limit=10**6, output_limit=8)
    plain = b'{"model":"m","messages":[{"role":"user","content":"hi"}]}'
    escaped = (
        b'{"model":"m","messages":[{"role":"user","content":[{"type":"\\u0069mage_url",'
        b'"image_url":{"url":"https://example.invalid/a.png"}}]}]}'
    )
    assert chat_bound(parse_object(plain), plain, row).prompt_tokens == len(plain) + TEXT_OVERHEAD
    bound = chat_bound(parse_object(escaped), escaped, row)
    assert bound.prompt_tokens == len(escaped) + TEXT_OVERHEAD + OPENAI_IMAGE_TOKENS


# -- shapes the hostile property test (test_hard_cap_property.py) found under-reserved ------
def _hostile_batch(rig, key: str, call: Any, n: int, *, api: str = "openai") -> list[Any]:
    """``n`` calls of ``call(client)`` at once against the hostile fake (the most a real
    provider could bill each: tests/fakeupstream/hostile.py)."""
    rig.fake.set_default(Script(hostile=True))
    try:

        async def main() -> list[Any]:
            make = rig.async_openai if api == "openai" else rig.async_anthropic
            client = make(key, timeout=60)
            try:
                return await _gather(n, lambda i: call(client))
            finally:
                await client.close()

        return asyncio.run(main())
    finally:
        rig.fake.set_default(Script())


def _within_reservations_and_budget(rig, results: list[Any], limit: int) -> list[dict]:
    settled_all(rig)
    assert any(not isinstance(r, BaseException) for r in results)
    _assert_clear(_refusals(results), "budget_exceeded")
    rows = [r for r in rig.requests() if r["status"] == 200]
    assert rows and not any(r["over_reserved"] for r in rows), rows
    no_row_passed_its_reservation(rig)
    assert spent(rig) <= limit
    return rows


def test_embeddings_inputs_are_reserved_past_the_context_window(rig):
    """Each input must fit the model's window (8,191 tokens), but all of them are billed: two
    inputs near the window cost more than the window alone reserved."""
    key = rig.app(budget=BUDGET)
    inputs = ["y" * 6_000, "z" * 6_000]  # 12,000 tokens for a tokenizer reading a byte each
    results = _hostile_batch(
        rig,
        key,
        lambda c: c.embeddings.create(model="text-embedding-3-small", input=inputs),
        30,
    )
    rows = _within_reservations_and_budget(rig, results, LIMIT_NANO)
    assert {r["input_tokens"] for r in rows} == {12_000}


def test_code_interpreter_output_is_reserved_at_the_context_window(rig):
    """What the code prints is read by the model: up to the window, like any tool's results."""
    key = rig.app(budget=BUDGET)
    tools = [{"type": "code_interpreter", "container": {"type": "auto"}}]
    results = _hostile_batch(
        rig,
        key,
        lambda c: c.responses.create(
            model="gpt-4o-mini", input="run it", tools=tools, max_output_tokens=64
        ),
        10,
    )
    rows = _within_reservations_and_budget(rig, results, LIMIT_NANO)
    assert {r["input_tokens"] for r in rows} == {128_000}


def test_search_results_passed_back_encrypted_are_reserved_at_the_context_window(rig):
    """A web_search_tool_result from an earlier turn carries the pages as encrypted_content:
    the model reads them decrypted, so its bytes bound nothing."""
    key = rig.app(budget="0.2/day")
    tid = "srvtoolu_earlier"
    result = {
        "type": "web_search_result",
        "url": "https://example.invalid/",
        "title": "x",
        "encrypted_content": "ZmFrZQ==",
    }
    msgs = [
        {"role": "user", "content": "search for it"},
        {
            "role": "assistant",
            "content": [
                {"type": "server_tool_use", "id": tid, "name": "web_search", "input": {"q": "x"}},
                {"type": "web_search_tool_result", "tool_use_id": tid, "content": [result]},
            ],
        },
        {"role": "user", "content": "and then?"},
    ]
    results = _hostile_batch(
        rig,
        key,
        lambda c: c.messages.create(model="claude-3-haiku-20240307", max_tokens=64, messages=msgs),
        10,
        api="anthropic",
    )
    rows = _within_reservations_and_budget(rig, results, 200_000_000)
    assert {r["input_tokens"] for r in rows} == {200_000}


def test_a_clamped_request_with_a_prediction_keeps_room_for_its_rejected_tokens(rig):
    """Rejected prediction tokens are billed beyond max_completion_tokens: clamping the field
    to what the budget affords leaves room for them (and never raises what the app asked)."""
    key = rig.app(budget=BUDGET)
    prediction = {"type": "content", "content": "p" * 5_000}
    asked = 100_000  # more than $0.05 pays for (gpt-4o-mini: $0.60 per 1M output tokens)
    results = _hostile_batch(
        rig,
        key,
        lambda c: c.chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, prediction=prediction, max_completion_tokens=asked
        ),
        5,
    )
    _within_reservations_and_budget(rig, results, LIMIT_NANO)
    served = rig.fake.served
    assert served and all(s.request_json["max_completion_tokens"] < asked for s in served)
    assert all(
        s.generated["completion"] == s.request_json["max_completion_tokens"] + 5_000 for s in served
    )
