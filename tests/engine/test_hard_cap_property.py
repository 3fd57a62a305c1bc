"""The hard cap, as a property: against the most hostile provider each request shape allows,
no budget is ever passed.

The fake upstream runs in hostile mode (``Script(hostile=True)``, tests/fakeupstream/hostile.py):
for every request it accepts it reports the largest usage a real provider could bill for
exactly that request, by the providers' published rules (a token per byte of text, every image
at its model family's maximum, stored context and tool results filling the context window,
Anthropic tool prompts, every output token the max-output field allows in every choice, the
whole prompt written to the cache, server tools used up to their cap), and speaks each API's
wire format, streamed or not.

Hypothesis draws a batch of requests over every API (chat completions, responses, embeddings,
messages, count_tokens) and feature (n, images by URL and inline, files and documents, stored
context, client and server tools, caps on tool uses or none, cache_control with both
lifetimes, streams, max-output fields present or absent, shapes with no bound), sent by one to
three fresh apps with fresh budgets ($0.01 to $2 each, and a fresh wallet budget), all at once.
When everything is settled:

* no budget's settled sum passes its limit (counters and ledger), nothing is left reserved;
* no request is ``over_reserved`` (the provider billed within the engine's worst case: an
  over_reserved row is a shape the engine under-reserved), and every row costs at most its
  reservation;
* the ledger bills each request at least what the provider billed it (tokens at the catalog's
  prices and the provider's fees), so what is settled is what the budget really paid (code
  interpreter containers apart: a reported gap, see ``CONTAINERS_BILLED``);
* every refusal is a clean 4xx in the caller's wire shape: 402 ``budget_exceeded``, 400
  ``invalid_request`` for exactly the shapes with no bound, 429 ``rate_limited`` only for an
  app with a rate limit, the provider's own 400 for a prompt past the context window; no 5xx.

One engine serves every example (fresh apps and budgets each time). Default: 25 examples of up
to 8 requests; ``AIWALLET_FUZZ_LONG=1`` (``make proof``): 400 examples of up to 16.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import openai
import pytest
from hypothesis import HealthCheck, Phase, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import select

from aiwallet.catalog_files import shipped_catalog
from aiwallet.domain.cost import cost_of
from aiwallet.domain.money import BudgetSpec, Period
from aiwallet.domain.usage import Usage
from aiwallet.store import schema as t
from engine.test_hard_cap import reserved_of, settled_all
from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY, Script, hostile

LONG = os.environ.get("AIWALLET_FUZZ_LONG", "") not in ("", "0")
EXAMPLES = 400 if LONG else 25
BATCH = 16 if LONG else 8
MIN_BUDGET, MAX_BUDGET = 10_000_000, 2_000_000_000  # $0.01 .. $2 in nano-dollars

CHAT_MODELS = [
    "gpt-4o-mini", "gpt-4o", "gpt-4.1-nano", "gpt-4.1-mini", "o4-mini", "o3", "gpt-5-nano",
    "gpt-5-mini", "gpt-3.5-turbo", "gpt-5.4",
]  # fmt: skip
# Built-in tools fill the context window: the cheap windows more often, so that they run.
RESPONSES_MODELS = [*CHAT_MODELS, "gpt-4o-mini", "gpt-5-nano", "gpt-4.1-nano", "gpt-4o-mini"]
EMBEDDING_MODELS = ["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"]
CLAUDE_MODELS = [
    "claude-haiku-4-5", "claude-sonnet-4-5", "claude-3-5-haiku-latest",
    "claude-3-haiku-20240307", "claude-opus-4-1", "claude-sonnet-4-6",
]  # fmt: skip
IMAGE_URL = "https://example.invalid/cat.png"
PNG_B64 = (  # a 1 x 1 PNG: its bytes bound nothing about what the image costs
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
PDF_B64 = "JVBERi0xLjQKJcfsj6IKMSAwIG9iago8PD4+CmVuZG9iagp0cmFpbGVyCjw8Pj4KJSVFT0YK"


# -- strategies ------------------------------------------------------------------------------
texts = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=40),
    st.sampled_from(["hi", "what is in the picture?", "é ü 漢字 🙂", ""]),
    st.integers(200, 3_000).map(lambda n: "x" * n),  # a long prompt: a token per byte
)
max_values = st.one_of(
    st.integers(1, 64), st.integers(65, 4_096), st.integers(4_097, 300_000)
)  # fmt: skip
rarely = st.sampled_from([False] * 9 + [True])  # (Hypothesis favours small integers)
now_and_then = st.sampled_from([False] * 6 + [True])


@dataclass
class Req:
    path: str
    body: dict[str, Any]
    app: int = 0  # which of the example's apps sends it
    unbounded: str | None = None  # why the wallet has no bound for it (it must answer 400)
    ascii: bool = True  # JSON with \\u escapes, or raw UTF-8

    @property
    def anthropic(self) -> bool:
        return self.path.startswith("/v1/messages")

    def content(self) -> bytes:
        return json.dumps(self.body, ensure_ascii=self.ascii).encode()


def _stream(draw: Any, body: dict[str, Any], *, usage_option: bool = False) -> None:
    if draw(st.booleans()):
        body["stream"] = True
        if usage_option and draw(st.booleans()):
            body["stream_options"] = {"include_usage": True}


FUNCTION = {
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}


@st.composite
def chat_part(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["text", "text", "image_url", "image_inline", "file"]))
    if kind == "text":
        return {"type": "text", "text": draw(texts)}
    if kind == "image_url":
        detail = draw(st.sampled_from([None, "low", "high", "auto"]))
        image = {"url": IMAGE_URL} | ({"detail": detail} if detail else {})
        return {"type": "image_url", "image_url": image}
    if kind == "image_inline":
        return {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}}
    file = draw(
        st.sampled_from(
            [
                {"file_id": "file-abc123"},
                {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{PDF_B64}"},
            ]
        )
    )
    return {"type": "file", "file": file}


@st.composite
def chat_request(draw: Any) -> Req:
    messages = []
    for _ in range(draw(st.integers(1, 3))):
        role = draw(st.sampled_from(["user", "user", "system", "assistant"]))
        if role == "user" and draw(st.booleans()):
            content: Any = draw(st.lists(chat_part(), min_size=1, max_size=3))
        else:
            content = draw(texts)
        messages.append({"role": role, "content": content})
    body: dict[str, Any] = {"model": draw(st.sampled_from(CHAT_MODELS)), "messages": messages}
    which = draw(st.sampled_from([None, "max_tokens", "max_completion_tokens", "both"]))
    if which is not None:
        value = draw(max_values)
        for name in ("max_tokens", "max_completion_tokens") if which == "both" else (which,):
            body[name] = value
    if draw(st.booleans()):
        body["n"] = draw(st.one_of(st.integers(1, 8), st.just(128)))
    if draw(st.booleans()):
        body["tools"] = [{"type": "function", "function": FUNCTION}]
    if draw(rarely):
        body["prediction"] = {"type": "content", "content": draw(texts)}
    if draw(rarely):
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "r", "schema": {"type": "object"}},
        }
    _stream(draw, body, usage_option=True)
    req = Req("/v1/chat/completions", body)
    if draw(rarely):
        req.unbounded = draw(st.sampled_from(["audio out", "audio in", "priority", "search model"]))
        if req.unbounded == "audio out":
            body["modalities"] = ["text", "audio"]
            body["audio"] = {"voice": "alloy", "format": "wav"}
        elif req.unbounded == "audio in":
            part = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
            body["messages"].append({"role": "user", "content": [part]})
        elif req.unbounded == "priority":
            body["service_tier"] = "priority"
        else:
            body["web_search_options"] = {}
    return req


@st.composite
def responses_part(draw: Any) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(["text", "text", "image_url", "image_inline", "image_file", "file"])
    )
    if kind == "text":
        return {"type": "input_text", "text": draw(texts)}
    if kind == "image_url":
        return {"type": "input_image", "image_url": IMAGE_URL, "detail": "auto"}
    if kind == "image_inline":
        return {"type": "input_image", "image_url": f"data:image/png;base64,{PNG_B64}"}
    if kind == "image_file":
        return {"type": "input_image", "file_id": "file-img123"}
    return draw(
        st.sampled_from(
            [
                {"type": "input_file", "file_id": "file-abc123"},
                {"type": "input_file", "file_url": "https://example.invalid/a.pdf"},
                {
                    "type": "input_file",
                    "filename": "a.pdf",
                    "file_data": f"data:application/pdf;base64,{PDF_B64}",
                },
            ]
        )
    )


RESPONSES_TOOLS = {
    "web_search": {"type": "web_search"},
    "web_search_preview": {"type": "web_search_preview"},
    "file_search": {"type": "file_search", "vector_store_ids": ["vs_abc"]},
    "image_generation": {"type": "image_generation"},
    "code_interpreter": {"type": "code_interpreter", "container": {"type": "auto"}},
    "code_interpreter_4g": {
        "type": "code_interpreter",
        "container": {"type": "auto", "memory_limit": "4g"},
    },
    "code_interpreter_id": {"type": "code_interpreter", "container": "cntr_abc123"},
    "mcp": {
        "type": "mcp",
        "server_label": "docs",
        "server_url": "https://example.invalid/mcp",
        "require_approval": "never",
    },
    "function": {"type": "function", **FUNCTION},
}


@st.composite
def responses_request(draw: Any) -> Req:
    body: dict[str, Any] = {"model": draw(st.sampled_from(RESPONSES_MODELS))}
    if draw(st.booleans()):
        body["input"] = draw(texts)
    else:
        items: list[Any] = []
        for _ in range(draw(st.integers(1, 3))):
            if draw(rarely):
                items.append({"type": "item_reference", "id": "msg_earlier"})
                continue
            role = draw(st.sampled_from(["user", "user", "developer", "assistant"]))
            if role == "user" and draw(st.booleans()):
                content: Any = draw(st.lists(responses_part(), min_size=1, max_size=3))
            else:
                content = draw(texts)
            items.append({"role": role, "content": content})
        body["input"] = items
    if draw(st.booleans()):
        body["instructions"] = draw(texts)
    for name, value in (
        ("previous_response_id", "resp_earlier"),
        ("conversation", "conv_earlier"),
        ("prompt", {"id": "pmpt_abc", "version": "2"}),
    ):
        if draw(rarely):
            body[name] = value
    tools = [name for name in RESPONSES_TOOLS if draw(now_and_then)]
    if tools:
        body["tools"] = [RESPONSES_TOOLS[name] for name in tools]
    if draw(st.booleans()):
        body["max_tool_calls"] = draw(st.integers(0, 6))
    if draw(st.booleans()):
        body["max_output_tokens"] = draw(max_values)
    _stream(draw, body)
    req = Req("/v1/responses", body)
    if draw(rarely):
        req.unbounded = draw(st.sampled_from(["background", "priority", "audio in"]))
        if req.unbounded == "background":
            body["background"] = True
        elif req.unbounded == "priority":
            body["service_tier"] = "priority"
        else:
            part = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}
            body["input"] = [{"role": "user", "content": [part]}]
    return req


@st.composite
def embeddings_request(draw: Any) -> Req:
    tokens = st.integers(0, 100_000)
    inp = draw(
        st.one_of(
            texts,
            st.lists(texts, min_size=1, max_size=4),
            st.lists(tokens, min_size=1, max_size=50),
            st.lists(st.lists(tokens, min_size=1, max_size=20), min_size=1, max_size=3),
            # long inputs, each near the model's 8,191-token window
            st.lists(st.integers(6_000, 9_000).map(lambda n: "y" * n), min_size=1, max_size=3),
        )
    )
    body: dict[str, Any] = {"model": draw(st.sampled_from(EMBEDDING_MODELS)), "input": inp}
    if draw(st.booleans()):
        body["encoding_format"] = draw(st.sampled_from(["float", "base64"]))
    return Req("/v1/embeddings", body)


def _cache(draw: Any) -> dict[str, Any]:
    """Maybe a cache breakpoint (5 minutes by default, or an hour)."""
    ttl = draw(st.sampled_from([None, None, "5m", "1h", "none"]))
    if ttl is None:
        return {}
    cc: dict[str, Any] = {"type": "ephemeral"}
    if ttl != "none":
        cc["ttl"] = ttl
    return {"cache_control": cc}


@st.composite
def anthropic_block(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["text", "text", "text", "image", "image_url", "document"]))
    if kind == "document":
        kind = draw(st.sampled_from(["pdf", "pdf_url", "text_doc", "file_doc"]))
    if kind == "text":
        return {"type": "text", "text": draw(texts), **_cache(draw)}
    if kind == "image":
        source = {"type": "base64", "media_type": "image/png", "data": PNG_B64}
        return {"type": "image", "source": source, **_cache(draw)}
    if kind == "image_url":
        return {"type": "image", "source": {"type": "url", "url": IMAGE_URL}}
    if kind == "pdf":
        source = {"type": "base64", "media_type": "application/pdf", "data": PDF_B64}
    elif kind == "pdf_url":
        source = {"type": "url", "url": "https://example.invalid/a.pdf"}
    elif kind == "text_doc":
        source = {"type": "text", "media_type": "text/plain", "data": draw(texts)}
    else:
        source = {"type": "file", "file_id": "file_abc123"}
    return {"type": "document", "source": source, **_cache(draw)}


def _earlier_search_turn() -> list[dict[str, Any]]:
    """An earlier turn that ran a web search, passed back as the API asks (its results
    encrypted)."""
    tid = "srvtoolu_earlier"
    return [
        {"role": "user", "content": "search for it"},
        {
            "role": "assistant",
            "content": [
                {"type": "server_tool_use", "id": tid, "name": "web_search", "input": {"q": "x"}},
                {
                    "type": "web_search_tool_result",
                    "tool_use_id": tid,
                    "content": [
                        {
                            "type": "web_search_result",
                            "url": "https://example.invalid/",
                            "title": "x",
                            "encrypted_content": "ZmFrZQ==",
                        }
                    ],
                },
                {"type": "text", "text": "found it"},
            ],
        },
    ]


ANTHROPIC_TOOLS = {
    "custom": {
        "name": "get_weather",
        "description": "The weather in a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    "bash": {"type": "bash_20250124", "name": "bash"},
    "text_editor": {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    "computer": {
        "type": "computer_20250124",
        "name": "computer",
        "display_width_px": 1024,
        "display_height_px": 768,
    },
    "web_search": {"type": "web_search_20250305", "name": "web_search"},
    "web_search_capped": {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
    "web_search_one": {"type": "web_search_20250305", "name": "web_search", "max_uses": 1},
    "web_fetch": {"type": "web_fetch_20250910", "name": "web_fetch"},
    "web_fetch_capped": {"type": "web_fetch_20250910", "name": "web_fetch", "max_uses": 2},
}


@st.composite
def messages_request(draw: Any, count: bool = False) -> Req:
    msgs: list[dict[str, Any]] = []
    if draw(rarely):
        msgs += _earlier_search_turn()
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            content: Any = draw(st.lists(anthropic_block(), min_size=1, max_size=3))
        else:
            content = draw(texts)
        msgs.append({"role": "user", "content": content})
    body: dict[str, Any] = {"model": draw(st.sampled_from(CLAUDE_MODELS)), "messages": msgs}
    if draw(st.booleans()):
        body["system"] = draw(texts)
    elif draw(st.booleans()):
        body["system"] = [{"type": "text", "text": draw(texts), **_cache(draw)}]
    names = [name for name in ANTHROPIC_TOOLS if draw(now_and_then)]
    tools, seen = [], set()
    for name in names:
        tool = ANTHROPIC_TOOLS[name]
        if tool["name"] not in seen:
            seen.add(tool["name"])
            tools.append({**tool, **(_cache(draw) if draw(rarely) else {})})
    if tools:
        body["tools"] = tools
    if draw(rarely):
        body["mcp_servers"] = [
            {"type": "url", "url": "https://example.invalid/mcp", "name": "docs"}
        ]
    req = Req("/v1/messages/count_tokens" if count else "/v1/messages", body)
    if not count:
        if draw(st.sampled_from([False] * 14 + [True])):
            req.unbounded = "no max_tokens"  # the API requires it: no output bound
        else:
            body["max_tokens"] = draw(max_values)
            if draw(rarely) and body["max_tokens"] > 1024:
                body["thinking"] = {"type": "enabled", "budget_tokens": 1024}
        _stream(draw, body)
    if not count and draw(st.sampled_from([False] * 19 + [True])):
        req.unbounded = "code execution"
        body.setdefault("tools", []).append(
            {"type": "code_execution_20250825", "name": "code_execution"}
        )
    return req


requests = st.one_of(
    chat_request(),
    responses_request(),
    embeddings_request(),
    messages_request(),
    messages_request(count=True),
)


@dataclass
class AppPlan:
    budget_nano: int
    limits: tuple[int | None, int | None, int | None] | None  # rpm, tpm, concurrency


@dataclass
class Example:
    wallet_nano: int
    apps: list[AppPlan]
    reqs: list[Req]


budgets = st.one_of(
    st.sampled_from([50_000_000, 200_000_000, 700_000_000, MAX_BUDGET, MIN_BUDGET]),
    st.integers(MIN_BUDGET, MAX_BUDGET),
)
rate_limits = st.one_of(
    st.none(),
    st.tuples(
        st.one_of(st.none(), st.integers(1, 10)),
        st.one_of(st.none(), st.integers(1_000, 2_000_000)),
        st.one_of(st.none(), st.integers(1, 4)),
    ),
)


@st.composite
def examples(draw: Any) -> Example:
    apps = draw(
        st.lists(
            st.builds(
                AppPlan,
                budgets,
                st.one_of(st.none(), st.none(), st.none(), rate_limits),
            ),
            min_size=1,
            max_size=3,
        )
    )
    reqs = draw(st.lists(requests, min_size=2, max_size=BATCH))
    for req in reqs:
        req.app = draw(st.integers(0, len(apps) - 1))
        req.ascii = draw(st.booleans())
    return Example(draw(st.one_of(st.just(MAX_BUDGET), budgets)), apps, reqs)


# -- running an example ----------------------------------------------------------------------
@dataclass
class Answer:
    req: Req
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    error: str | None = None  # the client saw no whole answer

    def json(self) -> Any:
        return json.loads(self.body)


async def _send(client: httpx.AsyncClient, url: str, key: str, req: Req) -> Answer:
    headers = {"Content-Type": "application/json"}
    if req.anthropic:
        headers |= {"x-api-key": key, "anthropic-version": "2023-06-01"}
    else:
        headers["Authorization"] = f"Bearer {key}"
    try:
        resp = await client.post(url + req.path, content=req.content(), headers=headers)
    except httpx.HTTPError as exc:
        return Answer(req, error=f"{type(exc).__name__}: {exc}")
    return Answer(
        req, resp.status_code, {k.lower(): v for k, v in resp.headers.items()}, resp.content
    )


async def _fire(url: str, keys: list[str], reqs: list[Req]) -> list[Answer]:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return list(await asyncio.gather(*(_send(client, url, keys[r.app], r) for r in reqs)))


@dataclass
class Made:
    app_ids: list[int]
    app_budget_ids: list[int]
    wallet_budget_id: int


def _set_up(rig: Any, example: Example, n: int) -> tuple[Made, list[str]]:
    wallet = rig.wallet
    wallet.set_budget(None)  # a fresh wallet budget: new counters
    wallet.set_budget(BudgetSpec(example.wallet_nano, Period.TOTAL))
    wb = wallet.budgets.wallet_budget()
    keys, ids, budget_ids = [], [], []
    for i, plan in enumerate(example.apps):
        name = f"hostile-{n}-{i}"
        app, key = wallet.create_app(name, budget=BudgetSpec(plan.budget_nano, Period.TOTAL))
        if plan.limits is not None:
            rpm, tpm, conc = plan.limits
            wallet.set_app_limits(name, rpm=rpm, tpm=tpm, concurrency=conc)
        keys.append(key)
        ids.append(app.id)
        budget_ids.append(wallet.budgets.app_budget(app.id).id)
    return Made(ids, budget_ids, wb.id), keys


def _counters(rig: Any, budget_id: int) -> tuple[int, int]:
    """(spent, reserved) over the budget's counter rows."""
    c = t.budget_counters.c
    with rig.wallet.db.read() as conn:
        rows = conn.execute(
            select(c.spent_nano, c.reserved_nano).where(c.budget_id == budget_id)
        ).all()
    return sum(int(r[0]) for r in rows), sum(int(r[1]) for r in rows)


