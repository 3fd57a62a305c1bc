""" "Connect OpenRouter": its PKCE sign-in in the browser, then the key stored like any other.

The sign-in itself is ``upstreams/openrouter_signin.py``; this module checks the provider
name first (before any browser opens), runs the sign-in and stores the key it brings with
``Wallet.add_provider`` (vault, database, audit, engine told), exactly as a typed key is.

For a GUI (start → URL → await the result, or cancel)::

    connect = await start_connect_openrouter(wallet, name="openrouter")
    show(connect.url); webbrowser.open(connect.url)
    info = await connect.wait()        # ProviderInfo; connect.cancel() from a button

For a terminal: ``connect_openrouter(wallet, open_browser=...)`` blocks until done.
Wallet methods are blocking: they run in a worker thread (``run``: the GUI's own pool).
"""

from __future__ import annotations

import asyncio
import functools
import webbrowser
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiwallet.upstreams.openrouter_signin import (
    DEFAULT_API_BASE,
    DEFAULT_AUTH_URL,
    DEFAULT_PORT,
    DEFAULT_TIMEOUT_S,
    SignIn,
    open_in_browser,
    start_sign_in,
)

if TYPE_CHECKING:
    from aiwallet.service import ProviderInfo, Wallet

__all__ = [
    "OpenRouterConnect",
    "connect_openrouter",
    "connect_openrouter_async",
    "start_connect_openrouter",
]

KIND = "openrouter"
T = TypeVar("T")
Runner = Callable[..., Awaitable[Any]]


async def _to_thread(fn: Callable[..., T], *args: Any, **kw: Any) -> T:
    return await asyncio.to_thread(functools.partial(fn, *args, **kw))


class OpenRouterConnect:
    """A running "Connect OpenRouter": ``url`` to open, ``await wait()`` for the stored
    provider, ``cancel()`` from any thread."""

    def __init__(
        self,
        wallet: Wallet,
        signin: SignIn,
        *,
        name: str,
        replace: bool,
        api_base: str | None,
        run: Runner,
    ) -> None:
        self._wallet = wallet
        self.signin = signin
        self.name = name
        self._replace = replace
        self._api_base = api_base
        self._run = run

    @property
    def url(self) -> str:
        """The page to open in the browser (print it too: no browser may open)."""
        return self.signin.url

    @property
    def port(self) -> int:
        return self.signin.port

    def cancel(self) -> None:
        self.signin.cancel()

    async def wait(self) -> ProviderInfo:
        """Sign-in done and key stored: the provider as listed. Raises ``SignInError`` (or
        the store's error); nothing is stored then."""
        result = await self.signin.wait()
        info: ProviderInfo = await self._run(
            self._wallet.add_provider,
            self.name,
            kind=KIND,
            api_key=result.key.reveal(),
            base_url=self._api_base,
            replace=self._replace,
        )
        return info

    async def aclose(self) -> None:
        await self.signin.aclose()


async def start_connect_openrouter(
    wallet: Wallet,
    *,
    name: str = KIND,
    replace: bool = False,
    auth_url: str | None = None,
    api_base: str | None = None,
    port: int = DEFAULT_PORT,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    run: Runner | None = None,
) -> OpenRouterConnect:
    """Check the name, start listening for the callback; the browser is the caller's."""
    run = run or _to_thread
    await run(wallet.check_new_provider, name, kind=KIND, base_url=api_base, replace=replace)
    signin = await start_sign_in(
        auth_url=auth_url or DEFAULT_AUTH_URL,
        api_base=api_base or DEFAULT_API_BASE,
        port=port,
        timeout_s=timeout_s,
    )
    return OpenRouterConnect(wallet, signin, name=name, replace=replace, api_base=api_base, run=run)


async def connect_openrouter_async(
    wallet: Wallet,
    *,
    name: str = KIND,
    replace: bool = False,
    open_browser: Callable[[str], object] = webbrowser.open,
    auth_url: str | None = None,
    api_base: str | None = None,
    port: int = DEFAULT_PORT,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    cancel: asyncio.Event | None = None,
    run: Runner | None = None,
) -> ProviderInfo:
    """The whole "Connect OpenRouter": check, listen, ``open_browser(url)`` (in a thread),
    wait, store (a browser that fails to open is logged: the URL can be opened by hand).
    Setting ``cancel`` ends it with ``SignInCancelled``."""
    connect = await start_connect_openrouter(
        wallet,
        name=name,
        replace=replace,
        auth_url=auth_url,
        api_base=api_base,
        port=port,
        timeout_s=timeout_s,
        run=run,
    )
    watcher: asyncio.Task[None] | None = None
    try:
        if cancel is not None:
            watcher = asyncio.ensure_future(_cancel_when(cancel, connect))
        await open_in_browser(open_browser, connect.url)
        return await connect.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        await connect.aclose()


async def _cancel_when(event: asyncio.Event, connect: OpenRouterConnect) -> None:
    await event.wait()
    connect.cancel()


def connect_openrouter(
    wallet: Wallet,
    *,
    name: str = KIND,
    replace: bool = False,
    open_browser: Callable[[str], object] = webbrowser.open,
    auth_url: str | None = None,
    api_base: str | None = None,
    port: int = DEFAULT_PORT,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> ProviderInfo:
    """Blocking "Connect OpenRouter" for a terminal (Ctrl-C cancels: the server closes, and
    ``KeyboardInterrupt`` goes on up). Call it off any event loop."""
    return asyncio.run(
        connect_openrouter_async(
            wallet,
            name=name,
            replace=replace,
            open_browser=open_browser,
            auth_url=auth_url,
            api_base=api_base,
            port=port,
            timeout_s=timeout_s,
        )
    )
