"""Scripted behaviour and the record of what was served."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class Script:
    delay_s: float = 0.0  # before the response headers
    event_delay_s: float = 0.0  # between stream events
    status: int = 200  # 429, 500, 503, 529 answer with that error instead
    retry_after: int | None = None  # Retry-After header with a 429
    cut_after_events: int | None = None  # abort the TCP connection after N stream events
    usage: str = "ok"  # ok | missing | malformed | wrong | absurd (10^20 tokens)
    huge_event_bytes: int = 0  # after the first stream event, one event this large
    # What real providers add that the request's bytes do not show: prompt tokens they bill
    # beyond the text (images, tool system prompts, stored context, search results) ...
    hidden_prompt_tokens: int = 0
    output_multiplier: int = 1  # ... output reported this many times what was generated
    ignore_max_tokens: bool = False  # generate reply_tokens whatever max_tokens says
    web_searches: int = 0  # Anthropic server web searches run (at most the tool's max_uses)
    reply_tokens: int = 12
    cached_tokens: int = 0  # OpenAI cached / Anthropic cache read
    cache_write_tokens: int = 0  # Anthropic cache creation
    reasoning_tokens: int = 0
    hang: bool = False  # never answer
    error_event_mid_stream: bool = False  # Anthropic `event: error` (overloaded) mid-stream
    # Report the largest usage a real provider could bill for exactly this request instead of
    # the word counts (fakeupstream.hostile); the other usage fields above are then unused.
    hostile: bool = False
    # Echo the provider key this request carried (a broken or malicious provider, or a proxy
    # in front of one); the leak scan leaves such answers out of its tee (their ``echoes_key``):
    #   error        a 4xx (``status``, 400 by default) whose message quotes the key
    #   auth_header  a 4xx quoting the whole ``Authorization: Bearer …`` header it received
    #   urlencoded   a 4xx quoting a URL with the key URL-encoded (``%2D`` for ``-``)
    #   masked       a 4xx with the key masked in the middle, 20 characters shown each end
    #   hint         a 4xx with the key masked as OpenAI does (``sk-fake…tuv``): no secret
    #   header       the provider request id header (x-request-id / request-id) is the key
    #   answer       the key as a word of the answer (whole or streamed)
    #   escaped      the same, every character JSON-escaped (``\u0073\u006b…``)
    #   split        the same, streamed, the event written in two TCP writes cut mid-key
    #   error_event  Anthropic: a mid-stream ``event: error`` whose message quotes the key
    echo_key: str = ""
    gzip: bool = False  # compress the answer (Content-Encoding: gzip) whatever was asked
    # Wait (before the response headers, at most 30 s) until the test opens the gate of this
    # name (FakeUpstream.open_gate): requests held in flight together, as long as a test needs.
    gate: str = ""
    # After the text, call the tool of this name (chat tool_calls / a tool_use block) with
    # the arguments TOOL_INPUT, ending the turn for it (finish tool_calls / stop tool_use).
    tool_call: str = ""

    @classmethod
    def from_json(cls, text: str) -> Script:
        data = json.loads(text)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Served:
    path: str
    api: str  # openai | anthropic
    model: str | None
    stream: bool
    status: int
    request_json: Any
    headers: dict[str, str]
    generated: dict[str, int] = field(default_factory=dict)  # what the fake really produced
    reported: dict[str, Any] | None = None  # the usage it reported (may be wrong or absent)
    completed: bool = False  # the whole response went out
    events_sent: int = 0
    raw_out: bytes = b""  # every stream byte it wrote
    raw_in: bytes = b""  # the request body exactly as received
    query: str = ""  # the query string as received
    request_id: str = ""  # the provider request id it sent back (x-request-id / request-id)
    key: str = ""  # the provider key the request carried (kept only when echoing it)
    echo: str = ""  # the script's echo_key mode
    echoes_key: bool = False  # the answer carries the key on purpose (leak scan: left out)

    def to_json(self) -> dict[str, Any]:
        """JSON-safe: the raw bytes as text (undecodable bytes escaped)."""
        data = asdict(self)
        for name in ("raw_out", "raw_in"):
            data[name] = data[name].decode("utf-8", "backslashreplace")
        return data


class Gates:
    """Named gates scripted requests wait at; thread-safe (the fake runs on its own thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[str] = set()
        self._waiting: dict[str, int] = {}

    def opened(self, name: str) -> bool:
        with self._lock:
            return name in self._open

    def arrive(self, name: str, delta: int) -> None:
        with self._lock:
            self._waiting[name] = self._waiting.get(name, 0) + delta

    def waiting(self, name: str) -> int:
        with self._lock:
            return self._waiting.get(name, 0)

    def open(self, name: str) -> None:
        with self._lock:
            self._open.add(name)

    def reset(self) -> None:
        with self._lock:
            self._open.clear()
            self._waiting.clear()


GATES = Gates()


class Record:
    """Thread-safe list of what was served, plus the script queue."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.served: list[Served] = []
        self.default = Script()
        self._queue: list[Script] = []

    def next_script(self, header: str | None) -> Script:
        if header:
            return Script.from_json(header)
        with self._lock:
            if self._queue:
                return self._queue.pop(0)
            return self.default

    def push(self, script: Script, times: int = 1) -> None:
        with self._lock:
            self._queue.extend([script] * times)

    def add(self, served: Served) -> None:
        with self._lock:
            self.served.append(served)

    def reset(self) -> None:
        with self._lock:
            self.served.clear()
            self._queue.clear()
        GATES.reset()
        with self._lock:
            self.default = Script()

    def snapshot(self) -> list[Served]:
        with self._lock:
            return list(self.served)
