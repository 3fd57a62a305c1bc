"""The hostile provider: for every request, the largest usage a real provider could bill for
exactly that request, by the providers' own published rules.

A :class:`Script` with ``hostile=True`` makes the chat, responses, embeddings and messages
handlers report this usage instead of their word counts (and count_tokens answer its prompt).
It is written from the providers' documentation, not from the wallet's code: nothing here
imports :mod:`aiwallet.domain.bounds` or the wallet's fee table. The one thing taken from the
wallet is its shipped catalog's context window and output limit per model (a real provider
knows its own limits).

Per request shape:

* **Text**: a hostile tokenizer, one token per UTF-8 byte of every string the model reads
  (messages, system prompts, instructions, tool definitions as compact JSON, a structured
  output schema), plus the framing a provider adds: a few tokens per message and for the
  reply's priming.
* **Images**: the provider's documented per-image maximum for the model family (OpenAI: the
  tiles or patches of the largest resized image; Anthropic: an image resized to ~1.15 MP).
* **What the bytes do not show** (stored context: ``previous_response_id``, ``conversation``,
  stored prompts, item references; files and documents by id, URL or inline; results a server
  tool adds: web search, web fetch, file search, MCP, code interpreter output): they fill the
  context window, whatever else the request uses.
* **Anthropic tool use**: the tool-use system prompt (346 tokens), bash (245), text_editor
  (700), computer (499 + a 735-token definition).
* **Output**: the max-output field as sent (or the model's output limit) for each of ``n``
  choices; for reasoning models all of it reasoning.
* **Caching**: with any ``cache_control`` (Anthropic), the whole prompt written to the cache
  (at the 1-hour rate when any breakpoint asks for ``ttl: 1h``); never a cheaper cache read.
* **Server tools**: Anthropic web search runs ``max_uses`` searches; a Responses request runs
  ``max_tool_calls`` calls of the dearest built-in tool it offers; each code interpreter tool
  starts a container. With no cap in the request there is no limit but the provider's own
  patience: :data:`UNCAPPED_USES`.

A prompt past the model's context window is refused the way the provider refuses it (400),
since no provider bills a prompt it cannot read.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiwallet.catalog_files import shipped_catalog

# -- the providers' published figures --------------------------------------------------------
OPENAI_MESSAGE_FRAMING = 4  # <|start|>role ... <|end|> per message
OPENAI_REPLY_PRIMING = 3  # <|start|>assistant<|message|>
OPENAI_TOOLS_FRAMING = 12  # the "# Tools / namespace functions" preamble around definitions
ANTHROPIC_MESSAGE_FRAMING = 3  # per turn
ANTHROPIC_PRIMING = 4  # the system turn and the assistant's prefix
ANTHROPIC_TOOL_USE_PROMPT = 346  # tool_choice auto / none (313 for any / tool)
ANTHROPIC_TOOL_PROMPTS = {"bash": 245, "text_editor": 700, "computer": 499 + 735}

# The most one image adds, per model family (OpenAI's vision guide): tile models bill
# base + tile x the tiles of the image resized into 2048 x 2048 and then 768 on its short
# side (at most 2 x 4 = 8 tiles); patch models bill 32-px patches (at most 1,536) x a
# multiplier. Most specific prefix first.
TILES = 8
OPENAI_IMAGE_MAX = (
    ("gpt-4o-mini", 2_833 + 5_667 * TILES),  # 48,169
    ("gpt-4.1-mini", -(-1_536 * 162 // 100)),  # 2,489
    ("gpt-4.1-nano", -(-1_536 * 246 // 100)),  # 3,779
    ("gpt-5-mini", -(-1_536 * 162 // 100)),
    ("gpt-5-nano", -(-1_536 * 246 // 100)),
    ("o4-mini", -(-1_536 * 172 // 100)),  # 2,642
    ("gpt-4o", 85 + 170 * TILES),  # 1,445
    ("gpt-4.1", 85 + 170 * TILES),
    ("gpt-4.5", 85 + 170 * TILES),
    ("gpt-4-turbo", 85 + 170 * TILES),
    ("o1", 75 + 150 * TILES),  # 1,275
    ("o3", 75 + 150 * TILES),
    ("gpt-5", 70 + 140 * TILES),  # 1,190
)
OPENAI_IMAGE_UNKNOWN = 2_833 + 5_667 * TILES  # a model not named: the dearest published rule
ANTHROPIC_IMAGE_MAX = 1_600  # images are resized to at most ~1.15 megapixels: w x h / 750

# Per use, in nano-dollars (the providers' price pages; the dearest figure where it varies).
NANO = 1_000_000_000
ANTHROPIC_WEB_SEARCH_FEE = 10 * NANO // 1_000  # $10 per 1,000 searches
OPENAI_CALL_FEES = {  # Responses output item type -> fee
    # gpt-image-1 at high quality, 1536 x 1024: 6,240 image tokens, and 3 partial images of
    # 100 tokens, at $40 per 1M image output tokens
    "image_generation_call": (6_240 + 3 * 100) * 40_000,
    "web_search_call": 25 * NANO // 1_000,  # $25 per 1,000 (web_search_preview)
    "file_search_call": 25 * NANO // 10_000,  # $2.50 per 1,000
}
OPENAI_TOOL_ITEM = {
    "image_generation": "image_generation_call",
    "web_search": "web_search_call",
    "file_search": "file_search_call",
}
CONTAINER_FEES = {  # code interpreter, per container, by memory
    "1g": 3 * NANO // 100,
    "4g": 12 * NANO // 100,
    "16g": 48 * NANO // 100,
    "64g": 192 * NANO // 100,
}
UNCAPPED_USES = 25  # server-tool uses a request with no cap gets from this provider

EMBEDDING_TOTAL_LIMIT = 300_000  # tokens summed over one request's inputs
FALLBACK_WINDOW = 2_000_000  # a model the catalog does not know
FALLBACK_OUTPUT = 4_096


@functools.cache
def limits(provider: str, model: str) -> tuple[int | None, int | None]:
    """(context window, output limit) of ``model`` as the shipped catalog knows them."""
    row = shipped_catalog().get(provider, model)
    if row is None:
        return None, None
    return row.context_limit, row.output_limit


@functools.cache
def is_reasoning(provider: str, model: str) -> bool:
    row = shipped_catalog().get(provider, model)
    return bool(row and row.is_reasoning_model)


@dataclass
class Bill:
    """What the hostile provider bills for one request."""

    prompt: int = 0  # every prompt token: uncached input and cache writes
    per_choice: int = 0  # output tokens per choice
    choices: int = 1
    reasoning: int = 0  # of the output
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    web_searches: int = 0  # Anthropic server_tool_use.web_search_requests
    tool_items: list[str] = field(default_factory=list)  # Responses output item types
    containers: list[str] = field(default_factory=list)  # code interpreter memory sizes
    filled: list[str] = field(default_factory=list)  # why the context window was filled
    too_long: str | None = None  # refused: the prompt passes the context window

    @property
    def output(self) -> int:
        return self.per_choice * self.choices

    @property
    def uncached(self) -> int:
        return self.prompt - self.cache_write_5m - self.cache_write_1h

    @property
    def fees_nano(self) -> int:
        """What the provider bills beyond tokens."""
        return (
            self.web_searches * ANTHROPIC_WEB_SEARCH_FEE
            + sum(OPENAI_CALL_FEES[kind] for kind in self.tool_items)
            + sum(CONTAINER_FEES[size] for size in self.containers)
        )

    def record(self) -> dict[str, int]:
        """For :attr:`Served.generated`."""
        return {
            "hostile": 1,
            "prompt": self.prompt,
            "uncached": self.uncached,
            "completion": self.output,
            "choices": self.choices,
            "reasoning": self.reasoning,
            "cache_write_5m": self.cache_write_5m,
            "cache_write_1h": self.cache_write_1h,
            "web_searches": self.web_searches,
            "tool_calls": len(self.tool_items),
            "containers": len(self.containers),
            "fees_nano": self.fees_nano,
            "container_fees_nano": sum(CONTAINER_FEES[size] for size in self.containers),
            "refused": int(self.too_long is not None),
        }


# -- reading a body --------------------------------------------------------------------------
def objects(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``value``, itself included."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _utf8(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def text_tokens(value: Any, skip: frozenset[str] = frozenset()) -> int:
    """One token per UTF-8 byte of every string in ``value``, except inside parts whose
    ``type`` is in ``skip`` (images, files: billed by their own rule)."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += _utf8(item)
        elif isinstance(item, dict):
            if item.get("type") in skip:
                continue
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return total