def _rows(rig: Any, table: Any, app_ids: list[int]) -> list[dict[str, Any]]:
    with rig.wallet.db.read() as conn:
        q = select(table).where(table.c.app_id.in_(app_ids))
        return [dict(r) for r in conn.execute(q).mappings()]


# A known gap (reported): the engine reserves a code interpreter container's fee but does not
# bill it when it settles (Usage.from_openai_response counts no code_interpreter_call). Until
# it does, the ledger is held to the provider's bill without container fees; the strict xfail
# test_code_interpreter_containers_are_billed_at_settlement says when that changes.
CONTAINERS_BILLED = False


def provider_bill(served: Any, *, containers: bool = CONTAINERS_BILLED) -> int | None:
    """What the hostile provider billed for one answer it gave (None: it billed nothing),
    in nano-dollars: its tokens at the catalog's prices, plus its own fees."""
    g = served.generated
    if not g.get("hostile") or g.get("refused") or served.status != 200:
        return None
    if served.path == "/v1/messages/count_tokens":
        return None
    provider = "anthropic" if served.api == "anthropic" else "openai"
    row = shipped_catalog().get(provider, served.model)
    assert row is not None, served.model
    usage = Usage(
        input_tokens=g["uncached"],
        output_tokens=g["completion"],
        cache_write_tokens=g["cache_write_5m"],
        cache_write_1h_tokens=g["cache_write_1h"],
        reasoning_tokens=g["reasoning"],
    )
    fees = g["fees_nano"] - (0 if containers else g["container_fees_nano"])
    return cost_of(usage, row).nano + fees


