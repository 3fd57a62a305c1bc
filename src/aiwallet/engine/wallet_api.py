"""``/wallet/v1``: what apps may ask the wallet directly (connect, me, token)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from aiwallet.domain.money import BudgetSpec, usd_string
from aiwallet.engine.context import CONSENT, ENGINE, PROXY, STATE
from aiwallet.engine.errors import ProxyError
from aiwallet.engine.openapi import OPENAPI_PATH, openapi_document
from aiwallet.engine.proxy import app_key_of

MAX_POLL_S = 60.0


def add_wallet_routes(app: web.Application) -> None:
    async def connect(request: web.Request) -> web.Response:
        req = await request.app[CONSENT].connect(request)
        return web.json_response(
            {"id": req.id, "status": req.state, "poll": f"/wallet/v1/connect/{req.id}"}, status=202
        )

    async def connect_status(request: web.Request) -> web.Response:
        try:
            wait = min(MAX_POLL_S, float(request.query.get("wait", "30")))
        except ValueError:
            raise ProxyError("invalid_request", "wait must be a number of seconds") from None
        req = await request.app[CONSENT].wait(request.match_info["id"], wait)
        body: dict[str, Any] = {"id": req.id, "status": req.state}
        if req.state == "approved":
            answer = dict(req.answer)
            key = answer.pop("key", None)
            if key is not None:  # the key is handed out once; later polls see the rest
                req.answer.pop("key", None)
                body["key"] = key
            body.update(answer)
        elif req.state in ("denied", "expired", "cancelled"):
            body["message"] = {
                "denied": "the wallet's owner said no",
                "expired": "nobody answered in time; ask again later",
                "cancelled": "the request was withdrawn",
            }[req.state]
        return web.json_response(body)

    async def me(request: web.Request) -> web.Response:
        state = request.app[STATE]
        ctx = await request.app[PROXY].identify(request)
        if ctx is None or ctx.app.revoked_at is not None or ctx.grant is None:
            raise ProxyError("consent_required", "this request carries no valid app key or token")
        now = datetime.now(UTC)
        budgets = []
        for b in ctx.budgets:
            st = await state.db(state.budgets.state, b, now, state.timezone)
            budgets.append(
                {
                    "scope": b.scope,
                    "budget": str(BudgetSpec(b.amount_nano, b.period)),
                    "spent_usd": usd_string(st.spent_nano),
                    "reserved_usd": usd_string(st.reserved_nano),
                    "remaining_usd": usd_string(max(st.remaining_nano, 0)),
                    "resets_at": st.reset_at.isoformat() if st.reset_at else None,
                }
            )
        grant = ctx.grant
        return web.json_response(
            {
                "app": ctx.app.name,
                "models": list(grant.scopes),
                "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
                "receipt": grant.receipt,
                "budgets": budgets,
                "wallet_paused": state.paused,
            }
        )

    async def token(request: web.Request) -> web.Response:
        proxy = request.app[PROXY]
        key = app_key_of(request)
        if not key or key.startswith("aw_sess_"):
            raise ProxyError("consent_required", "exchange an app key (aw_app_...) for a token")
        ctx = await request.app[STATE].app_for_key(key)
        if ctx is None or ctx.app.revoked_at is not None or ctx.grant is None:
            raise ProxyError("consent_required", "this app key is not valid")
        if not ctx.grant.active_at(datetime.now(UTC)):
            raise ProxyError("consent_required", "this app's grant has expired")
        tok, expires = proxy.tokens.issue(ctx.app.id, ctx.grant.id)
        return web.json_response(
            {
                "token": tok,
                "token_type": "bearer",
                "expires_in": proxy.tokens.ttl_s,
                "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
            }
        )

    async def openapi(request: web.Request) -> web.Response:
        return web.json_response(openapi_document(MAX_POLL_S, request.app[ENGINE].url))

    app.router.add_get(OPENAPI_PATH, openapi)
    app.router.add_post("/wallet/v1/connect", connect)
    app.router.add_get("/wallet/v1/connect/{id}", connect_status)
    app.router.add_get("/wallet/v1/me", me)
    app.router.add_post("/wallet/v1/token", token)
