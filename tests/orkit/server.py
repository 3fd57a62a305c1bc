"""A fake OpenRouter on loopback, as strict as the real one on the parts the wallet uses.

* ``POST /api/v1/chat/completions`` (OpenAI wire, plain and streamed) billed per token at the
  prices of its own model list, times ``markup`` (a provider whose bill disagrees with the
  list), reported as ``usage.cost`` (an exact decimal number) in the answer, or in the final
  SSE chunk; a key past its limit gets 403 ``Key limit exceeded``, a disabled key 401.
* ``GET /api/v1/key`` (the calling key's limit, usage, reset), ``GET /api/v1/credits``
  (management key only), ``GET /api/v1/models`` (prices per token as strings).
* The management API: ``POST/GET /api/v1/keys``, ``GET/PATCH/DELETE /api/v1/keys/{hash}``,
  management key only (a management key cannot call inference).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

MANAGEMENT_KEY = "sk-or-v1-mgmt-" + "6d" * 28
INFERENCE_KEY = "sk-or-v1-" + "a1" * 32

# Prices per token, as OpenRouter writes them (strings of USD).
MODELS: dict[str, dict[str, str]] = {
    "openai/gpt-4o-mini": {"prompt": "0.00000015", "completion": "0.0000006"},
    "anthropic/claude-sonnet-4.5": {
        "prompt": "0.000003",
        "completion": "0.000015",
        "input_cache_read": "0.0000003",
        "input_cache_write": "0.00000375",
    },
    # a model no catalog snapshot has: only OpenRouter's own list prices it
    "aiwallet-test/listed-only": {"prompt": "0.00000013", "completion": "0.0000004"},
}
CONTEXT = {"openai/gpt-4o-mini": 128_000, "anthropic/claude-sonnet-4.5": 1_000_000}
MAX_OUTPUT = {"openai/gpt-4o-mini": 16_384, "anthropic/claude-sonnet-4.5": 64_000}


@dataclass
class Key:
    key: str
    name: str
    limit: Decimal | None = None
    limit_reset: str | None = None
    disabled: bool = False
    usage: Decimal = Decimal(0)
    management: bool = False
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    updated_at: str | None = None

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.key.encode()).hexdigest()

    @property
    def remaining(self) -> Decimal | None:
        return None if self.limit is None else max(Decimal(0), self.limit - self.usage)

    def data(self) -> dict[str, Any]:
        # one window: the tests run within one UTC day, week and month
        return {
            "hash": self.hash,
            "name": self.name,
            "label": f"{self.key[:12]}...{self.key[-3:]}",
            "disabled": self.disabled,
            "limit": self.limit,
            "limit_remaining": self.remaining,
            "limit_reset": self.limit_reset,
            "include_byok_in_limit": False,
            "usage": self.usage,
            "usage_daily": self.usage,
            "usage_weekly": self.usage,
            "usage_monthly": self.usage,
            "byok_usage": 0,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def dumps(obj: Any) -> str:
    """JSON whose Decimals are exact numbers (the way OpenRouter writes amounts)."""
    marks: dict[str, str] = {}

    def mark(o: Any) -> Any:
        if isinstance(o, Decimal):
            token = f"@@{len(marks)}@@"
            marks[token] = format(o.normalize(), "f") if o == o.to_integral() else str(o)
            return token
        if isinstance(o, dict):
            return {k: mark(v) for k, v in o.items()}
        if isinstance(o, list):
            return [mark(v) for v in o]
        return o

    text = json.dumps(mark(obj), separators=(",", ":"))
    for token, number in marks.items():
        text = text.replace(f'"{token}"', number)
    return text


def jresponse(obj: Any, status: int = 200) -> web.Response:
    return web.Response(text=dumps(obj), status=status, content_type="application/json")


def error(status: int, message: str) -> web.Response:
    return jresponse({"error": {"message": message, "code": status}}, status)


@dataclass
class Served:
    path: str
    key_hash: str | None
    model: str | None = None
    status: int = 200
    cost: Decimal | None = None


class FakeOpenRouter:
    def __init__(self) -> None:
        self.keys: dict[str, Key] = {}
        self.add_key(INFERENCE_KEY, "main")
        self.add_key(MANAGEMENT_KEY, "management", management=True)
        self.total_credits = Decimal("25")
        self.markup = Decimal(1)  # reported cost = list price x markup
        self.reply_tokens = 12
        self.management_down = False  # the management API answers 503
        self.models_answer: Any = None  # what GET /models answers instead of the list
        self.served: list[Served] = []
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    def add_key(self, key: str, name: str, **kw: Any) -> Key:
        k = Key(key, name, **kw)
        self.keys[key] = k
        return k

    def by_hash(self, key_hash: str) -> Key | None:
        return next((k for k in self.keys.values() if k.hash == key_hash), None)

    def sub_keys(self) -> list[Key]:
        return [k for k in self.keys.values() if k.name not in ("main", "management")]

    @property
    def total_usage(self) -> Decimal:
        return sum((k.usage for k in self.keys.values()), Decimal(0))

    # -- the app ----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        r = app.router
        r.add_post("/api/v1/chat/completions", self._chat)
        r.add_get("/api/v1/key", self._key)
        r.add_get("/api/v1/credits", self._credits)
        r.add_get("/api/v1/models", self._models)
        r.add_post("/api/v1/keys", self._create)
        r.add_get("/api/v1/keys", self._list)
        r.add_get("/api/v1/keys/{hash}", self._get)
        r.add_patch("/api/v1/keys/{hash}", self._patch)
        r.add_delete("/api/v1/keys/{hash}", self._delete)
        return app

    def _caller(self, request: web.Request) -> Key | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        return self.keys.get(auth.removeprefix("Bearer "))

    def _management(self, request: web.Request) -> Key | web.Response:
        caller = self._caller(request)
        if caller is None:
            return error(401, "No auth credentials found")
        if not caller.management:
            return error(401, "Only management keys can manage keys")
        if self.management_down:
            return error(503, "Service temporarily unavailable")
        return caller

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        caller = self._caller(request)
        served = Served(request.path, caller.hash if caller else None)
        self.served.append(served)
        if caller is None or caller.management:
            served.status = 401
            return error(401, "No auth credentials found" if caller is None else "User not found.")
        if caller.disabled:
            served.status = 401
            return error(401, "User not found.")
        try:
            body = json.loads(await request.read())
            model = body["model"]
            messages = body["messages"]
        except (ValueError, KeyError, TypeError):
            served.status = 400
            return error(400, "Invalid request body")
        served.model = model
        price = MODELS.get(model)
        if price is None:
            served.status = 400
            return error(400, f"{model} is not a valid model ID")
        words = sum(len(str(m.get("content", "")).split()) for m in messages)
        prompt = 4 + words * 2
        cap = body.get("max_tokens") or body.get("max_completion_tokens")
        completion = min(self.reply_tokens, cap) if isinstance(cap, int) else self.reply_tokens
        cost = (
            Decimal(price["prompt"]) * prompt + Decimal(price["completion"]) * completion
        ) * self.markup
        with self._lock:  # the check and the charge together: racing calls cannot pass it
            if caller.limit is not None and caller.usage + cost > caller.limit:
                served.status = 403
                reset = f"{caller.limit_reset} limit" if caller.limit_reset else "total limit"
                return error(
                    403, f"Key limit exceeded ({reset}). Manage it using "
                    "https://openrouter.ai/settings/keys",
                )  # fmt: skip
            caller.usage += cost
        served.cost = cost
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "cost": cost,
            "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        cid = "gen-" + uuid.uuid4().hex[:20]
        words_out = ["word"] * completion
        if not body.get("stream"):
            return jresponse({
                "id": cid, "provider": "OpenAI", "model": model, "object": "chat.completion",
                "created": 1_764_000_000,
                "choices": [{"index": 0, "finish_reason": "stop", "native_finish_reason": "stop",
                             "message": {"role": "assistant", "content": " ".join(words_out)}}],
                "usage": usage,
            })  # fmt: skip
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(b": OPENROUTER PROCESSING\n\n")
        for i, w in enumerate(words_out):
            chunk = {
                "id": cid, "provider": "OpenAI", "model": model,
                "object": "chat.completion.chunk", "created": 1_764_000_000,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": w + " "},
                             "finish_reason": "stop" if i == len(words_out) - 1 else None}],
            }  # fmt: skip
            await resp.write(f"data: {dumps(chunk)}\n\n".encode())
        final = {
            "id": cid, "provider": "OpenAI", "model": model, "object": "chat.completion.chunk",
            "created": 1_764_000_000, "choices": [], "usage": usage,
        }  # fmt: skip
        await resp.write(f"data: {dumps(final)}\n\n".encode())
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    async def _key(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        if caller is None:
            return error(401, "No auth credentials found")
        data = caller.data()
        data["is_free_tier"] = False
        data["is_management_key"] = caller.management
        data["is_provisioning_key"] = caller.management
        return jresponse({"data": data})

    async def _credits(self, request: web.Request) -> web.Response:
        caller = self._management(request)
        if isinstance(caller, web.Response):
            return caller
        return jresponse(
            {"data": {"total_credits": self.total_credits, "total_usage": self.total_usage}}
        )

    async def _models(self, request: web.Request) -> web.Response:
        if self.models_answer is not None:
            return jresponse(self.models_answer)
        data = []
        for model_id, price in MODELS.items():
            data.append({
                "id": model_id, "canonical_slug": model_id, "name": model_id.split("/")[1],
                "created": 1_750_000_000, "context_length": CONTEXT.get(model_id, 131_072),
                "pricing": {"request": "0", "image": "0", "web_search": "0",
                            "internal_reasoning": "0", **price},
                "top_provider": {"context_length": CONTEXT.get(model_id, 131_072),
                                 "max_completion_tokens": MAX_OUTPUT.get(model_id),
                                 "is_moderated": False},
                "architecture": {"modality": "text->text"},
            })  # fmt: skip
        return jresponse({"data": data})

    async def _create(self, request: web.Request) -> web.Response:
        caller = self._management(request)
        if isinstance(caller, web.Response):
            return caller
        try:
            body = json.loads(await request.read(), parse_float=Decimal)
            name = body["name"]
        except (ValueError, KeyError, TypeError):
            return error(400, "Invalid request body")
        reset = body.get("limit_reset")
        if reset not in (None, "daily", "weekly", "monthly") or not isinstance(name, str):
            return error(400, "Invalid request body")
        limit = body.get("limit")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int | Decimal)):
            return error(400, "limit must be a number")
        key = self.add_key(
            "sk-or-v1-" + secrets.token_hex(32), name,
            limit=None if limit is None else Decimal(limit), limit_reset=reset,
        )  # fmt: skip
        return jresponse({"data": key.data(), "key": key.key}, 201)

    async def _list(self, request: web.Request) -> web.Response:
        caller = self._management(request)
        if isinstance(caller, web.Response):
            return caller
        return jresponse({"data": [k.data() for k in self.sub_keys()]})

    def _target(self, request: web.Request) -> Key | web.Response:
        caller = self._management(request)
        if isinstance(caller, web.Response):
            return caller
        key = self.by_hash(request.match_info["hash"])
        if key is None or key.management:
            return error(404, "Key not found")
        return key

    async def _get(self, request: web.Request) -> web.Response:
        key = self._target(request)
        if isinstance(key, web.Response):
            return key
        return jresponse({"data": key.data()})

    async def _patch(self, request: web.Request) -> web.Response:
        key = self._target(request)
        if isinstance(key, web.Response):
            return key
        try:
            body = json.loads(await request.read(), parse_float=Decimal)
        except ValueError:
            return error(400, "Invalid request body")
        if "disabled" in body:
            key.disabled = bool(body["disabled"])
        if "limit" in body:
            key.limit = None if body["limit"] is None else Decimal(body["limit"])
        if "limit_reset" in body:
            key.limit_reset = body["limit_reset"]
        if "name" in body:
            key.name = str(body["name"])
        key.updated_at = datetime.now(UTC).isoformat()
        return jresponse({"data": key.data()})

    async def _delete(self, request: web.Request) -> web.Response:
        key = self._target(request)
        if isinstance(key, web.Response):
            return key
        del self.keys[key.key]
        return jresponse({"deleted": True})

    # -- running ----------------------------------------------------------------------------
    def start_in_thread(self) -> str:
        ready = threading.Event()

        async def start() -> None:
            self._runner = web.AppRunner(self.app(), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            assert site._server is not None and site._server.sockets
            self.port = site._server.sockets[0].getsockname()[1]

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(start())
            ready.set()
            self._loop.run_forever()
            assert self._runner is not None
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-openrouter", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake OpenRouter did not start")
        return self.base_url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