def _why(answer: Answer) -> str:
    return f"{answer.req.path} {json.dumps(answer.req.body)[:1500]}"


def _check_answer(answer: Answer, limited: bool, served: dict[str, Any]) -> None:
    req = answer.req
    assert answer.error is None, f"the client got no whole answer ({answer.error}): {_why(answer)}"
    status = answer.status
    assert status is not None and status < 500, (status, answer.body[:300], _why(answer))
    if req.unbounded is not None:
        assert status == 400, (req.unbounded, status, answer.body[:300], _why(answer))
    if status == 200:
        _check_success(answer)
        return
    body = answer.json()
    if req.anthropic:
        assert body.get("type") == "error" and isinstance(body.get("error"), dict), body
        err = body["error"]
        assert isinstance(err.get("type"), str) and err.get("message"), body
    else:
        assert isinstance(body.get("error"), dict), body
        err = body["error"]
        assert {"message", "type", "param", "code"} <= set(err), body
    code = answer.headers.get("x-aiwallet-error-code")
    if code is None:  # the provider's own refusal, relayed: only a prompt past the window
        record = served.get(answer.headers.get("x-aiwallet-request-id", ""))
        assert status == 400 and record is not None and record.generated.get("refused"), (
            status,
            body,
            _why(answer),
        )
        return
    assert err.get("code") == code, body
    expected = {
        402: "budget_exceeded",
        400: "invalid_request",
        429: "rate_limited",
    }
    assert expected.get(status) == code, (status, body, _why(answer))
    if status == 429:
        assert limited, f"429 for an app with no rate limit: {body}"
    if status == 400:
        assert req.unbounded is not None, f"refused as unbounded: {body} {_why(answer)}"


