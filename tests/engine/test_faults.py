"""Upstream faults: the client gets a clear error, the ledger stays exact, nothing stays open."""

import asyncio

import anthropic
import httpx
import openai
import pytest

from engine.conftest import make_rig
from fakeupstream import FakeUpstream, Script
from waiting import wait_until

MSGS = [{"role": "user", "content": "a b c d"}]


def upstream_connections(fake: FakeUpstream) -> set:
    """The fake upstream's open connections, read on its own loop (where they change). aiohttp
    drops one only once its socket has closed and its handler has ended."""

    async def read() -> set:
        assert fake._runner is not None
        return set(fake._runner.server.connections)

    assert fake._loop is not None
    return asyncio.run_coroutine_threadsafe(read(), fake._loop).result(5)


def only_row(rig):
    rows = rig.ledger_rows()
    assert len(rows) == 1, rows
    assert rig.wallet.budgets.open_reservations() == []
    return rows[0]


def test_timeout_before_first_byte(tmp_path, fake):
    from aiwallet.upstreams.client import Timeouts

    fake.reset()
    rig = make_rig(tmp_path, fake, timeouts=Timeouts(connect_s=2, read_s=0.5))
    try:
        key = rig.app()
        fake.script(Script(hang=True))
        with pytest.raises(openai.APIStatusError) as err:
            rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        assert err.value.status_code == 504 and err.value.body["code"] == "upstream_timeout"
        assert rig.ledger_rows() == [] and rig.wallet.budgets.open_reservations() == []
        [req] = rig.requests()
        assert req["error_code"] == "upstream_timeout"
    finally:
        rig.engine.stop()


def test_429_is_relayed_with_retry_after(rig):
    key = rig.app()
    rig.fake.script(Script(status=429, retry_after=17))
    with pytest.raises(openai.RateLimitError) as err:
        rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert err.value.response.headers["retry-after"] == "17"
    assert err.value.response.headers["x-aiwallet-cost-usd"] == "0.000000000"
    assert rig.ledger_rows() == []


@pytest.mark.parametrize(("status", "expected"), [(500, 502), (503, 503)])
def test_upstream_5xx_is_upstream_unavailable(rig, status, expected):
    key = rig.app()
    rig.fake.script(Script(status=status), times=3)  # every attempt (retries: test_retries)
    with pytest.raises(openai.APIStatusError) as err:
        rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert err.value.status_code == expected and err.value.body["code"] == "upstream_unavailable"
    assert rig.ledger_rows() == []


def test_anthropic_overloaded_529(rig):
    key = rig.app()
    rig.fake.script(Script(status=529), times=3)
    with pytest.raises(anthropic.APIStatusError) as err:
        rig.anthropic(key).messages.create(model="claude-sonnet-4-5", max_tokens=10, messages=MSGS)
    assert (
        err.value.status_code == 503 and err.value.body["error"]["code"] == "upstream_unavailable"
    )


def test_cut_stream_is_billed_from_what_was_relayed(rig):
    key = rig.app()
    rig.fake.script(Script(cut_after_events=6))  # role chunk + 5 words, then the socket dies
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for _ in rig.openai(key).chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, stream=True
        ):
            pass
    row = only_row(rig)
    assert row["token_source"] == "estimated" and "ended before" in row["note"]
    # estimate: output = the larger of ceil(relayed text bytes / 4) = ceil(5 × 3 / 4) = 4 and
    # one token per relayed output event (5 words: 5); prompt from the request body bytes / 4.
    # Priced at gpt-4o-mini's rates.
    [req] = rig.requests()
    assert req["output_tokens"] == 5 and req["token_source"] == "estimated"
    assert row["amount_nano"] == req["cost_nano"] > 0


def test_missing_and_malformed_usage_are_estimated(rig):
    key = rig.app()
    client = rig.openai(key)
    rig.fake.script(Script(usage="missing"))
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    rig.fake.script(Script(usage="malformed"))
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    rig.fake.script(Script(usage="missing"))
    for _ in client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True):
        pass
    rows = rig.ledger_rows()
    assert [r["token_source"] for r in rows] == ["estimated"] * 3
    assert all(r["amount_nano"] > 0 for r in rows)
    assert "usage" in rows[1]["note"]


def test_wrong_usage_is_billed_as_reported(rig):
    key = rig.app()
    rig.fake.script(Script(usage="wrong"))  # the provider reports 10x the prompt tokens
    r = rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    row = only_row(rig)
    # what the provider says is what the wallet records: 110 × 0.15 + 12 × 0.60 per 1M
    assert r.usage.prompt_tokens == 110 and row["amount_nano"] == 23_700
    assert row["token_source"] == "provider"


def test_anthropic_error_event_mid_stream(rig):
    key = rig.app()
    rig.fake.script(Script(error_event_mid_stream=True))
    with (
        pytest.raises(anthropic.APIStatusError),
        rig.anthropic(key).messages.stream(
            model="claude-sonnet-4-5", max_tokens=100, messages=MSGS
        ) as s,
    ):
        for _ in s:
            pass
    row = only_row(rig)
    assert row["token_source"] == "estimated" and row["amount_nano"] > 0


def test_client_disconnect_closes_the_upstream_and_settles(rig):
    key = rig.app()
    rig.fake.script(Script(reply_tokens=200, event_delay_s=0.02))
    before = upstream_connections(rig.fake)  # idle ones other clients of the fake left open
    with httpx.stream(
        "POST",
        rig.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MSGS, "stream": True},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ) as resp:
        for n, _ in enumerate(resp.iter_raw()):
            if n >= 3:
                break  # leave mid-stream
    wait_until(
        lambda: not rig.wallet.budgets.open_reservations() and rig.ledger_rows(),
        what="the stream the client left to be settled",
    )
    row = only_row(rig)
    assert row["token_source"] == "estimated"
    served = rig.fake.served[-1]
    # the upstream was closed too: the engine's connection to the fake is gone (and the fake's
    # handler has ended) long before the whole 200-event answer could have gone out
    wait_until(
        lambda: not upstream_connections(rig.fake) - before,
        what="the engine to close its connection to the upstream",
    )
    assert served.completed is False and served.events_sent < 200
