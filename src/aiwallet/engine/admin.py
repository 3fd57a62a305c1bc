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
        await engine.reload()
        return web.json_response({"ok": True, "generation": engine.state.generation})

    async def consent_pending(request: web.Request) -> web.Response:
        assert engine.consent is not None
        return web.json_response([r.to_json() for r in engine.consent.pending()])

    async def consent_approve(request: web.Request) -> web.Response:
        assert engine.consent is not None
        body = await request.json() if request.can_read_body else {}
        req = await engine.consent.approve(
            request.match_info["id"],
            budget=body.get("budget"),
            models=body.get("models"),
            lifetime_s=body.get("lifetime_s"),
            once=bool(body.get("once", False)),
        )
        answer = {k: v for k, v in req.answer.items() if k != "key"}  # the key is the app's
        return web.json_response({**req.to_json(), "answer": answer})

    async def consent_deny(request: web.Request) -> web.Response:
        assert engine.consent is not None
        body = await request.json() if request.can_read_body else {}
        req = await engine.consent.deny(request.match_info["id"], always=bool(body.get("always")))
        return web.json_response(req.to_json())

    app.router.add_get("/admin/v1/status", guarded(status))
    app.router.add_get("/admin/v1/consent/pending", guarded(consent_pending))
    app.router.add_post("/admin/v1/consent/{id}/approve", guarded(consent_approve))
    app.router.add_post("/admin/v1/consent/{id}/deny", guarded(consent_deny))
    app.router.add_post("/admin/v1/reload", guarded(reload))
