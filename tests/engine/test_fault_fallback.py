"""The fault matrix with a second provider configured: each fault of the first one (before
any byte reached the app) ends in an answer served by the fallback, with one ledger row (the
fallback's), every attempt in the request log and no reservation left open; both APIs, plain
and streamed."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

import pytest

from aiwallet.engine.attempts import Resilience
from engine.conftest import make_rig
from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY, Script

MSGS = [{"role": "user", "content": "a b c d"}]


async def no_wait(_seconds: float) -> None:
    await asyncio.sleep(0)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Fault:
    name: str
    script: Script | None = None  # what the first provider's answers are (each attempt)
    times: int = 3  # how many of its attempts it answers so (the retries included)
    where: str | None = None  # "closed" / "unresolvable": the first provider is not there
    first_status: int | None = None  # the status its attempts log (None: no answer)


FAULTS = [
    Fault("refused", where="closed"),
    Fault("unresolvable", where="unresolvable"),
    Fault("500", Script(status=500), first_status=500),
    Fault("503", Script(status=503), first_status=503),
    Fault("overloaded-529", Script(status=529), first_status=529),
    # a rate limit whose Retry-After is past the retry cap: not waited for, the next serves
    Fault("429-long-wait", Script(status=429, retry_after=120), times=1, first_status=429),
]


@pytest.fixture
def frig(tmp_path, fake):
    fake.reset()
    r = make_rig(tmp_path, fake, resilience=Resilience(sleep=no_wait))
    w = r.wallet
    w.add_provider("backup", kind="openai-compatible", api_key=OPENAI_KEY,
                   base_url=fake.base_url + "/v1")  # fmt: skip
    w.add_provider("abackup", kind="anthropic-compatible", api_key=ANTHROPIC_KEY,
                   base_url=fake.base_url)  # fmt: skip
    yield r
    r.engine.stop()
    r.wallet.close()


def _first_elsewhere(rig, fault: Fault, api: str) -> None:
    url = (
        f"http://127.0.0.1:{closed_port()}"
        if fault.where == "closed"
        else "http://aiwallet-no-such-host.invalid:1"
    )
    kind = "openai" if api == "openai" else "anthropic"
    rig.wallet.add_provider(
        kind, kind=kind, api_key=OPENAI_KEY if api == "openai" else ANTHROPIC_KEY,
        base_url=url + ("/v1" if api == "openai" else ""), replace=True,
    )  # fmt: skip


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("api", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_the_fallback_serves_when_the_first_provider_fails(frig, fault, api, stream):
    rig = frig
    if fault.name == "overloaded-529" and api == "openai":
        pytest.skip("529 is Anthropic's status")
    primary, second = ("openai", "backup") if api == "openai" else ("anthropic", "abackup")
    model = "gpt-4o-mini" if api == "openai" else "claude-sonnet-4-5"
    rig.wallet.set_route("r", f"{primary}/{model},{second}/{model}")
    if fault.where:
        _first_elsewhere(rig, fault, api)
    else:
        rig.fake.script(fault.script, times=fault.times)
    key = rig.app()
    if api == "openai":
        client = rig.openai(key)
        if stream:
            with client.chat.completions.with_streaming_response.create(
                model="r", messages=MSGS, max_tokens=30, stream=True
            ) as resp:
                headers = resp.headers
                text = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
        else:
            raw = client.chat.completions.with_raw_response.create(
                model="r", messages=MSGS, max_tokens=30
            )
            headers, text = raw.headers, raw.parse().choices[0].message.content
    else:
        client = rig.anthropic(key)
        if stream:
            with client.messages.with_streaming_response.create(
                model="r", messages=MSGS, max_tokens=30, stream=True
            ) as resp:
                headers = resp.headers
                text = "".join(
                    e.delta.text for e in resp.parse()
                    if e.type == "content_block_delta" and e.delta.type == "text_delta"
                )  # fmt: skip
        else:
            raw = client.messages.with_raw_response.create(model="r", messages=MSGS, max_tokens=30)
            headers, text = raw.headers, raw.parse().content[0].text
    assert text  # served
    assert headers["x-aiwallet-provider"] == second and headers["x-aiwallet-route"] == "r"
    assert headers["x-aiwallet-fallbacks"] == "1"
    spend = [r for r in rig.ledger_rows() if r["kind"] == "spend"]
    assert len(spend) == 1 and spend[0]["provider"] == second
    assert spend[0]["amount_nano"] > 0 and f"{primary}/{model}" in spend[0]["note"]
    attempts = rig.wallet.requests.attempts(headers["x-aiwallet-request-id"])
    firsts = [a for a in attempts if a.provider == primary]
    assert firsts and all(a.status == fault.first_status for a in firsts)
    assert [a.provider for a in attempts][-1] == second and attempts[-1].status == 200
    assert rig.wallet.budgets.open_reservations() == []
