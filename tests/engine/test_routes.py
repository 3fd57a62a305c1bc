"""Routes and fallback chains, the cheapest healthy provider, budget-aware downgrade and
prompt templates, through a real engine with the official SDKs against the fake upstream."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import anthropic
import openai
import pytest

from aiwallet.domain.bounds import chat_bound
from aiwallet.domain.cost import bound_cost
from aiwallet.domain.money import parse_budget_spec
from aiwallet.engine.attempts import Resilience
from aiwallet.upstreams.breaker import Outcome, Ticket
from engine.conftest import cli, make_rig
from fakeupstream import OPENAI_KEY, Script
from orkit.server import INFERENCE_KEY, MODELS, FakeOpenRouter

HELLO = [{"role": "user", "content": "hello there"}]


async def no_wait(_seconds: float) -> None:
    """The retry backoff, without waiting (what is tested is where requests go)."""
    await asyncio.sleep(0)


@pytest.fixture
def rig(tmp_path, fake):
    fake.reset()
    r = make_rig(tmp_path, fake, resilience=Resilience(sleep=no_wait))
    yield r
    r.engine.stop()
    r.wallet.close()


@pytest.fixture
def backup(rig):
    """A second OpenAI-wire provider serving the same models (the same fake behind it)."""
    rig.wallet.add_provider(
        "backup", kind="openai-compatible", api_key=OPENAI_KEY, base_url=rig.fake.base_url + "/v1"
    )
    return rig


def raw_create(client: openai.OpenAI, **kw):
    return client.chat.completions.with_raw_response.create(**kw)


def test_a_route_falls_back_when_its_first_target_fails(backup, capsys):
    rig = backup
    code, out, _ = cli(capsys, rig, "routes", "add", "smart", "--to",
                       "openai/gpt-4o-mini,backup/gpt-4o-mini")  # fmt: skip
    assert code == 0 and "openai/gpt-4o-mini → backup/gpt-4o-mini" in out
    rig.fake.script(Script(status=503), times=3)  # the first provider fails, retries too
    raw = raw_create(rig.openai(rig.app()), model="smart", messages=HELLO, max_tokens=20)
    reply = raw.parse()
    assert reply.choices[0].message.content
    assert raw.headers["x-aiwallet-provider"] == "backup"
    assert raw.headers["x-aiwallet-model"] == "gpt-4o-mini"
    assert raw.headers["x-aiwallet-route"] == "smart"
    assert raw.headers["x-aiwallet-fallbacks"] == "1"
    assert [s.status for s in rig.fake.served] == [503, 503, 503, 200]
    attempts = rig.wallet.requests.attempts(raw.headers["x-aiwallet-request-id"])
    assert [(a.provider, a.status) for a in attempts] == [
        ("openai", 503),
        ("openai", 503),
        ("openai", 503),
        ("backup", 200),
    ]
    (row,) = [r for r in rig.ledger_rows() if r["kind"] == "spend"]
    assert row["provider"] == "backup" and "openai/gpt-4o-mini: upstream_unavailable" in row["note"]
    (req,) = rig.requests()
    assert req["provider"] == "backup" and req["status"] == 200
    assert rig.wallet.budgets.open_reservations() == []


def test_a_fault_after_the_first_relayed_byte_is_not_retried(backup):
    rig = backup
    rig.wallet.set_route("smart", "openai/gpt-4o-mini,backup/gpt-4o-mini")
    rig.fake.script(Script(cut_after_events=2, reply_tokens=40))
    stream = rig.openai(rig.app()).chat.completions.create(
        model="smart", messages=HELLO, max_tokens=60, stream=True
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    assert len(rig.fake.served) == 1  # the backup was never asked
    (row,) = [r for r in rig.ledger_rows() if r["kind"] == "spend"]
    assert row["provider"] == "openai" and row["token_source"] == "estimated"


def test_a_route_never_widens_the_grant(backup):
    rig = backup
    rig.wallet.set_route("smart", "openai/gpt-4o-mini,openai/gpt-4o")
    key = rig.app("narrow", models=["gpt-4o-mini"])
    rig.fake.script(Script(status=503), times=3)
    with pytest.raises(openai.APIStatusError) as caught:
        rig.openai(key).chat.completions.create(model="smart", messages=HELLO, max_tokens=20)
    assert caught.value.status_code == 503  # gpt-4o is not this app's: never tried
    assert {s.request_json["model"] for s in rig.fake.served} == {"gpt-4o-mini"}
    only = rig.app("other", models=["gpt-4o"])
    raw = raw_create(rig.openai(only), model="smart", messages=HELLO, max_tokens=20)
    assert raw.headers["x-aiwallet-model"] == "gpt-4o"  # its only allowed target
    with pytest.raises(openai.PermissionDeniedError):
        rig.openai(rig.app("none", models=["claude-*"])).chat.completions.create(
            model="smart", messages=HELLO
        )


def test_route_names_and_targets_are_checked(rig, capsys):
    code, _, err = cli(capsys, rig, "routes", "add", "gpt-4o", "--to", "openai/gpt-4o-mini")
    assert code != 0 and "model or provider name" in err
    code, _, err = cli(capsys, rig, "routes", "add", "smart", "--to", "nowhere/gpt-4o")
    assert code != 0 and "names no provider" in err
    code, _, err = cli(capsys, rig, "routes", "add", "smart", "--to", "openai/a,openai/a")
    assert code != 0 and "twice" in err
    assert cli(capsys, rig, "routes", "add", "smart", "--to", "openai/gpt-4o-mini")[0] == 0
    code, _, err = cli(capsys, rig, "routes", "add", "smart", "--to", "openai/gpt-4o")
    assert code != 0 and "--replace" in err
    code, out, _ = cli(capsys, rig, "routes", "list", "--json")
    assert json.loads(out)[0]["targets"] == ["openai/gpt-4o-mini"]
    assert cli(capsys, rig, "routes", "remove", "smart")[0] == 0
    assert rig.wallet.routes.list() == []


def test_the_cheapest_healthy_provider_serves_a_model(rig):
    orfake = FakeOpenRouter()
    orfake.start_in_thread()
    try:
        cheap = {**MODELS["openai/gpt-4o-mini"], "prompt": "0.0000001", "completion": "0.0000004"}
        orfake.models_answer = {"data": [{"id": "openai/gpt-4o-mini", "pricing": cheap}]}
        rig.wallet.add_provider(
            "openrouter", kind="openrouter", api_key=INFERENCE_KEY, base_url=orfake.base_url
        )
        rig.wallet.refresh_openrouter_prices()
        client = rig.openai(rig.app(models=["*"]))
        raw = raw_create(client, model="gpt-4o-mini", messages=HELLO, max_tokens=20)
        assert raw.headers["x-aiwallet-provider"] == "openrouter"  # cheaper than OpenAI's
        assert raw.headers["x-aiwallet-model"] == "openai/gpt-4o-mini"
        # the same model, pinned to a provider, goes there whatever it costs
        raw = raw_create(client, model="openai/gpt-4o-mini", messages=HELLO, max_tokens=20)
        assert raw.headers["x-aiwallet-provider"] == "openai"
        # an app whose grant names the model only is never sent to another provider's id
        narrow = rig.openai(rig.app("narrow", models=["gpt-4o-mini"]))
        raw = raw_create(narrow, model="gpt-4o-mini", messages=HELLO, max_tokens=20)
        assert raw.headers["x-aiwallet-provider"] == "openai"
        # an unhealthy provider (its breaker open) goes last
        health = rig.engine.state.health

        async def open_breaker() -> bool:
            breaker = health.breaker("openrouter")
            for _ in range(health.policy.failures_to_open):
                ticket = breaker.admit()
                assert isinstance(ticket, Ticket)
                breaker.record(ticket, Outcome.FAILURE)
            return health.healthy("openrouter")

        assert not asyncio.run_coroutine_threadsafe(open_breaker(), rig.engine.loop).result(5)
        raw = raw_create(client, model="gpt-4o-mini", messages=HELLO, max_tokens=20)
        assert raw.headers["x-aiwallet-provider"] == "openai"
    finally:
        orfake.stop()


def _worst(rig, model: str, max_tokens: int) -> int:
    body = {"model": model, "messages": HELLO, "max_tokens": max_tokens}
    row = rig.wallet.catalog.get("openai", model)
    return bound_cost(chat_bound(body, json.dumps(body).encode(), row), row)


def test_budget_aware_downgrade_serves_the_next_cheaper_model_of_a_route(rig, capsys):
    rig.wallet.set_route("tiered", "openai/gpt-4o,openai/gpt-4o-mini")
    big, small = _worst(rig, "gpt-4o", 2000), _worst(rig, "gpt-4o-mini", 2000)
    assert small < big
    budget = Decimal(small + (big - small) // 2).scaleb(-9)
    key = rig.app("thrifty", budget=f"{budget}/day", models=["*"])
    assert cli(capsys, rig, "apps", "downgrade", "thrifty", "on")[0] == 0
    raw = raw_create(rig.openai(key), model="tiered", messages=HELLO, max_tokens=2000)
    assert raw.headers["x-aiwallet-model"] == "gpt-4o-mini"
    assert raw.headers["x-aiwallet-downgraded-from"] == "openai/gpt-4o"
    assert "x-aiwallet-max-tokens-clamped" not in raw.headers
    (row,) = [r for r in rig.ledger_rows() if r["kind"] == "spend"]
    assert row["model"] == "gpt-4o-mini" and "downgraded from openai/gpt-4o" in row["note"]
    # a model asked for by name downgrades along a route that lists it, too
    raw = raw_create(rig.openai(key), model="openai/gpt-4o", messages=HELLO, max_tokens=2000)
    assert raw.headers["x-aiwallet-model"] == "gpt-4o-mini"
    # off (the default): never downgraded
    rig.wallet.set_app_downgrade("thrifty", False)
    rig.wallet.set_budget(parse_budget_spec(f"{budget}/day"), "thrifty")
    raw = raw_create(rig.openai(key), model="tiered", messages=HELLO, max_tokens=2000)
    assert raw.headers["x-aiwallet-model"] == "gpt-4o"
    assert "x-aiwallet-downgraded-from" not in raw.headers


def test_prompt_templates_render_into_the_request(rig, capsys, tmp_path):
    src = tmp_path / "review.json"
    src.write_text(json.dumps([
        {"role": "system", "content": "You review {{language}} code."},
        {"role": "user", "content": "Review this:\n{{code}}"},
    ]))  # fmt: skip
    code, out, _ = cli(capsys, rig, "prompts", "add", "review", "--file", str(src))
    assert code == 0 and "version 1" in out and "code, language" in out
    key = rig.app()
    rig.openai(key).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "be brief"}],
        max_tokens=20,
        extra_body={"aiwallet_template": {
            "name": "review", "variables": {"language": "Python", "code": "print(1)"}}},
    )  # fmt: skip
    sent = rig.fake.served[-1].request_json
    assert "aiwallet_template" not in sent
    assert sent["messages"] == [
        {"role": "system", "content": "You review Python code."},
        {"role": "user", "content": "Review this:\nprint(1)"},
        {"role": "user", "content": "be brief"},
    ]
    # version 2, used by its number; the Anthropic API gets the system text as "system"
    src.write_text(json.dumps([{"role": "system", "content": "Terse {{language}} reviewer."}]))
    assert cli(capsys, rig, "prompts", "add", "review", "--file", str(src))[0] == 0
    rig.anthropic(key).messages.create(
        model="claude-sonnet-4-5", max_tokens=20, messages=[{"role": "user", "content": "x=1"}],
        extra_body={"aiwallet_template": {
            "name": "review", "version": 2, "variables": {"language": "Go"}}},
    )  # fmt: skip
    sent = rig.fake.served[-1].request_json
    assert sent["system"] == "Terse Go reviewer." and sent["messages"][0]["content"] == "x=1"
    for ref, words in (
        ({"name": "review", "version": 1, "variables": {"language": "C"}}, "needs the variable"),
        ({"name": "review", "version": 2, "variables": {"language": "C", "x": "y"}}, "has no"),
        ({"name": "nope"}, "no prompt template"),
        ({"name": "review", "version": 2, "variables": {"language": 3}}, "must be text"),
    ):
        with pytest.raises(openai.BadRequestError) as caught:
            rig.openai(key).chat.completions.create(
                model="gpt-4o-mini", messages=[], extra_body={"aiwallet_template": ref}
            )
        assert caught.value.body["code"] == "invalid_request" and words in str(caught.value)
    with pytest.raises(anthropic.BadRequestError):
        rig.anthropic(key).messages.create(
            model="claude-sonnet-4-5", max_tokens=20, messages=[],
            extra_body={"aiwallet_template": {"name": "nope"}},
        )  # fmt: skip
    code, out, _ = cli(capsys, rig, "prompts", "list")
    assert code == 0 and "review" in out
    code, out, _ = cli(capsys, rig, "prompts", "show", "review", "--version", "1")
    assert "You review {{language}} code." in out
    assert cli(capsys, rig, "prompts", "remove", "review")[0] == 0
    assert rig.wallet.templates.list() == []


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize(
    "targets, served_by",
    [
        ("anthropic/claude-sonnet-4-5,openai/gpt-4o-mini", "openai"),  # translated → native
        ("openai/gpt-4o-mini,anthropic/claude-sonnet-4-5", "anthropic"),  # native → translated
    ],
    ids=["to-native", "to-translated"],
)
def test_a_route_falls_back_across_wire_formats(rig, targets, served_by, stream):
    """An OpenAI-SDK client's route whose targets speak both formats: when the first fails,
    the next is tried in its own format (the client's request translated again, or as sent),
    and the client gets an answer its SDK parses; the reservation covers the costlier."""
    rig.wallet.set_route("mixed", targets)
    rig.fake.script(Script(status=503), times=3)  # the first target fails, its retries too
    client = rig.openai(rig.app(models=["*"]))
    if stream:
        with client.chat.completions.with_streaming_response.create(
            model="mixed", messages=HELLO, max_tokens=30, stream=True,
            stream_options={"include_usage": True},
        ) as resp:  # fmt: skip
            headers = resp.headers
            chunks = list(resp.parse())
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    else:
        raw = client.chat.completions.with_raw_response.create(
            model="mixed", messages=HELLO, max_tokens=30
        )
        headers, reply = raw.headers, raw.parse()
        text = reply.choices[0].message.content or ""
        assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert text
    assert headers["x-aiwallet-provider"] == served_by
    assert headers["x-aiwallet-fallbacks"] == "1"
    served = rig.fake.served
    assert [s.status for s in served] == [503, 503, 503, 200]
    assert served[-1].api == served_by  # the fallback went in its own wire format
    (row,) = [r for r in rig.ledger_rows() if r["kind"] == "spend"]
    assert row["provider"] == served_by and row["amount_nano"] > 0
    assert rig.wallet.budgets.open_reservations() == []