FINAL_EVENTS = {
    "/v1/chat/completions": b"data: [DONE]",
    "/v1/responses": b"event: response.",
    "/v1/messages": b"event: message_stop",
}


def _check_success(answer: Answer) -> None:
    req = answer.req
    if req.body.get("stream") and req.path in FINAL_EVENTS:
        assert FINAL_EVENTS[req.path] in answer.body, answer.body[-300:]
        return
    body = answer.json()
    assert isinstance(body, dict), body
    if req.path == "/v1/messages/count_tokens":
        assert isinstance(body.get("input_tokens"), int), body
    else:
        assert "usage" in body, body


TALLY: collections.Counter[str] = collections.Counter()  # what a run exercised (shown with -s)


NOT_FEATURES = frozenset(
    {"text", "input_text", "object", "function", "string", "ephemeral", "base64", "url",
     "content", "auto", "json_schema", "web_search_result", "server_tool_use", "enabled"}
)  # fmt: skip


def features(req: Req) -> list[str]:
    """The features a request uses, for the run's tally of what was accepted."""
    body, found = req.body, []
    for obj in hostile.objects(body):
        kind = obj.get("type")
        if isinstance(kind, str) and kind not in NOT_FEATURES:
            found.append(kind)
        if isinstance(obj.get("cache_control"), dict):
            found.append(f"cache_control {obj['cache_control'].get('ttl', '5m')}")
    for name in ("previous_response_id", "conversation", "prompt", "prediction", "max_uses",
                 "max_tool_calls", "mcp_servers", "thinking"):  # fmt: skip
        if any(name in obj for obj in hostile.objects(body)):
            found.append(name)
    if (body.get("n") or 1) > 1:
        found.append("n > 1")
    if not any(k in body for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")):
        found.append("no max-output field")
    found.append("stream" if body.get("stream") else "whole")
    return sorted(set(found))


def _short(value: Any) -> Any:
    """``value`` with its long strings cut (for messages about a failing example)."""
    if isinstance(value, str) and len(value) > 60:
        return f"{value[:12]}…<{len(value.encode())} bytes>"
    if isinstance(value, dict):
        return {k: _short(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_short(v) for v in value]
    return value


def describe(example: Example) -> str:
    apps = ", ".join(
        f"app {i}: ${p.budget_nano / 1e9:g}" + (f" limits {p.limits}" if p.limits else "")
        for i, p in enumerate(example.apps)
    )
    lines = [f"wallet ${example.wallet_nano / 1e9:g}; {apps}"]
    for r in example.reqs:
        body = json.dumps(_short(r.body), ensure_ascii=False)
        lines.append(f"  app {r.app} {r.path} {body}" + (" ascii" if r.ascii else ""))
    return "\n".join(lines)


def check(rig: Any, example: Example, n: int) -> None:
    note(describe(example))
    rig.fake.reset()
    rig.fake.set_default(Script(hostile=True))
    made, keys = _set_up(rig, example, n)
    answers = asyncio.run(_fire(rig.url, keys, example.reqs))
    settled_all(rig)
    served = {s.headers.get("x-aiwallet-request-id", ""): s for s in rig.fake.served}
    for answer in answers:
        code = answer.headers.get("x-aiwallet-error-code", "")
        TALLY[f"{answer.req.path} {answer.status} {code}".strip()] += 1
        if answer.status == 200 and answer.req.path != "/v1/messages/count_tokens":
            TALLY.update(f"  accepted: {f}" for f in features(answer.req))
        plan = example.apps[answer.req.app].limits
        limited = plan is not None and any(x is not None for x in plan)
        _check_answer(answer, limited, served)
        if answer.req.unbounded is not None:
            rid = answer.headers.get("x-aiwallet-request-id")
            assert rid not in served, f"an unbounded shape went upstream: {_why(answer)}"

    # every request: within its reservation, and billed at least what the provider billed
    ledger = [r for r in _rows(rig, t.ledger, made.app_ids) if r["kind"] == "spend"]
    reserved_by_id = reserved_of(rig)
    by_request = {r["request_id"]: r for r in ledger}
    for row in _rows(rig, t.requests, made.app_ids):
        record = served.get(row["id"])
        shape = f"{record.path} {json.dumps(_short(record.request_json))}" if record else row["id"]
        usage = {k: v for k, v in record.generated.items() if v} if record else None
        assert not row["over_reserved"], (
            f"under-reserved: billed {row['cost_nano']}, reserved {reserved_by_id.get(row['id'])}"
            f" for {shape} (the provider's usage {usage})"
        )
        if row["id"] in reserved_by_id:
            assert row["cost_nano"] <= reserved_by_id[row["id"]], row
        bill = provider_bill(record) if record is not None else None
        if bill is not None:
            billed = by_request[row["id"]]["amount_nano"] if row["id"] in by_request else 0
            assert billed >= bill, (
                f"the provider billed {bill}, the ledger {billed}, for {shape} "
                f"(the provider's usage {usage})"
            )

    # every budget: what was settled is within its limit, nothing is left reserved
    limits = [p.budget_nano for p in example.apps]
    for app_id, budget_id, limit in zip(made.app_ids, made.app_budget_ids, limits, strict=True):
        spent, reserved = _counters(rig, budget_id)
        in_ledger = sum(r["amount_nano"] for r in ledger if r["app_id"] == app_id)
        assert reserved == 0 and spent == in_ledger, (spent, reserved, in_ledger)
        assert spent <= limit, f"app {app_id} spent {spent} of its {limit}"
    spent, reserved = _counters(rig, made.wallet_budget_id)
    assert reserved == 0 and spent == sum(r["amount_nano"] for r in ledger)
    assert spent <= example.wallet_nano, f"the wallet spent {spent} of its {example.wallet_nano}"


def test_no_budget_is_passed_whatever_a_hostile_provider_bills(rig):
    counter = itertools.count()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @given(example=examples())
    def run(example: Example) -> None:
        check(rig, example, next(counter))

    try:
        run()
    finally:
        rig.fake.set_default(Script())
        for k, v in sorted(TALLY.items()):
            print(k, v)


# -- the hostile fake itself -----------------------------------------------------------------
@pytest.fixture
def hostile_fake(fake):
    fake.reset()
    fake.set_default(Script(hostile=True))
    yield fake
    fake.reset()


def _oa(fake):
    return openai.OpenAI(base_url=fake.base_url + "/v1", api_key=OPENAI_KEY, max_retries=0)


def _an(fake):
    return anthropic.Anthropic(base_url=fake.base_url, api_key=ANTHROPIC_KEY, max_retries=0)


def test_hostile_chat_bills_every_byte_every_image_and_every_choice(hostile_fake):
    image = {"type": "image_url", "image_url": {"url": IMAGE_URL}}
    msgs = [{"role": "user", "content": [{"type": "text", "text": "héllo"}, image]}]
    r = _oa(hostile_fake).chat.completions.create(
        model="gpt-4o-mini", messages=msgs, max_tokens=50, n=3
    )
    # a token a byte of the text ("user", "text", "héllo"), framing 4 + 3, the image's maximum
    assert r.usage.prompt_tokens == 4 + 4 + 6 + 7 + 48_169
    assert r.usage.completion_tokens == 150 and len(r.choices) == 3
    chunks = list(
        _oa(hostile_fake).chat.completions.create(
            model="o4-mini", messages=msgs, n=2, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    assert usage.prompt_tokens == 4 + 4 + 6 + 7 + 2_642
    assert usage.completion_tokens == 2 * 100_000  # o4-mini's output limit, both choices
    assert usage.completion_tokens_details.reasoning_tokens == usage.completion_tokens
    assert {c.choices[0].index for c in chunks if c.choices} == {0, 1}


def test_hostile_responses_fill_the_window_and_run_the_dearest_tool_to_its_cap(hostile_fake):
    client = _oa(hostile_fake)
    tools = [
        {"type": "web_search"},
        {"type": "image_generation"},
        RESPONSES_TOOLS["code_interpreter_4g"],
    ]
    r = client.responses.create(
        model="gpt-4o", input="hi", tools=tools, max_tool_calls=2, max_output_tokens=10
    )
    assert r.usage.input_tokens == 128_000 and r.usage.output_tokens == 10
    assert [o.type for o in r.output] == [
        "image_generation_call", "image_generation_call", "code_interpreter_call", "message",
    ]  # fmt: skip
    assert hostile_fake.served[-1].generated["fees_nano"] == 2 * 261_600_000 + 120_000_000
    events = list(client.responses.create(model="gpt-4o", input="hi", tools=tools, stream=True))
    final = events[-1].response
    assert events[-1].type == "response.incomplete"
    assert [o.type for o in final.output].count("image_generation_call") == hostile.UNCAPPED_USES
    e = client.embeddings.create(model="text-embedding-3-small", input=["ab", "cde", [1, 2]])
    assert e.usage.prompt_tokens == 7 and len(e.data) == 3
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="text-embedding-3-small", input="z" * 8_192)
    assert err.value.body["code"] == "context_length_exceeded"


def test_hostile_messages_bill_tool_prompts_cache_writes_and_searches(hostile_fake):
    client = _an(hostile_fake)
    tools = [ANTHROPIC_TOOLS["bash"], ANTHROPIC_TOOLS["computer"]]
    system = [
        {"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
    ]
    msgs = [{"role": "user", "content": "hi"}]
    r = client.messages.create(
        model="claude-sonnet-4-5", max_tokens=20, system=system, messages=msgs, tools=tools
    )
    text = 4 + 2 + 4 + 8 + 9 + 2  # "user", "hi", "text", "be brief", "ephemeral", "1h"
    defined = sum(hostile.json_tokens(x) for x in tools)  # the definitions, a token a byte
    prompt = text + 3 + 4 + 346 + 245 + 1_234 + defined  # framing, tool-use, bash, computer
    assert r.usage.input_tokens == 0 and r.usage.cache_creation_input_tokens == prompt
    assert r.usage.cache_creation.ephemeral_1h_input_tokens == prompt
    assert r.usage.output_tokens == 20
    search = [ANTHROPIC_TOOLS["web_search_capped"]]
    with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=64, messages=msgs, tools=search
    ) as s:
        final = s.get_final_message()
    assert final.usage.server_tool_use.web_search_requests == 3
    assert final.usage.input_tokens == 200_000  # the results fill the window
    assert [b.type for b in final.content].count("web_search_tool_result") == 3
    assert final.content[0].input == {"query": "q"}
    count = client.messages.count_tokens(model="claude-haiku-4-5", messages=msgs)
    assert count.input_tokens == 4 + 2 + 3 + 4


@pytest.mark.xfail(
    strict=True,
    reason="reported: the engine reserves a code interpreter container's fee but never bills "
    "it (Usage.from_openai_response counts no code_interpreter_call)",
)
def test_code_interpreter_containers_are_billed_at_settlement(rig):
    key = rig.app(budget="1/day")
    tools = [{"type": "code_interpreter", "container": {"type": "auto", "memory_limit": "4g"}}]
    rig.fake.set_default(Script(hostile=True))
    try:
        rig.openai(key).responses.create(
            model="gpt-4o-mini", input="run it", tools=tools, max_output_tokens=16
        )
    finally:
        rig.fake.set_default(Script())
    settled_all(rig)
    [served] = rig.fake.served
    assert served.generated["container_fees_nano"] == 120_000_000  # one 4 GB container
    [row] = rig.requests()
    assert row["cost_nano"] >= provider_bill(served, containers=True)