def json_tokens(value: Any) -> int:
    """A definition the provider renders into the prompt: its compact JSON, a token a byte."""
    if value is None:
        return 0
    return _utf8(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _types(value: Any) -> Iterator[str]:
    for obj in objects(value):
        kind = obj.get("type")
        if isinstance(kind, str):
            yield kind


def openai_image_max(model: str) -> int:
    for prefix, tokens in OPENAI_IMAGE_MAX:
        if model == prefix or model.startswith(prefix + "-") or model.startswith(prefix + "."):
            return tokens
    return OPENAI_IMAGE_UNKNOWN


def _output(body: dict[str, Any], names: tuple[str, ...], provider: str) -> int:
    """The max-output field as sent (a provider generates up to what it was asked), else the
    model's own output limit."""
    for name in names:
        if (value := _count(body.get(name))) is not None:
            return value
    _, out_limit = limits(provider, str(body.get("model")))
    return out_limit or FALLBACK_OUTPUT


def _finish(bill: Bill, provider: str, model: str) -> Bill:
    """Fill the context window where the request brings what its bytes do not show; refuse
    a prompt the window cannot hold."""
    window, _ = limits(provider, model)
    if bill.filled:
        bill.prompt = max(bill.prompt, window or FALLBACK_WINDOW)
    if window is not None and bill.prompt > window:
        bill.too_long = (
            f"prompt is too long: {bill.prompt} tokens > {window} maximum"
            if provider == "anthropic"
            else f"This model's maximum context length is {window} tokens. However, your "
            f"request has {bill.prompt} input tokens. Please reduce the length of the input."
        )
    if is_reasoning(provider, model):
        bill.reasoning = bill.output
    return bill


# -- OpenAI ----------------------------------------------------------------------------------
OPENAI_IMAGE_PARTS = frozenset({"image_url", "input_image"})
OPENAI_FILE_PARTS = frozenset({"file", "input_file"})
OPENAI_AUDIO_PARTS = frozenset({"input_audio"})
OPENAI_SKIP = OPENAI_IMAGE_PARTS | OPENAI_FILE_PARTS | OPENAI_AUDIO_PARTS


def _openai_content(bill: Bill, content: Any, model: str) -> None:
    for kind in _types(content):
        if kind in OPENAI_IMAGE_PARTS:
            bill.prompt += openai_image_max(model)
        elif kind in OPENAI_FILE_PARTS:
            bill.filled.append("a file")
        elif kind == "item_reference":
            bill.filled.append("a stored item")


def _openai_tools(bill: Bill, tools: Any) -> None:
    if isinstance(tools, list) and tools:
        bill.prompt += OPENAI_TOOLS_FRAMING + sum(json_tokens(t) for t in tools)


def chat(body: dict[str, Any]) -> Bill:
    model = str(body.get("model"))
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    bill = Bill()
    bill.prompt = (
        text_tokens(messages, OPENAI_SKIP)
        + OPENAI_MESSAGE_FRAMING * len(messages)
        + OPENAI_REPLY_PRIMING
        + json_tokens(body.get("response_format"))
    )
    _openai_content(bill, messages, model)
    _openai_tools(bill, body.get("tools"))
    bill.choices = n if (n := _count(body.get("n"))) else 1
    bill.per_choice = _output(body, ("max_completion_tokens", "max_tokens"), "openai")
    prediction = body.get("prediction")
    if isinstance(prediction, dict):
        # every predicted token the model rejects is billed as output, in each choice
        bill.per_choice += text_tokens(prediction.get("content"))
    return _finish(bill, "openai", model)


def responses(body: dict[str, Any]) -> Bill:
    model = str(body.get("model"))
    inp = body.get("input")
    items = inp if isinstance(inp, list) else [] if inp is None else [inp]
    bill = Bill()
    bill.prompt = (
        text_tokens(items, OPENAI_SKIP)
        + OPENAI_MESSAGE_FRAMING * len(items)
        + OPENAI_REPLY_PRIMING
        + text_tokens(body.get("instructions"))
        + json_tokens(text.get("format") if isinstance(text := body.get("text"), dict) else None)
    )
    _openai_content(bill, items, model)
    for name in ("previous_response_id", "conversation", "prompt"):
        if body.get(name) is not None:
            bill.filled.append(name)
    tools = body.get("tools") if isinstance(body.get("tools"), list) else []
    _openai_tools(bill, tools)
    offered: list[str] = []
    for tool in tools:
        kind = str(tool.get("type") or "") if isinstance(tool, dict) else ""
        if kind.startswith("web_search"):  # web_search, web_search_preview, dated versions
            kind = "web_search"
        if kind in ("web_search", "file_search", "mcp", "code_interpreter"):
            bill.filled.append(f"{kind} results")
        if kind in OPENAI_TOOL_ITEM:
            offered.append(OPENAI_TOOL_ITEM[kind])
        if kind == "code_interpreter":
            bill.containers.append(_container_size(tool.get("container")))
    if offered:
        dearest = max(offered, key=OPENAI_CALL_FEES.__getitem__)
        cap = _count(body.get("max_tool_calls"))
        bill.tool_items = [dearest] * (UNCAPPED_USES if cap is None else cap)
    bill.per_choice = _output(body, ("max_output_tokens",), "openai")
    return _finish(bill, "openai", model)


def _container_size(container: Any) -> str:
    """A new container at the memory asked for (1 GB by default); an existing one by id may
    be of any size."""
    if isinstance(container, dict):
        size = str(container.get("memory_limit") or "1g")
        return size if size in CONTAINER_FEES else "64g"
    return "64g"


def embeddings(body: dict[str, Any]) -> Bill:
    """Each input is one sequence that must fit the window by itself; their tokens add up."""
    model = str(body.get("model"))
    inp = body.get("input")
    if isinstance(inp, list) and inp and all(isinstance(x, int) for x in inp):
        seqs = [len(inp)]  # one token array
    elif isinstance(inp, list):
        seqs = [len(x) if isinstance(x, list) else text_tokens(x) for x in inp]
    else:
        seqs = [text_tokens(inp)]
    bill = Bill(prompt=sum(seqs), per_choice=0)
    window, _ = limits("openai", model)
    longest = max(seqs, default=0)
    if window is not None and longest > window:
        bill.too_long = (
            f"This model's maximum context length is {window} tokens, however you requested "
            f"{longest} tokens in one input. Please reduce your prompt."
        )
    elif bill.prompt > EMBEDDING_TOTAL_LIMIT:
        bill.too_long = (
            f"Requested {bill.prompt} tokens, max {EMBEDDING_TOTAL_LIMIT} tokens per request"
        )
    return bill


# -- Anthropic -------------------------------------------------------------------------------
ANTHROPIC_SKIP = frozenset({"image", "document"})
ANTHROPIC_FILLERS = {
    "document": "a document",
    "container_upload": "an uploaded file",
    "mcp_tool_result": "an MCP tool result",
    "web_fetch_tool_result": "fetched pages",
    "web_search_tool_result": "search results (encrypted)",
}


def _tool_family(kind: str) -> str:
    """``bash_20250124`` → ``bash``."""
    head, _, tail = kind.rpartition("_")
    return head if head and tail.isdigit() else kind


def messages(body: dict[str, Any], *, counting: bool = False) -> Bill:
    model = str(body.get("model"))
    msgs = body.get("messages") if isinstance(body.get("messages"), list) else []
    system = body.get("system")
    bill = Bill()
    bill.prompt = (
        text_tokens(msgs, ANTHROPIC_SKIP)
        + text_tokens(system, ANTHROPIC_SKIP)
        + ANTHROPIC_MESSAGE_FRAMING * len(msgs)
        + ANTHROPIC_PRIMING
    )
    for kind in _types([msgs, system]):
        if kind == "image":
            bill.prompt += ANTHROPIC_IMAGE_MAX
        elif kind in ANTHROPIC_FILLERS:
            bill.filled.append(ANTHROPIC_FILLERS[kind])
    tools = body.get("tools") if isinstance(body.get("tools"), list) else []
    if tools:
        bill.prompt += ANTHROPIC_TOOL_USE_PROMPT + sum(json_tokens(t) for t in tools)
    for tool in tools:
        family = _tool_family(str(tool.get("type") or "")) if isinstance(tool, dict) else ""
        bill.prompt += ANTHROPIC_TOOL_PROMPTS.get(family, 0)
        if family in ("web_search", "web_fetch"):
            bill.filled.append(f"{family} results")
        if family == "web_search":
            cap = _count(tool.get("max_uses"))
            bill.web_searches += UNCAPPED_USES if cap is None else cap
    if body.get("mcp_servers"):
        bill.filled.append("MCP results")
    if counting:
        bill.web_searches = 0
    else:
        bill.per_choice = _output(body, ("max_tokens",), "anthropic")
    bill = _finish(bill, "anthropic", model)
    bill.reasoning = 0  # Anthropic bills thinking as output and does not report it apart
    ttl = _cache_ttl(body)
    if ttl is not None and not counting:
        if ttl == "1h":
            bill.cache_write_1h = bill.prompt
        else:
            bill.cache_write_5m = bill.prompt
    return bill


def _cache_ttl(body: dict[str, Any]) -> str | None:
    """None without any cache breakpoint; else the longest lifetime asked for."""
    found: str | None = None
    for obj in objects(body):
        cc = obj.get("cache_control")
        if isinstance(cc, dict):
            if cc.get("ttl") == "1h":
                return "1h"
            found = "5m"
    return found


# -- the usage each API reports --------------------------------------------------------------
def chat_usage(bill: Bill) -> dict[str, Any]:
    return {
        "prompt_tokens": bill.prompt,
        "completion_tokens": bill.output,
        "total_tokens": bill.prompt + bill.output,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": bill.reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def responses_usage(bill: Bill) -> dict[str, Any]:
    return {
        "input_tokens": bill.prompt,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": bill.output,
        "output_tokens_details": {"reasoning_tokens": bill.reasoning},
        "total_tokens": bill.prompt + bill.output,
    }


def anthropic_usage(bill: Bill) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "input_tokens": bill.uncached,
        "cache_creation_input_tokens": bill.cache_write_5m + bill.cache_write_1h,
        "cache_read_input_tokens": 0,
        "cache_creation": {
            "ephemeral_5m_input_tokens": bill.cache_write_5m,
            "ephemeral_1h_input_tokens": bill.cache_write_1h,
        },
        "output_tokens": bill.output,
        "service_tier": "standard",
    }
    if bill.web_searches:
        usage["server_tool_use"] = {"web_search_requests": bill.web_searches}
    return usage


def responses_tool_items(bill: Bill, seed: str) -> list[dict[str, Any]]:
    """The built-in tool calls the response ran, as its output items."""
    items: list[dict[str, Any]] = []
    for i, kind in enumerate(bill.tool_items):
        item: dict[str, Any] = {"id": f"{kind[:2]}_{seed}{i:03d}", "type": kind}
        if kind == "web_search_call":
            item |= {"status": "completed", "action": {"type": "search", "query": f"q{i}"}}
        elif kind == "file_search_call":
            item |= {"status": "completed", "queries": [f"q{i}"], "results": None}
        else:
            item |= {"status": "completed", "result": "iVBORw0KGgo=", "revised_prompt": "x"}
        items.append(item)
    for i, _size in enumerate(bill.containers):
        items.append(
            {
                "id": f"ci_{seed}{i:03d}",
                "type": "code_interpreter_call",
                "status": "completed",
                "code": "print(1)",
                "container_id": f"cntr_{seed}{i:03d}",
                "outputs": [{"type": "logs", "logs": "1\n"}],
            }
        )
    return items


def anthropic_search_blocks(bill: Bill, seed: str) -> list[dict[str, Any]]:
    """A ``server_tool_use`` block and its ``web_search_tool_result`` per search run."""
    blocks: list[dict[str, Any]] = []
    for i in range(bill.web_searches):
        tid = f"srvtoolu_{seed}{i:03d}"
        blocks.append(
            {"type": "server_tool_use", "id": tid, "name": "web_search", "input": {"query": "q"}}
        )
        blocks.append(
            {
                "type": "web_search_tool_result",
                "tool_use_id": tid,
                "content": [
                    {
                        "type": "web_search_result",
                        "url": f"https://example.invalid/{i}",
                        "title": f"result {i}",
                        "encrypted_content": "ZmFrZQ==",
                        "page_age": None,
                    }
                ],
            }
        )
    return blocks


def stream_pieces(per_choice: int, pieces: int = 2) -> list[str]:
    """The text streamed for one choice: a few deltas, each at least one token, never more
    output events than the tokens reported."""
    n = max(0, min(per_choice, pieces))
    return [f"h{i} " for i in range(n)]
