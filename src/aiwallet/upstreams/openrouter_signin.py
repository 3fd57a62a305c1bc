"""Connecting OpenRouter by its OAuth PKCE sign-in: the browser signs in, the wallet gets a key.

The flow (OpenRouter's, ../shared/notes/providers.md):

1. A verifier (random, 64 characters) and its S256 challenge; a random ``state``.
2. A callback server on loopback only: ``127.0.0.1`` and, where IPv6 is there, ``::1`` on the
   same port (the browser may resolve ``localhost`` to either); port 3000 unless it is taken on
   either address, then an ephemeral port.
3. The browser opens ``{auth_url}?callback_url=http://localhost:PORT/callback?state=...
   &code_challenge=...&code_challenge_method=S256``. OpenRouter has no ``state`` of its own, so
   ours rides in the callback URL and comes back with the ``code``.
4. The first callback whose ``state`` matches (constant-time) is THE callback: its code is
   exchanged with ``POST {api_base}/auth/keys`` for ``{"key": "sk-or-v1-...", ...}`` and the
   browser is told the outcome. Callbacks with a missing or wrong state are refused (the page
   says so) and the sign-in goes on waiting: a stale tab or a foreign page cannot end it, and
   the timeout bounds it. Anything after the one accepted callback is refused.
5. The server closes on success, failure, cancel and timeout; nothing is stored here (the
   caller stores the key), and the key, the code and the verifier are never logged, put in an
   exception or shown to the browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import html
import ipaddress
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

import httpx
from aiohttp import web
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from aiwallet.domain.errors import InvalidInput, WalletError
from aiwallet.domain.providers import check_base_url
from aiwallet.logsetup import REDACTOR
from aiwallet.vault import Secret

__all__ = [
    "DEFAULT_API_BASE",
    "DEFAULT_AUTH_URL",
    "DEFAULT_PORT",
    "DEFAULT_TIMEOUT_S",
    "SignIn",
    "SignInCancelled",
    "SignInError",
    "SignInFailed",
    "SignInRefused",
    "SignInResult",
    "SignInTimeout",
    "bind_callback_sockets",
    "exchange_code",
    "open_in_browser",
    "sign_in",
    "start_sign_in",
]

log = logging.getLogger(__name__)

DEFAULT_AUTH_URL = "https://openrouter.ai/auth"
DEFAULT_API_BASE = "https://openrouter.ai/api/v1"
DEFAULT_PORT = 3000
DEFAULT_TIMEOUT_S = 300.0
CALLBACK_PATH = "/callback"
VERIFIER_LEN = 64  # RFC 7636: 43 to 128 characters
STATE_LEN = 32
EXCHANGE_TIMEOUT_S = 30.0
MAX_ANSWER_BYTES = 64 * 1024
# What a code may look like (unreserved URL characters); anything else is not a code.
_CODE_SHAPE = re.compile(r"[A-Za-z0-9._~\-]{1,512}")
# A plausible OpenRouter key: ``sk-or-`` then URL-safe characters (today ``v1-`` + 64 hex).
_KEY_SHAPE = re.compile(r"sk-or-[A-Za-z0-9_\-]{16,500}")
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the callback URL carries the code
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


class SignInError(WalletError):
    """The sign-in did not produce a key; nothing was stored."""

    code = "signin_failed"


class SignInFailed(SignInError):
    """OpenRouter could not be reached, failed, or answered something unusable."""

    code = "signin_failed"


class SignInRefused(SignInError):
    """OpenRouter refused the code (used, expired, wrong verifier) or sent no code back."""

    code = "signin_refused"


class SignInCancelled(SignInError):
    """The user (or the program) cancelled the sign-in."""

    code = "signin_cancelled"


class SignInTimeout(SignInError):
    """No callback (or no exchange) within the sign-in's time."""

    code = "signin_timeout"


@dataclass(frozen=True, slots=True)
class SignInResult:
    """The key OpenRouter issued (a ``Secret``: its repr shows a hint only)."""

    key: Secret
    user_id: str | None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str, what: str) -> str:
    url = check_base_url(url)
    parts = urlsplit(url)
    if parts.scheme != "https" and not _is_loopback(parts.hostname or ""):
        raise InvalidInput(
            f"the {what} {url!r} must use https (plain http is only for a loopback test server)"
        )
    return url


