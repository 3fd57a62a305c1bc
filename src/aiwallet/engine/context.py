"""Typed application state: what the route modules (admin, wallet API) read off the aiohttp
application, instead of closures over the engine or its private attributes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from aiwallet.engine.consent import ConsentManager
    from aiwallet.engine.proxy import Proxy
    from aiwallet.engine.server import Engine
    from aiwallet.engine.state import EngineState

ENGINE: web.AppKey[Engine] = web.AppKey("engine")
STATE: web.AppKey[EngineState] = web.AppKey("state")
PROXY: web.AppKey[Proxy] = web.AppKey("proxy")
CONSENT: web.AppKey[ConsentManager] = web.AppKey("consent")
