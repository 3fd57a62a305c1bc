"""The fake's HTTP server: routing, auth, the record, and how to run it."""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Any

from aiohttp import web

from fakeupstream import anthropic_api, openai_api
from fakeupstream.common import dumps, read_json, received_key
from fakeupstream.script import GATES, Record, Script, Served

OPENAI_KEY = "sk-fake-openai-0123456789abcdefghijklmnopqrstuv"
ANTHROPIC_KEY = "sk-ant-fake-0123456789abcdefghijklmnopqrstuvw"


SERVED = web.RequestKey("served", Served)

# What reading a wrongly shaped body raises in the handlers (the real APIs answer 400).
_SHAPE_ERRORS = (TypeError, AttributeError, KeyError, ValueError)


class FakeUpstream:
    def __init__(self, openai_key: str = OPENAI_KEY, anthropic_key: str = ANTHROPIC_KEY) -> None:
        self.openai_key, self.anthropic_key = openai_key, anthropic_key
        self.record = Record()
        # What GET /v1/key answers (OpenRouter's shape: dollars as JSON numbers).
        self.key_info: dict[str, Any] = {
            "label": "sk-or-v1-fak...e00",
            "limit": 50,
            "limit_remaining": 37.6543210988,
            "usage": 12.3456789012,
            "is_free_tier": False,
        }
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- scripting and reading back --------------------------------------------------------
    @property
    def served(self) -> list[Served]:
        return self.record.snapshot()

    def script(self, script: Script, times: int = 1) -> None:
        self.record.push(script, times)

    def set_default(self, script: Script) -> None:
        self.record.default = script

    def reset(self) -> None:
        self.record.reset()

    def open_gate(self, name: str) -> None:
        """Let every request waiting at gate ``name`` (Script.gate) go on, and later ones."""
        GATES.open(name)

    def at_gate(self, name: str) -> int:
        """How many requests wait at gate ``name`` now."""
        return GATES.waiting(name)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- the app ------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/_fake/script", self._remote_script)
        app.router.add_post("/_fake/reset", self._remote_reset)
        app.router.add_get("/_fake/served", self._remote_served)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        app.on_response_prepare.append(self._provider_headers)
        return app

    @staticmethod
    async def _provider_headers(request: web.Request, resp: web.StreamResponse) -> None:
        """What the real APIs put on every answer: a request id (OpenAI ``x-request-id``,
        Anthropic ``request-id``), rate-limit headers, OpenAI's processing time."""
        served = request.get(SERVED)
        if served is None:
            return
        served.request_id = "req_" + uuid.uuid4().hex[:24]
        if served.echo == "header":
            served.request_id = served.key
        if served.echoes_key:  # a leak scan of what tests received knows this is on purpose
            resp.headers["x-fake-echoes-key"] = "1"
        if served.api == "anthropic":
            resp.headers["request-id"] = served.request_id
            resp.headers["anthropic-ratelimit-requests-limit"] = "4000"
            resp.headers["anthropic-ratelimit-requests-remaining"] = "3999"
            resp.headers["anthropic-organization-id"] = "org-fake-not-for-apps"
        else:
            resp.headers["x-request-id"] = served.request_id
            resp.headers["openai-processing-ms"] = "7"
            resp.headers["x-ratelimit-limit-requests"] = "10000"
            resp.headers["x-ratelimit-remaining-requests"] = "9999"
            resp.headers["openai-organization"] = "org-fake-not-for-apps"

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = read_json(raw) if raw else None
        is_anthropic = "anthropic-version" in request.headers or request.path.startswith(
            "/v1/messages"
        )
        api = "anthropic" if is_anthropic else "openai"
        served = Served(
            path=request.path,
            api=api,
            model=body.get("model") if isinstance(body, dict) else None,
            stream=bool(body.get("stream")) if isinstance(body, dict) else False,
            status=200,
            request_json=body,
            headers=dict(request.headers),
            raw_in=raw,
            query=request.query_string,
        )
        request[SERVED] = served
        self.record.add(served)
        script = self.record.next_script(request.headers.get("x-fake-script"))
        if script.echo_key:
            served.echo, served.key = script.echo_key, received_key(request.headers)
            served.echoes_key = script.echo_key != "hint"  # a hint is no key
        if is_anthropic:
            # Anthropic takes the key as x-api-key, and (newer SDKs) as a Bearer token.
            bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
            key = request.headers.get("x-api-key") or bearer
            if key != self.anthropic_key or "anthropic-version" not in request.headers:
                served.status = 401
                return anthropic_api.error(401, "authentication_error", "invalid x-api-key")
            try:
                return await anthropic_api.handle(request, body, script, served)
            except _SHAPE_ERRORS:
                if served.events_sent:
                    raise
                # The real API validates the body first and answers 400 in its own shape.
                served.status = 400
                return anthropic_api.error(
                    400, "invalid_request_error", "the request body does not match the schema"
                )
        if request.headers.get("Authorization") != f"Bearer {self.openai_key}":
            served.status = 401
            return openai_api.error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        if request.path == "/v1/key" and request.method == "GET":
            # OpenRouter's "current API key" (its credit limit and what was used of it).
            return web.json_response({"data": self.key_info})
        if request.path not in (
            "/v1/chat/completions",
            "/v1/responses",
            "/v1/embeddings",
            "/v1/models",
        ):
            served.status = 404
            return openai_api.error(
                404, f"Invalid URL ({request.method} {request.path})", "invalid_request_error"
            )
        try:
            return await openai_api.handle(request, body, script, served)
        except _SHAPE_ERRORS:
            if served.events_sent:
                raise
            served.status = 400
            return openai_api.error(
                400, "Invalid request: the body does not match the schema", "invalid_request_error"
            )

    async def _remote_script(self, request: web.Request) -> web.Response:
        data: dict[str, Any] = await request.json()
        script = Script(**data.get("script", {}))
        if data.get("default"):
            self.record.default = script
        else:
            self.record.push(script, int(data.get("times", 1)))
        return web.json_response({"ok": True})

    async def _remote_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _remote_served(self, request: web.Request) -> web.Response:
        # what it received, keys included (a request carries one by design): the leak scan of
        # received responses knows this record by its header and path
        return web.Response(
            text=dumps([s.to_json() for s in self.served]),
            content_type="application/json",
            headers={"x-fake-record": "1"},
        )

    # -- running ------------------------------------------------------------------------------
    async def start(self, port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        return self.base_url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def start_in_thread(self) -> str:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            self._loop.run_until_complete(self.start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self.close())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake upstream did not start")
        return self.base_url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
