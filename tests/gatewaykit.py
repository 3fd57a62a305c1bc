"""Strict fakes of Vercel AI Gateway, Cloudflare AI Gateway and a local (Ollama-like) server,
on loopback, speaking the real OpenAI and Anthropic wire formats.

Each answers only the routes the real service has for what the wallet does, with exactly the
authentication it takes, and refuses anything else as the real one does (401 for a missing
or wrong key or gateway token, 404 for another path, 400 for a model id the endpoint does
not take). Usage is fixed per fake (``prompt_tokens`` / ``completion_tokens``), so a test
can price it. ``seen`` records what each request carried (headers included: they hold keys
by design, and are kept in memory only).
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from aiohttp import web

VERCEL_KEY = "sk-vercel-gw-0123456789abcdefghijklmnop"
CF_OPENAI_KEY = "sk-cf-openai-0123456789abcdefghijklmnop"
CF_ANTHROPIC_KEY = "sk-ant-cf-0123456789abcdefghijklmnopqr"
CF_TOKEN = "cfut-gateway-token-0123456789abcdefghijklmnop"  # registered with the leak scan
ACCOUNT = "0123456789abcdef0123456789abcdef"
GATEWAY = "my-gateway_1"
WORDS = ["Hello", " from", " the", " gateway", "."]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int = 200


@dataclass
class Usage:
    prompt_tokens: int = 21
    completion_tokens: int = 7
    cached_tokens: int = 0


def _json(status: int, body: Any) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def openai_error(status: int, message: str, code: str | None = None) -> web.Response:
    return _json(
        status,
        {"error": {"message": message, "type": "invalid_request_error", "param": None,
                   "code": code}},
    )  # fmt: skip


def anthropic_error(status: int, etype: str, message: str) -> web.Response:
    return _json(status, {"type": "error", "error": {"type": etype, "message": message}})


def cloudflare_error(status: int, code: int, message: str) -> web.Response:
    """Cloudflare's own error shape (the gateway refusing before any provider is asked)."""
    return _json(
        status,
        {"success": False, "result": [], "messages": [],
         "error": [{"code": code, "message": message}]},
    )  # fmt: skip


class _Server:
    """An aiohttp app run on its own thread and loop, on 127.0.0.1."""

    def __init__(self) -> None:
        self.port: int | None = None
        self.seen: list[Seen] = []
        self.usage = Usage()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> _Server:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            self.routes(app)
            app.router.add_route("*", "/{tail:.*}", self._not_found)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True, name=type(self).__name__)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake gateway did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    async def _record(self, request: web.Request) -> Seen:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        seen = Seen(request.method, request.path, dict(request.headers), body)
        self.seen.append(seen)
        return seen

    async def _not_found(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        seen.status = 404
        return openai_error(404, f"Not found: {request.method} {request.path}")

    # -- the wire formats ---------------------------------------------------------------------
    def _openai_usage(self) -> dict[str, Any]:
        u = self.usage
        return {
            "prompt_tokens": u.prompt_tokens,
            "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": u.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }

    async def openai_chat(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        model = body["model"]
        cid = "chatcmpl-" + uuid.uuid4().hex[:20]
        if not body.get("stream"):
            return _json(
                200,
                {
                    "id": cid, "object": "chat.completion", "created": 1_760_000_000,
                    "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                 "message": {"role": "assistant", "content": "".join(WORDS)}}],
                    "usage": self._openai_usage(),
                },
            )  # fmt: skip
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(chunk: dict[str, Any]) -> None:
            await resp.write(f"data: {json.dumps(chunk)}\n\n".encode())

        base = {"id": cid, "object": "chat.completion.chunk", "created": 1_760_000_000,
                "model": model}  # fmt: skip
        for i, word in enumerate(WORDS):
            delta: dict[str, Any] = {"content": word}
            if i == 0:
                delta["role"] = "assistant"
            await send({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
                        "usage": None})  # fmt: skip
        await send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                    "usage": None})  # fmt: skip
        opts = body.get("stream_options")
        if isinstance(opts, dict) and opts.get("include_usage") is True:
            await send({**base, "choices": [], "usage": self._openai_usage()})
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def anthropic_messages(
        self, request: web.Request, body: dict[str, Any]
    ) -> web.StreamResponse:
        model, u = body["model"], self.usage
        mid = "msg_" + uuid.uuid4().hex[:20]
        usage = {"input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens,
                 "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0}  # fmt: skip
        message = {"id": mid, "type": "message", "role": "assistant", "model": model,
                   "stop_reason": "end_turn", "stop_sequence": None}  # fmt: skip
        if not body.get("stream"):
            content = [{"type": "text", "text": "".join(WORDS)}]
            return _json(200, {**message, "content": content, "usage": usage})
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            await resp.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        start = {**message, "content": [], "stop_reason": None,
                 "usage": {**usage, "output_tokens": 1}}  # fmt: skip
        await send("message_start", {"type": "message_start", "message": start})
        await send(
            "content_block_start",
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
        )
        for word in WORDS:
            await send(
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": word},
                },
            )
        await send("content_block_stop", {"type": "content_block_stop", "index": 0})
        await send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": u.completion_tokens},
            },
        )
        await send("message_stop", {"type": "message_stop"})
        await resp.write_eof()
        return resp

    @staticmethod
    def models_list(ids: list[str]) -> web.Response:
        return _json(200, {"object": "list", "data": [
            {"id": i, "object": "model", "created": 1_700_000_000, "owned_by": "x"} for i in ids
        ]})  # fmt: skip


