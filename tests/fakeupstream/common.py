"""Shared pieces: compact JSON, SSE writing, faults."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from fakeupstream.script import Script, Served


def stable_id(body: Any, n: int = 24) -> str:
    """An id that depends only on the request (minus stream_options), so the same request
    sent directly and through the wallet yields byte-identical answers."""
    import hashlib

    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "stream_options"}
    return hashlib.sha256(dumps(body).encode()).hexdigest()[:n]


CREATED = 1_700_000_000


def dumps(obj: Any) -> str:
    """Compact JSON, as the providers send it."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


class Cut(Exception):
    """The scripted connection cut happened."""


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
        out = f"{head}data: {data}\n\n".encode()
        self.served.raw_out += out
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


def read_json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None
