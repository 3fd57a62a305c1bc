"""A bare OpenAI upstream for throughput phases: the least work per request.

    .venv/bin/python bench/leanfake.py [--port 0]    # prints its port as its first stdout line

The tests' fake (tests/fakeupstream) scripts, records and checks every request, so at high
request rates it can be the bottleneck of a benchmark instead of the engine. This one serves
only ``POST /v1/chat/completions`` (non-streamed, and streamed with ``stream: true``) in
OpenAI's exact wire format, including ``usage`` (always in a non-streamed answer; in a stream
as the last chunk when ``stream_options.include_usage`` is set, as OpenAI does, and the engine
always sets it), so the engine bills each answer from the provider's usage. It checks the
bearer key (``fakeupstream.OPENAI_KEY``, so bench scripts configure the provider the same
way) and counts the prompt's tokens as the tests' fake does (words + 4 per message + 3).
Each answer is ``REPLY_TOKENS`` words ``w0 w1 ...`` (fewer with ``max_tokens``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fakeupstream import OPENAI_KEY

REPLY_TOKENS = 8
CREATED = 1_700_000_000
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _error(status: int, message: str, etype: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": etype, "param": None, "code": code}}
    return web.Response(status=status, text=_dumps(body), content_type="application/json")


def prompt_tokens(body: dict[str, Any]) -> int:
    """The tests' fake's count: words of each message's text + 4 per message, + 3."""
    total = 3
    for m in body.get("messages") or []:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
        total += len(content.split()) + 4 if isinstance(content, str) else 4
    return total


def reply_tokens(body: dict[str, Any]) -> int:
    caps = [REPLY_TOKENS]
    for name in ("max_tokens", "max_completion_tokens"):
        v = body.get(name)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            caps.append(v)
    return min(caps)


def usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion(body: dict[str, Any], words: list[str], prompt: int) -> dict[str, Any]:
    return {
        "id": "chatcmpl-lean0000000000000000000000",
        "object": "chat.completion",
        "created": CREATED,
        "model": body.get("model"),
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "".join(words),
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop" if len(words) == REPLY_TOKENS else "length",
            }
        ],
        "usage": usage(prompt, len(words)),
        "service_tier": "default",
        "system_fingerprint": "fp_lean",
    }


def stream_events(body: dict[str, Any], words: list[str], prompt: int) -> bytes:
    """The whole SSE body of a streamed answer (written in one go: the least work)."""
    opts = body.get("stream_options")
    include_usage = isinstance(opts, dict) and opts.get("include_usage") is True
    base = {
        "id": "chatcmpl-lean0000000000000000000000",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": body.get("model"),
        "service_tier": "default",
        "system_fingerprint": "fp_lean",
    }

    def chunk(choices: list[Any], **extra: Any) -> str:
        obj: dict[str, Any] = {**base, "choices": choices, **extra}
        if include_usage and "usage" not in obj:
            obj["usage"] = None
        return f"data: {_dumps(obj)}\n\n"

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[Any]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    parts = [chunk(choice({"role": "assistant", "content": "", "refusal": None}))]
    parts += [chunk(choice({"content": w})) for w in words]
    parts.append(chunk(choice({}, "stop" if len(words) == REPLY_TOKENS else "length")))
    if include_usage:
        parts.append(chunk([], usage=usage(prompt, len(words))))
    parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


async def chat(request: web.Request) -> web.StreamResponse:
    if request.headers.get("Authorization") != f"Bearer {OPENAI_KEY}":
        return _error(
            401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
        )
    try:
        body = json.loads(await request.read())
    except ValueError:
        return _error(400, "We could not parse the JSON body of your request.", "invalid_request")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return _error(400, "'messages' is a required property", "invalid_request_error")
    words = [f"w{i} " for i in range(reply_tokens(body))]
    prompt = prompt_tokens(body)
    if not body.get("stream"):
        return web.Response(
            text=_dumps(completion(body, words, prompt)), content_type="application/json"
        )
    resp = web.StreamResponse(status=200, headers=_SSE_HEADERS)
    await resp.prepare(request)
    await resp.write(stream_events(body, words, prompt))
    await resp.write_eof()
    return resp


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    return app


async def serve(port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
