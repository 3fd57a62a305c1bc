"""The admin API (``/admin/v1/...``): the CLI and the notebook helper tell a running engine
about changes. Every call needs the admin token from the data dir's 0600 ``admin.token``."""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from aiwallet.engine.server import Engine


def add_admin_routes(app: web.Application, engine: Engine) -> None:
    def guarded(fn: Any) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            auth = request.headers.get("Authorization", "")
            token = auth[7:] if auth[:7].lower() == "bearer " else ""
            if not engine.admin_token or not hmac.compare_digest(token, engine.admin_token):
                return web.json_response(
                    {"error": {"code": "admin_token_required", "message": "wrong admin token"}},
                    status=401,
                )
            result: web.StreamResponse = await fn(request)
            return result

        return handler

    async def status(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "port": engine.port,
                "paused": engine.state.paused,
                "generation": engine.state.generation,
                "in_flight_settlements": len(engine._proxy.background) if engine._proxy else 0,
            }
        )

    async def reload(request: web.Request) -> web.Response:
        await engine.state.reload()
        return web.json_response({"ok": True, "generation": engine.state.generation})

    app.router.add_get("/admin/v1/status", guarded(status))
    app.router.add_post("/admin/v1/reload", guarded(reload))