def _vendor_model(body: Any) -> bool:
    model = body.get("model") if isinstance(body, dict) else None
    return isinstance(model, str) and "/" in model.strip("/")


class VercelFake(_Server):
    """Vercel AI Gateway: ``POST /v1/chat/completions`` and ``POST /v1/messages`` with
    ``Authorization: Bearer <key>`` and ``vendor/model`` ids; ``GET /v1/models``."""

    def __init__(self, key: str = VERCEL_KEY) -> None:
        super().__init__()
        self.key = key

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/credits", self._credits)

    def _authorized(self, seen: Seen) -> bool:
        return seen.headers.get("Authorization") == f"Bearer {self.key}"

    async def _credits(self, request: web.Request) -> web.Response:
        """The gateway's credit balance (the engine reads it on its timer: kept apart from
        ``seen``, which records inference)."""
        self.credit_reads = getattr(self, "credit_reads", 0) + 1
        if request.headers.get("Authorization") != f"Bearer {self.key}":
            return openai_error(401, "Invalid API key", "invalid_api_key")
        return web.json_response({"balance": "95.50", "total_used": "4.50"})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record(request)
        if not self._authorized(seen):
            seen.status = 401
            return openai_error(401, "Invalid API key", "invalid_api_key")
        if not _vendor_model(seen.body):
            seen.status = 400
            return openai_error(400, "model must be a 'provider/model' id", "invalid_model")
        return await self.openai_chat(request, seen.body)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record(request)
        if not self._authorized(seen):
            seen.status = 401
            return anthropic_error(401, "authentication_error", "Invalid API key")
        if "anthropic-version" not in seen.headers or not _vendor_model(seen.body):
            seen.status = 400
            return anthropic_error(400, "invalid_request_error", "bad request")
        return await self.anthropic_messages(request, seen.body)

    async def _models(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        if not self._authorized(seen):
            seen.status = 401
            return openai_error(401, "Invalid API key", "invalid_api_key")
        return self.models_list(["anthropic/claude-sonnet-4.5", "openai/gpt-5"])


class CloudflareFake(_Server):
    """Cloudflare AI Gateway for one account and gateway: ``/v1/{acct}/{gw}/compat/...``,
    ``/openai/...`` and ``/anthropic/v1/...``. With ``token`` (an authenticated gateway) every
    request needs ``cf-aig-authorization: Bearer <token>``; the provider key goes as usual
    (``Authorization: Bearer`` for OpenAI and compat, ``x-api-key`` for Anthropic), or, with
    ``stored_keys`` (keys kept at Cloudflare), not at all. ``echo_token``: every compat
    request is answered 400 quoting the gateway header it carried (a leak for the wallet to
    scrub)."""

    def __init__(
        self,
        *,
        token: str | None = CF_TOKEN,
        openai_key: str = CF_OPENAI_KEY,
        anthropic_key: str = CF_ANTHROPIC_KEY,
        stored_keys: bool = False,
        account: str = ACCOUNT,
        gateway: str = GATEWAY,
    ) -> None:
        super().__init__()
        self.token, self.stored_keys = token, stored_keys
        self.openai_key, self.anthropic_key = openai_key, anthropic_key
        self.account, self.gateway = account, gateway
        self.echo_token = False

    @property
    def prefix(self) -> str:
        return f"/v1/{self.account}/{self.gateway}"

    @property
    def root(self) -> str:
        """What ``--base-url`` is for the cloudflare kinds: the root, before the ids."""
        return f"http://127.0.0.1:{self.port}/v1"

    def routes(self, app: web.Application) -> None:
        p = self.prefix
        app.router.add_post(f"{p}/compat/chat/completions", self._compat)
        app.router.add_post(f"{p}/openai/chat/completions", self._openai)
        app.router.add_get(f"{p}/openai/models", self._openai_models)
        app.router.add_post(f"{p}/anthropic/v1/messages", self._anthropic)
        app.router.add_get(f"{p}/anthropic/v1/models", self._anthropic_models)
        app.router.add_route("*", f"{p}/compat/{{tail:.*}}", self._compat_other)

    def _gateway_refusal(self, seen: Seen) -> web.Response | None:
        if self.token is None:
            return None
        got = seen.headers.get("cf-aig-authorization")
        if got == f"Bearer {self.token}":
            return None
        seen.status = 401
        return cloudflare_error(401, 2009, "Unauthorized")

    def _openai_key_ok(self, seen: Seen) -> bool:
        auth = seen.headers.get("Authorization")
        return auth is None if self.stored_keys else auth == f"Bearer {self.openai_key}"

    def _anthropic_key_ok(self, seen: Seen) -> bool:
        key = seen.headers.get("x-api-key")
        if "anthropic-version" not in seen.headers or "Authorization" in seen.headers:
            return False
        return key is None if self.stored_keys else key == self.anthropic_key

    async def _compat(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record(request)
        if (refused := self._gateway_refusal(seen)) is not None:
            return refused
        if not self._openai_key_ok(seen):
            seen.status = 401
            return openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        if self.echo_token:  # a gateway quoting the request's headers in a validation error
            seen.status = 400
            quoted = seen.headers.get("cf-aig-authorization", "")
            return openai_error(400, f"invalid request; headers: cf-aig-authorization={quoted}")
        if not _vendor_model(seen.body):
            seen.status = 400
            return openai_error(400, "model must be {provider}/{model}", "invalid_model")
        return await self.openai_chat(request, seen.body)

    async def _compat_other(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        if (refused := self._gateway_refusal(seen)) is not None:
            return refused
        seen.status = 404
        return cloudflare_error(404, 2001, "Route not found")

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record(request)
        if (refused := self._gateway_refusal(seen)) is not None:
            return refused
        if not self._openai_key_ok(seen):
            seen.status = 401
            return openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        if _vendor_model(seen.body):
            seen.status = 404
            return openai_error(404, "The model does not exist", "model_not_found")
        return await self.openai_chat(request, seen.body)

    async def _openai_models(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        if (refused := self._gateway_refusal(seen)) is not None:
            return refused
        if not self._openai_key_ok(seen):
            seen.status = 401
            return openai_error(401, "Incorrect API key provided.", "invalid_api_key")
        return self.models_list(["gpt-4o-mini", "gpt-4o"])

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record(request)
        if (refused := self._gateway_refusal(seen)) is not None:
            return refused
        if not self._anthropic_key_ok(seen):
            seen.status = 401
            return anthropic_error(401, "authentication_error", "invalid x-api-key")
        return await self.anthropic_messages(request, seen.body)

    async def _anthropic_models(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        if (refused := self._gateway_refusal(seen)) is not None:
            return refused
        if not self._anthropic_key_ok(seen):
            seen.status = 401
            return anthropic_error(401, "authentication_error", "invalid x-api-key")
        return self.models_list(["claude-sonnet-4-5"])


class LocalFake(_Server):
    """An Ollama-like server: ``POST /v1/chat/completions`` and ``GET /v1/models``, any model
    name; a request carrying any ``Authorization`` or ``x-api-key`` is refused (400), since
    the wallet must send no key to a server on this machine."""

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)

    @staticmethod
    def _keyed(seen: Seen) -> bool:
        return "Authorization" in seen.headers or "x-api-key" in seen.headers

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        seen = await self._record(request)
        if self._keyed(seen):
            seen.status = 400
            return openai_error(400, "unexpected credentials sent to a local server")
        if not isinstance(seen.body, dict) or not isinstance(seen.body.get("model"), str):
            seen.status = 400
            return openai_error(400, "model is required")
        return await self.openai_chat(request, seen.body)

    async def _models(self, request: web.Request) -> web.Response:
        seen = await self._record(request)
        if self._keyed(seen):
            seen.status = 400
            return openai_error(400, "unexpected credentials sent to a local server")
        return self.models_list(["llama3.2:latest"])
