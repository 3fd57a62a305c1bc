"""Shared pieces: compact JSON, SSE writing, faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from fakeupstream.script import GATES, Script, Served


def stable_id(body: Any, n: int = 24) -> str:
    """An id that depends only on the request (minus stream_options), so the same request
    sent directly and through the wallet yields byte-identical answers."""
    import hashlib

    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "stream_options"}
    return hashlib.sha256(dumps(body).encode()).hexdigest()[:n]


CREATED = 1_700_000_000
TOOL_INPUT = {"city": "Paris", "days": 2}  # what a scripted tool call passes


def tool_input_pieces() -> list[str]:
    """TOOL_INPUT's JSON in the pieces a stream sends it in."""
    text = dumps(TOOL_INPUT)
    return [text[:9], text[9:]]


def dumps(obj: Any) -> str:
    """Compact JSON, as the providers send it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Cut(Exception):
    """The scripted connection cut happened."""


# Where an echoing answer puts the key: a word of the output, replaced as it is written.
ECHO_MARK = "{{echo-key}}"


def received_key(headers: Mapping[str, str]) -> str:
    """The provider key a request carried (headers case-insensitive, as aiohttp gives them)."""
    bearer = headers.get("Authorization", "")
    bearer = bearer[7:] if bearer[:7].lower() == "bearer " else ""
    return headers.get("x-api-key") or bearer


def json_escaped(text: str) -> str:
    """Every character as a JSON ``\\u00XX`` escape (valid inside a JSON string)."""
    return "".join(f"\\u{ord(c):04x}" for c in text)


ERROR_ECHOES = ("error", "auth_header", "urlencoded", "masked", "hint")


def echo_status(script: Script) -> int:
    return script.status if script.status != 200 else 400


def echo_message(served: Served) -> str:
    """What an echoing provider's error message says, for the error modes."""
    key, mode = served.key, served.echo
    if mode == "auth_header":
        return f"request refused by the gateway; headers received: Authorization: Bearer {key}"
    if mode == "urlencoded":
        encoded = "".join(f"%{b:02X}" for b in key.encode())
        return f"could not forward to https://proxy.invalid/v1/chat?api_key={encoded}"
    if mode == "masked":
        return f"the key {key[:20]}{'*' * 12}{key[-20:]} may not call this model"
    if mode == "hint":
        return f"Incorrect API key provided: {key[:8]}{'*' * 24}{key[-4:]}."
    return f"Incorrect API key provided: {key}. You can find your API key in your account."


def echo_word(script: Script) -> list[str]:
    """The extra output word an echoing answer carries (none unless it echoes one)."""
    return [" " + ECHO_MARK] if script.echo_key in ("answer", "escaped", "split") else []


def expand(served: Served, text: str) -> str:
    """``text`` with the echo mark replaced by the key, in the script's form."""
    if ECHO_MARK not in text:
        return text
    served.echoes_key = True
    key = json_escaped(served.key) if served.echo == "escaped" else served.key
    return text.replace(ECHO_MARK, key)


def answer(served: Served, script: Script, text: str) -> web.Response:
    """A whole JSON answer (the echo mark expanded; compressed when the script says so)."""
    resp = web.Response(text=expand(served, text), content_type="application/json")
    if script.gzip:
        resp.enable_compression(web.ContentCoding.gzip)
    return resp


class Stream:
    """Writes SSE events, honouring the script's delays and cut."""

    def __init__(
        self, resp: web.StreamResponse, request: web.Request, script: Script, served: Served
    ):
        self.resp, self.request, self.script, self.served = resp, request, script, served

    async def send(self, data: str, event: str | None = None, *, last: bool = False) -> None:
        """Write one event. ``last``: the record says "completed" from this write on (set
        before the write, so a test that has read the last event never sees it lag)."""
        if last:
            self.served.completed = True
        try:
            await self._send(data, event)
        except BaseException:
            self.served.completed = False
            raise

    async def _send(self, data: str, event: str | None = None) -> None:
        if (
            self.script.cut_after_events is not None
            and self.served.events_sent >= self.script.cut_after_events
        ):
            transport = self.request.transport
            if transport is not None:
                transport.abort()  # a real cut: no terminating chunk, the socket just dies
            raise Cut
        if self.script.event_delay_s:
            await asyncio.sleep(self.script.event_delay_s)
        if self.script.huge_event_bytes and self.served.events_sent == 1:
            pad = b"x" * self.script.huge_event_bytes
            await self.resp.write(b'data: {"pad":"' + pad + b'"}\n\n')
        head = f"event: {event}\n" if event else ""
        text = f"{head}data: {data}\n\n"
        mark = text.find(ECHO_MARK)
        out = expand(self.served, text).encode()
        self.served.raw_out += out
        if mark >= 0 and self.served.echo == "split":
            # the key cut in two TCP writes, the second after the first has gone out
            cut = len(text[:mark].encode()) + len(self.served.key) // 2
            await self.resp.write(out[:cut])  # aiohttp's write drains the transport
            await asyncio.sleep(0.02)
            await self.resp.write(out[cut:])
        else:
            await self.resp.write(out)
        self.served.events_sent += 1


async def start_sse(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(
        status=200,
        headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"},
    )
    await resp.prepare(request)
    return resp


async def apply_delays(script: Script) -> None:
    if script.hang:
        await asyncio.sleep(3600)
    if script.delay_s:
        await asyncio.sleep(script.delay_s)
    if script.gate:
        GATES.arrive(script.gate, 1)
        try:
            for _ in range(3000):  # bounded: 30 s at most
                if GATES.opened(script.gate):
                    break
                await asyncio.sleep(0.01)
        finally:
            GATES.arrive(script.gate, -1)


def read_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
