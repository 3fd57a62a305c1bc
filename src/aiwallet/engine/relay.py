"""Relaying an upstream answer to the client, and deciding who ended it.

A stream is a loop over upstream events and the meter: each event is metered, then written to
the client; the event that ends the stream is written only after ``settle_final`` returned
(the cost is durable before the last byte). Who ended a stream is decided here, in one place:
a failed read from the upstream means the provider cut it; a failed write to the client means
the client left. The relay knows nothing of budgets or the proxy; it returns an outcome.

Only whole events are written, each after ``scrub`` (the proxy's secret scrubber): a secret
split across two TCP chunks is whole again in its event, and the bytes of an event never
finished (a stream cut mid-event) are dropped, never relayed raw.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.usage import Usage
from aiwallet.engine.endpoints import Endpoint
from aiwallet.engine.meter import StreamMeter
from aiwallet.engine.sse import SSESplitter

log = logging.getLogger(__name__)

# Reading from the provider: a broken connection, a timeout between events, a malformed or
# oversized event. aiohttp's errors are ClientErrors; some are also ConnectionErrors.
READ_ERRORS = (aiohttp.ClientError, ConnectionError, TimeoutError, ValueError)
# Writing to the client: its connection is gone (aiohttp 3.10+ raises a
# ClientConnectionResetError, which is a ConnectionResetError too).
WRITE_ERRORS = (ConnectionError,)


class Ended(enum.Enum):
    COMPLETE = "complete"  # the stream's final event went out
    UPSTREAM_CUT = "upstream_cut"  # the provider broke off, or closed without a final event
    CLIENT_LEFT = "client_left"  # the client's connection went away
    OVER_BOUND = "over_bound"  # the provider sent more output than the request allowed


class UpstreamCut(Exception):
    """Reading a whole answer from the provider failed."""


@dataclass(frozen=True, slots=True)
class WholeAnswer:
    data: bytes
    usage: Usage | None
    problem: str | None  # why ``usage`` is None, when it is
    output_bytes: int


async def read_whole(endpoint: Endpoint, up: aiohttp.ClientResponse) -> WholeAnswer:
    """A non-streamed answer and the usage it reports."""
    try:
        data = await up.read()
    except READ_ERRORS as exc:
        raise UpstreamCut(type(exc).__name__) from None
    usage: Usage | None = None
    problem = None
    output_bytes = 0
    try:
        obj = json.loads(data)
        if isinstance(obj, dict):
            output_bytes = endpoint.output_bytes_of(obj)
            if endpoint.usage_of is not None:
                usage = endpoint.usage_of(obj)
        else:
            problem = "the answer is not a JSON object"
    except (ValueError, RecursionError, InvalidInput) as exc:
        problem = f"usage unreadable: {exc}"
    return WholeAnswer(data, usage, problem, output_bytes)


async def relay_stream(
    resp: web.StreamResponse,
    up: aiohttp.ClientResponse,
    meter: StreamMeter,
    settle_final: Callable[[], Awaitable[object]],
    max_output_tokens: int | None = None,
    scrub: Callable[[bytes], bytes] | None = None,
) -> Ended:
    """Relay SSE event by event into the prepared ``resp``; returns who ended the stream.
    Once the output relayed passes ``max_output_tokens`` (the provider broke the request's
    own limit), nothing more is relayed. Each event written is ``scrub(event)``."""
    splitter = SSESplitter()
    chunks = up.content.iter_any().__aiter__()
    while True:
        try:
            chunk = await chunks.__anext__()
            events = list(splitter.feed(chunk))
        except StopAsyncIteration:
            break
        except READ_ERRORS as exc:
            log.info("upstream stream ended early: %s", type(exc).__name__)
            return Ended.UPSTREAM_CUT
        for raw in events:
            verdict = meter.feed(raw)
            # each output event carries at least one token (bytes bound nothing: a token may
            # be a long word), so more events than the bound proves the provider passed it
            if max_output_tokens is not None and meter.delta_events > max_output_tokens:
                log.warning("upstream stream passed its output bound of %d", max_output_tokens)
                return Ended.OVER_BOUND
            out = verdict.relay
            if out is not None and scrub is not None:
                out = scrub(out)  # before settling: an echo is noted on the request's row
            if verdict.final:
                await settle_final()
            if out is None:
                continue
            try:
                await resp.write(out)
            except WRITE_ERRORS:
                return Ended.CLIENT_LEFT
    return Ended.COMPLETE if meter.finished else Ended.UPSTREAM_CUT
