"""Relaying an upstream answer to the client: whole, or as a stream event by event."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.usage import Usage
from aiwallet.engine.errors import ProxyError
from aiwallet.engine.estimate import estimated_usage
from aiwallet.engine.sse import SSESplitter

if TYPE_CHECKING:
    from aiwallet.engine.proxy import Call, Proxy

log = logging.getLogger(__name__)


async def relay_whole(proxy: Proxy, call: Call, up: aiohttp.ClientResponse) -> web.Response:
    """A non-streamed answer: read it, price it, settle, then send it unchanged."""
    try:
        data = await up.read()
    except (aiohttp.ClientError, TimeoutError):
        await proxy.settle(
            call, estimated_usage(call.prompt_bytes, 0), 502, note="upstream answer was cut"
        )
        raise ProxyError(
            "upstream_unavailable", "the provider's answer was cut off; try again"
        ) from None
    usage: Usage | None = None
    problem = None
    output_bytes = 0
    try:
        obj = json.loads(data)
        output_bytes = call.endpoint.output_bytes_of(obj) if isinstance(obj, dict) else 0
        if call.endpoint.usage_of is not None and isinstance(obj, dict):
            usage = call.endpoint.usage_of(obj.get("usage"))
    except (ValueError, InvalidInput) as exc:
        problem = f"usage unreadable: {exc}"
    if not call.endpoint.billable:
        headers = proxy.headers(call, cost=0)
        return web.Response(body=data, headers=headers, content_type="application/json")
    usage, note = proxy.usage_or_estimate(call, usage, output_bytes, problem)
    cost, remaining = await proxy.settle(call, usage, up.status, note=note)
    headers = proxy.headers(call, cost=cost, remaining=remaining)
    return web.Response(
        status=up.status, body=data, headers=headers, content_type="application/json"
    )


async def relay_stream(
    proxy: Proxy, call: Call, up: aiohttp.ClientResponse, injected: bool
) -> web.StreamResponse:
    """Relay SSE event by event; settle before the final event goes out."""
    assert call.endpoint.meter is not None and call.reservation is not None
    meter = call.endpoint.meter(injected)
    resp = web.StreamResponse(status=200)
    resp.content_type = "text/event-stream"
    resp.headers.update(proxy.headers(call, cost=call.reservation.amount_nano))
    resp.headers["Cache-Control"] = "no-cache"
    resp.headers["x-aiwallet-cost-is"] = "reserved-maximum"
    await resp.prepare(request=call.request)
    splitter = SSESplitter()
    cut = False
    try:
        async for chunk in up.content.iter_any():
            for raw in splitter.feed(chunk):
                verdict = meter.feed(raw)
                if verdict.final and not call.settled:
                    await _settle_stream(proxy, call, meter, cut=False)
                if verdict.relay is not None:
                    await resp.write(verdict.relay)
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError) as exc:
        if isinstance(exc, ConnectionResetError) and not isinstance(exc, aiohttp.ClientError):
            raise  # our client went away: handled by the caller
        cut = True
        log.info("upstream stream of %s ended early: %s", call.request_id, type(exc).__name__)
    if not call.settled:
        await _settle_stream(proxy, call, meter, cut=True)
    if cut or not meter.finished:
        # The upstream broke off: break off too, so the client sees an incomplete stream
        # rather than a clean end it would take for a whole answer.
        if call.request.transport is not None:
            call.request.transport.abort()
        return resp
    await resp.write_eof()
    return resp


async def _settle_stream(proxy: Proxy, call: Call, meter: object, *, cut: bool) -> None:
    from aiwallet.engine.meter import StreamMeter

    assert isinstance(meter, StreamMeter)
    usage = meter.usage
    note = None
    broken = bool(meter.extra.get("error"))  # an `error` event ended the stream early
    if cut or broken or usage is None or not meter.finished:
        known = usage if usage is not None else None
        usage = estimated_usage(call.prompt_bytes, meter.text_bytes, known)
        note = (
            "stream ended before the provider reported usage"
            if cut or broken
            else meter.usage_problem
        )
    # The client saw 200 and then, for a cut, a broken stream: logged as the provider failing.
    code = "upstream_unavailable" if cut or broken else None
    await proxy.settle(call, usage, 200, note=note, error_code=code)
