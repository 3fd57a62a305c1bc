"""The OpenRouter sign-in side, faked on loopback: ``GET /auth`` and ``POST /api/v1/auth/keys``.

``GET /auth?callback_url=...&code_challenge=...&code_challenge_method=S256`` checks its
parameters as OpenRouter's PKCE flow needs them (S256 only, a challenge of the right shape, a
callback on http://localhost or http://127.0.0.1) and answers ``302`` to the callback with a
fresh random ``code`` appended (``&code=`` when the callback has a query, else ``?code=``);
the code is remembered with its challenge.

``POST /api/v1/auth/keys`` with JSON ``{code, code_verifier, code_challenge_method}`` issues
``{"key": "sk-or-v1-" + 64 hex, "user_id": "user_..."}`` once per code: a code it never issued
or one used already gets 403 (as OpenRouter refuses a used code), a verifier whose S256 is not
the code's challenge gets 400, as does a method other than S256. Every key issued is recorded
in :attr:`OpenRouterAuthFake.issued`.

Composable: :meth:`OpenRouterAuthFake.add_routes` mounts these routes on any
``web.Application`` (a bigger fake OpenRouter), and :class:`AuthFakeServer` runs one alone on
``127.0.0.1:0`` in a thread of its own::

    with AuthFakeServer() as server:
        server.auth_url, server.api_base, server.fake.issued
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

_CHALLENGE = re.compile(r"[A-Za-z0-9_\-]{43}")  # base64url of 32 bytes, no padding
_VERIFIER = re.compile(r"[A-Za-z0-9._~\-]{43,128}")  # RFC 7636 section 4.1


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass
class Issued:
    code: str
    challenge: str
    callback_url: str
    used: bool = False
    key: str | None = None


@dataclass
class OpenRouterAuthFake:
    """The two routes and what they remember. Not thread-safe on its own: its handlers run on
    one event loop; tests read :attr:`issued` and :attr:`codes` once the flow is over."""

    codes: dict[str, Issued] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)  # the keys, in order
    exchanges: list[tuple[int, str]] = field(default_factory=list)  # (status, why) per POST
    refuse_exchange_with: int | None = None  # answer every exchange with this status
    # when set: each exchange sets ``exchange_waiting`` and holds until the gate opens
    exchange_gate: threading.Event | None = None
    exchange_waiting: threading.Event = field(default_factory=threading.Event)

    def add_routes(self, app: web.Application, *, prefix: str = "") -> None:
        app.router.add_get(f"{prefix}/auth", self.authorize)
        app.router.add_post(f"{prefix}/api/v1/auth/keys", self.exchange)

    # -- GET /auth --------------------------------------------------------------------------
    async def authorize(self, request: web.Request) -> web.StreamResponse:
        q = request.rel_url.query
        callback = q.get("callback_url", "")
        challenge = q.get("code_challenge", "")
        method = q.get("code_challenge_method", "")
        if method != "S256":
            return _error(400, "code_challenge_method must be S256")
        if not _CHALLENGE.fullmatch(challenge):
            return _error(400, "code_challenge is missing or not an S256 challenge")
        parts = urlsplit(callback)
        if parts.scheme != "http" or parts.hostname not in ("localhost", "127.0.0.1"):
            return _error(400, "callback_url must be http://localhost or http://127.0.0.1")
        code = secrets.token_urlsafe(24)
        self.codes[code] = Issued(code, challenge, callback)
        target = f"{callback}{'&' if parts.query else '?'}code={code}"
        raise web.HTTPFound(target)

    # -- POST /api/v1/auth/keys ---------------------------------------------------------------
    async def exchange(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return self._refuse(400, "the body is not JSON")
        if not isinstance(body, dict):
            return self._refuse(400, "the body is not a JSON object")
        if self.exchange_gate is not None:
            self.exchange_waiting.set()
            await asyncio.to_thread(self.exchange_gate.wait, 10)
        if self.refuse_exchange_with is not None:
            return self._refuse(self.refuse_exchange_with, "scripted refusal")
        code, verifier = body.get("code"), body.get("code_verifier")
        if body.get("code_challenge_method") != "S256":
            return self._refuse(400, "code_challenge_method must be S256")
        entry = self.codes.get(code) if isinstance(code, str) else None
        if entry is None:
            return self._refuse(403, "unknown code")
        if entry.used:
            return self._refuse(403, "code already used")
        if not isinstance(verifier, str) or not _VERIFIER.fullmatch(verifier):
            return self._refuse(400, "code_verifier is missing or malformed")
        if not secrets.compare_digest(s256(verifier), entry.challenge):
            return self._refuse(400, "code_verifier does not match the code_challenge")
        entry.used = True
        entry.key = "sk-or-v1-" + secrets.token_hex(32)
        self.issued.append(entry.key)
        self.exchanges.append((200, "issued"))
        return web.json_response({"key": entry.key, "user_id": "user_" + secrets.token_hex(8)})

    def _refuse(self, status: int, why: str) -> web.Response:
        self.exchanges.append((status, why))
        return _error(status, why)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": {"code": status, "message": message}}, status=status)


class AuthFakeServer:
    """One :class:`OpenRouterAuthFake` alone on ``127.0.0.1:0``, served from a thread."""

    def __init__(self, fake: OpenRouterAuthFake | None = None) -> None:
        self.fake = fake or OpenRouterAuthFake()
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.base_url}/auth"

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/api/v1"

    async def _start(self) -> None:
        app = web.Application()
        self.fake.add_routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    def start(self) -> AuthFakeServer:
        ready = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:
                failed.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="openrouter-auth-fake", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failed:
            raise RuntimeError(f"the OpenRouter auth fake did not start: {failed}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> AuthFakeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