# -- the listening sockets ------------------------------------------------------------------
def _listen(family: socket.AddressFamily, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if os.name == "nt":  # Windows' SO_REUSEADDR lets another socket steal the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)  # type: ignore[attr-defined,unused-ignore]
        else:  # a port in TIME_WAIT from an earlier sign-in is still usable; a listener's is not
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(16)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


_NO_IPV6 = {errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, getattr(errno, "EPROTONOSUPPORT", -1)}


def _bind_both(port: int) -> list[socket.socket]:
    """Listeners on 127.0.0.1 and ::1 (where IPv6 exists) on one port; ``OSError`` when the
    port is taken on either."""
    v4 = _listen(socket.AF_INET, "127.0.0.1", port)
    actual = v4.getsockname()[1]
    if not socket.has_ipv6:
        return [v4]
    try:
        v6 = _listen(socket.AF_INET6, "::1", actual)
    except OSError as exc:
        if exc.errno in _NO_IPV6:
            return [v4]  # no IPv6 loopback here: the browser cannot use it either
        v4.close()
        raise
    return [v4, v6]


def bind_callback_sockets(port: int = DEFAULT_PORT, *, attempts: int = 20) -> list[socket.socket]:
    """The callback server's sockets: on ``port`` where it is free on both loopback addresses,
    else on an ephemeral port free on both (``port=0``: ephemeral straight away)."""
    if port:
        try:
            return _bind_both(port)
        except OSError as exc:
            if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise SignInFailed(
                    f"cannot listen for the sign-in callback on loopback port {port} "
                    f"({errno.errorcode.get(exc.errno or 0, 'error')})"
                ) from None
            log.info("sign-in callback port %d is taken; using an ephemeral port", port)
    for _ in range(attempts):  # the ephemeral port on 127.0.0.1 may be taken on ::1
        try:
            return _bind_both(0)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise SignInFailed(
                    "cannot listen for the sign-in callback on a loopback port "
                    f"({errno.errorcode.get(exc.errno or 0, 'error')})"
                ) from None
    raise SignInFailed("found no loopback port free on both 127.0.0.1 and ::1 for the callback")


# -- the pages the browser sees ---------------------------------------------------------------
def _page(status: int, title: str, text: str) -> web.Response:
    body = (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>aiwallet: {html.escape(title)}</title></head>"
        '<body style="font-family:sans-serif;max-width:40em;margin:4em auto">'
        f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )
    return web.Response(
        status=status, text=body, content_type="text/html", charset="utf-8", headers=_PAGE_HEADERS
    )


_CONNECTED = (200, "Connected", "Connected. You can close this tab.")
_REFUSED_STATE = (
    "Refused",
    "Refused: this link does not belong to the sign-in the wallet is waiting for, so nothing was "
    "stored. If you meant to connect OpenRouter, start the sign-in again from the wallet.",
)
_FINISHED = (
    "Already finished",
    "This sign-in is already finished; nothing was changed. You can close this tab.",
)


# -- the exchange ---------------------------------------------------------------------------
async def exchange_code(
    api_base: str, code: str, verifier: str, *, timeout_s: float = EXCHANGE_TIMEOUT_S
) -> SignInResult:
    """``POST {api_base}/auth/keys``: the code and its verifier for a key."""
    url = api_base.rstrip("/") + "/auth/keys"
    body = {"code": code, "code_verifier": verifier, "code_challenge_method": "S256"}
    try:
        async with (
            httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client,
            client.stream("POST", url, json=body) as resp,
        ):
            status = resp.status_code
            raw = b""
            async for chunk in resp.aiter_bytes():
                raw += chunk
                if len(raw) > MAX_ANSWER_BYTES:
                    raise SignInFailed(
                        "OpenRouter's answer to the key exchange is too large to be a key"
                    )
    except httpx.TimeoutException:
        raise SignInFailed(
            f"OpenRouter did not answer the key exchange within {timeout_s:g} s; try again"
        ) from None
    except httpx.HTTPError as exc:
        raise SignInFailed(
            f"cannot reach {api_base} for the key exchange ({type(exc).__name__}); "
            "check the connection and try again"
        ) from None
    # The body is never quoted: it might echo the code or the verifier.
    if 400 <= status < 500:
        raise SignInRefused(
            f"OpenRouter refused the sign-in code (HTTP {status}): it was used already, has "
            "expired, or does not match this sign-in; start the sign-in again"
        )
    if status != 200:
        raise SignInFailed(
            f"OpenRouter's key exchange answered HTTP {status}; try again later"
            + (" (a redirect: check the API base URL)" if 300 <= status < 400 else "")
        )
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    key = doc.get("key") if isinstance(doc, dict) else None
    if not isinstance(key, str) or not _KEY_SHAPE.fullmatch(key):
        raise SignInFailed(
            "OpenRouter's answer to the key exchange held no usable key (expected sk-or-...); "
            "try again"
        )
    REDACTOR.register(key)
    assert isinstance(doc, dict)
    user = doc.get("user_id")
    return SignInResult(Secret(key), user if isinstance(user, str) and len(user) <= 200 else None)


# -- one sign-in ----------------------------------------------------------------------------
class SignIn:
    """One running sign-in: ``url`` to open in a browser, ``await wait()`` for the key,
    ``cancel()`` (from any thread) to stop it. Its server already listens; it closes when the
    sign-in ends, whichever way."""

    def __init__(
        self,
        sockets: list[socket.socket],
        *,
        auth_url: str,
        api_base: str,
        timeout_s: float,
    ) -> None:
        self._sockets = sockets
        self._api_base = api_base
        self._timeout_s = timeout_s
        self._state = generate_token(STATE_LEN)
        self._verifier = generate_token(VERIFIER_LEN)
        self.port: int = sockets[0].getsockname()[1]
        self.addresses: tuple[str, ...] = tuple(s.getsockname()[0] for s in sockets)
        self.callback_url = (
            f"http://localhost:{self.port}{CALLBACK_PATH}?{urlencode({'state': self._state})}"
        )
        query = urlencode(
            {
                "callback_url": self.callback_url,
                "code_challenge": create_s256_code_challenge(self._verifier),
                "code_challenge_method": "S256",
            }
        )
        self.url = f"{auth_url}{'&' if '?' in auth_url else '?'}{query}"
        self.refused_callbacks = 0
        self._hosts = {f"{h}:{self.port}" for h in ("localhost", "127.0.0.1", "[::1]")}
        self._accepted = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cancel: asyncio.Event | None = None
        self._code: asyncio.Future[str] | None = None
        self._page: asyncio.Future[tuple[int, str, str]] | None = None
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[SignInResult] | None = None
        self._cancel_requested = threading.Event()

    def __repr__(self) -> str:
        return f"SignIn(port={self.port})"

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    async def _start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._cancel = asyncio.Event()
        self._code = self._loop.create_future()
        self._page = self._loop.create_future()
        app = web.Application()
        app.router.add_get(CALLBACK_PATH, self._callback)
        # No access log: the callback's query holds the code.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        try:
            await runner.setup()
            for sock in self._sockets:
                await web.SockSite(runner, sock).start()
        except BaseException:
            await runner.cleanup()
            self._close_sockets()
            raise
        self._runner = runner
        if self._cancel_requested.is_set():
            self._cancel.set()
        self._task = asyncio.ensure_future(self._run())

    def cancel(self) -> None:
        """End the sign-in (``wait`` raises ``SignInCancelled``); safe from any thread."""
        self._cancel_requested.set()
        loop, event = self._loop, self._cancel
        if loop is None or event is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            event.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    async def wait(self) -> SignInResult:
        """The key, once the browser came back and OpenRouter exchanged the code. Raises a
        ``SignInError``; cancelling the awaiting task cancels the sign-in too."""
        assert self._task is not None, "use start_sign_in()"
        return await self._task

    async def aclose(self) -> None:
        """Cancel if still running, and wait until the server is closed."""
        self.cancel()
        if self._task is not None:
            with contextlib.suppress(SignInError, asyncio.CancelledError):
                await self._task

    async def __aenter__(self) -> SignIn:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- internals ---------------------------------------------------------------------------
    async def _race(self, fut: asyncio.Future[str] | asyncio.Task[SignInResult]) -> object:
        assert self._cancel is not None
        stop = asyncio.ensure_future(self._cancel.wait())
        try:
            done, _ = await asyncio.wait({fut, stop}, return_when=asyncio.FIRST_COMPLETED)
            if fut in done:
                return fut.result()
            raise SignInCancelled("the OpenRouter sign-in was cancelled; nothing was stored")
        finally:
            stop.cancel()
            if not fut.done():  # cancelled, timed out, or this task itself cancelled
                fut.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await fut

    async def _run(self) -> SignInResult:
        assert self._code is not None and self._page is not None
        page: tuple[int, str, str] = (
            410,
            "Not connected",
            "The wallet stopped this sign-in; nothing was stored. You can close this tab.",
        )
        try:
            async with asyncio.timeout(self._timeout_s):
                code = await self._race(self._code)
                assert isinstance(code, str)
                exchange = asyncio.ensure_future(
                    exchange_code(self._api_base, code, self._verifier)
                )
                result = await self._race(exchange)
            assert isinstance(result, SignInResult)
            page = _CONNECTED
            return result
        except TimeoutError:
            if self._accepted:
                raise SignInTimeout(
                    f"OpenRouter did not finish the key exchange within {self._timeout_s:g} s of "
                    "the sign-in's start; nothing was stored; start it again"
                ) from None
            refused = (
                f" ({self.refused_callbacks} callback(s) with a wrong state were refused)"
                if self.refused_callbacks
                else ""
            )
            raise SignInTimeout(
                f"no sign-in came back from the browser within {self._timeout_s:g} s{refused}; "
                "nothing was stored; start it again"
            ) from None
        except SignInError as err:
            if not isinstance(err, SignInCancelled):
                page = (502, "Not connected", f"The wallet could not connect OpenRouter: {err}")
            raise
        finally:
            if not self._page.done():
                self._page.set_result(page)
            await self._close()

    async def _close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._close_sockets()

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            sock.close()

    async def _callback(self, request: web.Request) -> web.Response:
        assert self._code is not None and self._page is not None
        if request.host not in self._hosts:  # DNS rebinding: only loopback names
            return _page(400, "Refused", "This address is not the wallet's sign-in callback.")
        if self._accepted or self._code.done():
            return _page(409, *_FINISHED)
        states = request.rel_url.query.getall("state", [])
        expected = self._state.encode("ascii")
        if len(states) != 1 or not hmac.compare_digest(states[0].encode("utf-8"), expected):
            self.refused_callbacks += 1
            log.warning("refused a sign-in callback whose state is missing or wrong")
            return _page(400, *_REFUSED_STATE)
        self._accepted = True
        codes = request.rel_url.query.getall("code", [])
        if len(codes) == 1 and _CODE_SHAPE.fullmatch(codes[0]):
            self._code.set_result(codes[0])
        else:
            self._code.set_exception(
                SignInRefused(
                    "OpenRouter sent the browser back without a usable sign-in code (was the "
                    "sign-in declined?); nothing was stored; start it again"
                )
            )
        status, title, text = await asyncio.shield(self._page)
        return _page(status, title, text)


async def start_sign_in(
    *,
    auth_url: str = DEFAULT_AUTH_URL,
    api_base: str = DEFAULT_API_BASE,
    port: int = DEFAULT_PORT,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> SignIn:
    """Start listening for the callback and return the running sign-in (open its ``url``)."""
    auth_url = _check_url(auth_url, "sign-in URL")
    api_base = _check_url(api_base, "API base URL")
    if not 0 <= port <= 65535:
        raise InvalidInput(f"{port} is not a port; use 1-65535, or 0 for any free port")
    if not 0 < timeout_s <= 3600:
        raise InvalidInput("the sign-in timeout must be more than 0 and at most 3600 seconds")
    sockets = bind_callback_sockets(port)
    signin = SignIn(sockets, auth_url=auth_url, api_base=api_base, timeout_s=timeout_s)
    await signin._start()
    return signin


async def sign_in(
    *,
    open_browser: Callable[[str], object],
    auth_url: str = DEFAULT_AUTH_URL,
    api_base: str = DEFAULT_API_BASE,
    port: int = DEFAULT_PORT,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    cancel: asyncio.Event | None = None,
) -> SignInResult:
    """The whole sign-in: listen, ``open_browser(url)`` (in a thread: it may block), wait for
    the key. Setting ``cancel`` ends it with ``SignInCancelled``."""
    signin = await start_sign_in(
        auth_url=auth_url, api_base=api_base, port=port, timeout_s=timeout_s
    )
    watcher: asyncio.Task[object] | None = None
    try:
        if cancel is not None:
            watcher = asyncio.ensure_future(_cancel_when(cancel, signin))
        await open_in_browser(open_browser, signin.url)
        return await signin.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        await signin.aclose()


async def open_in_browser(open_browser: Callable[[str], object], url: str) -> None:
    """``open_browser(url)`` in a thread (it may block); a failure is logged, not raised: the
    caller has shown the URL, and the sign-in goes on waiting for it to be opened by hand."""
    try:
        await asyncio.to_thread(open_browser, url)
    except Exception as exc:
        log.warning(
            "could not open a browser (%s); open the sign-in URL by hand", type(exc).__name__
        )


async def _cancel_when(event: asyncio.Event, signin: SignIn) -> object:
    await event.wait()
    signin.cancel()
    return None
