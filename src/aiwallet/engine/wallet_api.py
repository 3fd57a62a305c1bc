"""``/wallet/v1``: what apps may ask the wallet directly (connect, me, own requests, token)."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import BudgetSpec, usd_string
from aiwallet.engine.context import CONSENT, ENGINE, PROXY, STATE
from aiwallet.engine.errors import ProxyError
from aiwallet.engine.openapi import OPENAPI_PATH, openapi_document
from aiwallet.engine.proxy import app_key_of
from aiwallet.engine.state import AppContext, EngineState
from aiwallet.store.ledger import MAX_PAGE, AppRequest, Ledger, RequestCursor, micros
from aiwallet.store.reports import Reports

MAX_POLL_S = 60.0
MAX_SERIES = 96  # buckets of a /me spend series
SETTLE_WAIT_S = 5.0  # how long /me/requests waits for settlements already under way
BURN_WINDOW = timedelta(hours=1)
MAX_SETTLING = 16  # request ids a long-poll may wait on (awreq_ + 32 hex, comma-separated)


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ProxyError("invalid_request", f"{name} must be a whole number", param=name) from None
    if not lo <= value <= hi:
        raise ProxyError("invalid_request", f"{name} must be from {lo} to {hi}", param=name)
    return value


def _ids_param(request: web.Request, name: str) -> set[str]:
    raw = request.query.get(name, "")
    ids = {i for i in raw.split(",") if i}
    if len(raw) > 40 * MAX_SETTLING or len(ids) > MAX_SETTLING:
        raise ProxyError(
            "invalid_request",
            f"{name} is at most {MAX_SETTLING} request ids, comma-separated",
            param=name,
        )
    return ids


def _wait_param(request: web.Request, default: float) -> float:
    try:
        wait = float(request.query.get("wait", str(default)))
    except ValueError:
        raise ProxyError("invalid_request", "wait must be a number of seconds") from None
    if wait != wait:  # NaN
        raise ProxyError("invalid_request", "wait must be a number of seconds")
    return max(0.0, min(MAX_POLL_S, wait))


def poll_secret_of(request: web.Request) -> str | None:
    """The connect poll secret: ``Authorization: Bearer aw_poll_...``."""
    auth = request.headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def _request_json(row: AppRequest) -> dict[str, Any]:
    return {
        "id": row.id,
        "cursor": str(row.cursor),
        "ts": row.ts.isoformat(),
        "endpoint": row.endpoint,
        "model": row.model,
        "provider": row.provider,
        "status": row.status,
        "error_code": row.error_code,
        "stream": row.stream,
        "input_tokens": row.input_tokens,
        "cache_read_tokens": row.cache_read_tokens,
        "cache_write_tokens": row.cache_write_tokens,
        "output_tokens": row.output_tokens,
        "reasoning_tokens": row.reasoning_tokens,
        "cost_usd": usd_string(row.cost_nano),
        "cost_nano": row.cost_nano,
        "token_source": row.token_source,
        "latency_ms": row.latency_ms,
    }


def add_wallet_routes(app: web.Application) -> None:
    async def connect(request: web.Request) -> web.Response:
        req, secret = await request.app[CONSENT].connect(request)
        return web.json_response(
            {
                "id": req.id,
                "status": req.state,
                "poll": f"/wallet/v1/connect/{req.id}",
                "poll_secret": secret,
            },
            status=202,
        )

    async def connect_status(request: web.Request) -> web.Response:
        wait = _wait_param(request, 30.0)
        req, key = await request.app[CONSENT].poll(
            request, request.match_info["id"], poll_secret_of(request), wait
        )
        body: dict[str, Any] = {"id": req.id, "status": req.state}
        if req.state == "approved":
            body.update({k: v for k, v in req.answer.items() if k != "key"})
            if key is not None:  # handed out once, to this poll; later polls see the rest
                body["key"] = key
        elif req.state in ("denied", "expired", "cancelled"):
            body["message"] = {
                "denied": "the wallet's owner said no",
                "expired": "nobody answered in time; ask again later",
                "cancelled": "the request was withdrawn",
            }[req.state]
        return web.json_response(body)

    async def caller(request: web.Request) -> AppContext:
        """The app asking about itself: its key or session token, still valid."""
        ctx = await request.app[PROXY].identify(request)
        if ctx is None:
            raise ProxyError("consent_required", "this request carries no valid app key or token")
        if ctx.app.revoked_at is not None or ctx.grant is None:
            raise ProxyError(
                "consent_required", "the wallet's owner revoked this app's access; ask them again"
            )
        return ctx

    async def me(request: web.Request) -> web.Response:
        state = request.app[STATE]
        series_n = _int_param(request, "series", 0, 0, MAX_SERIES)
        ctx = await caller(request)
        now = datetime.now(UTC)
        budgets = []
        app_window: tuple[datetime, datetime] | None = None
        for b in ctx.budgets:
            st = await state.db(state.budgets.state, b, now, state.timezone)
            budgets.append(
                {
                    "scope": b.scope,
                    "budget": str(BudgetSpec(b.amount_nano, b.period)),
                    "amount_nano": b.amount_nano,
                    "spent_usd": usd_string(st.spent_nano),
                    "spent_nano": st.spent_nano,
                    "reserved_usd": usd_string(st.reserved_nano),
                    "remaining_usd": usd_string(max(st.remaining_nano, 0)),
                    "remaining_nano": max(st.remaining_nano, 0),
                    "window_start": st.window_start.isoformat() if st.window_start else None,
                    "resets_at": st.reset_at.isoformat() if st.reset_at else None,
                }
            )
            if b.scope == "app" and st.window_start is not None and st.reset_at is not None:
                app_window = (st.window_start, st.reset_at)
        grant = ctx.grant
        assert grant is not None
        body: dict[str, Any] = {
            "app": ctx.app.name,
            "models": list(grant.scopes),
            "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
            "receipt": grant.receipt,
            "budgets": budgets,
            "wallet_paused": state.paused,
            "app_paused": ctx.app.paused,
            "now": now.isoformat(),
        }
        if series_n:
            body["series"] = await state.db(_series, state, ctx.app.id, app_window, now, series_n)
            body["last_hour"] = await state.db(_last_hour, state, ctx.app.id, now)
        return web.json_response(body)

    async def me_requests(request: web.Request) -> web.Response:
        state, proxy = request.app[STATE], request.app[PROXY]
        limit = _int_param(request, "limit", 100, 0, MAX_PAGE)
        wait = _wait_param(request, 0.0)
        raw_after = request.query.get("after")
        try:
            after = RequestCursor.parse(raw_after) if raw_after else None
        except InvalidInput as exc:
            raise ProxyError("invalid_request", str(exc), param="after") from None
        settling = _ids_param(request, "settling")
        ctx = await caller(request)
        app_id = ctx.app.id
        changed = asyncio.Event()

        def on_event(name: str, payload: dict[str, Any]) -> None:
            if name == "engine.reloaded" or (
                name == "request.logged" and payload.get("app_id") == app_id
            ):
                changed.set()

        unsubscribe = request.app[ENGINE].events.subscribe(on_event)
        try:
            # Every request whose answer this app has seen has ended: its settlement is
            # committed, under way (wait for it), or its reservation is still open (in_flight).
            under_way = set(proxy.background)
            if under_way:
                await asyncio.wait(under_way, timeout=SETTLE_WAIT_S)
            rows = await state.db(state.requests.app_page, app_id, after, limit)
            in_flight = await state.db(state.requests.in_flight, app_id)
            # hold an empty page, or (with settling=) while those requests are in flight;
            # subscribed before reading, so nothing logged in between is missed
            hold = bool(settling & {f.request_id for f in in_flight}) if settling else not rows
            if hold and wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=wait)
                rows = await state.db(state.requests.app_page, app_id, after, limit)
                in_flight = await state.db(state.requests.in_flight, app_id)
        finally:
            unsubscribe()
        nxt = rows[-1].cursor if rows else after
        return web.json_response(
            {
                "requests": [_request_json(r) for r in rows],
                "next": str(nxt) if nxt is not None else None,
                "more": len(rows) == limit and limit > 0,
                "in_flight": [
                    {"id": f.request_id, "reserved_at": f.ts.isoformat(), "at": micros(f.ts)}
                    for f in in_flight
                ],
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
    app.router.add_get("/wallet/v1/me/requests", me_requests)
    app.router.add_post("/wallet/v1/token", token)


def _series(
    state: EngineState,
    app_id: int,
    window: tuple[datetime, datetime] | None,
    now: datetime,
    n: int,
) -> dict[str, Any]:
    """The app's spend in ``n`` equal buckets over its budget window (the last 24 hours when
    it has no budget with a window), from the ledger."""
    start, end = window if window is not None else (now - timedelta(hours=24), now)
    step = (end - start) / n
    edges = [start + step * i for i in range(n)] + [end]
    series = Reports(state.port.db).spend_series(edges, "model", app_id=app_id)
    per_bucket = series.bucket_totals()
    return {
        "edges": [e.isoformat() for e in edges],
        "spent_nano": per_bucket,
        "spent_usd": [usd_string(v) for v in per_bucket],
    }


def _last_hour(state: EngineState, app_id: int, now: datetime) -> dict[str, Any]:
    spent = Ledger(state.port.db).total_spent(app_id=app_id, since=now - BURN_WINDOW, until=now)
    return {"seconds": int(BURN_WINDOW.total_seconds()), "spent_nano": spent,
            "spent_usd": usd_string(spent)}  # fmt: skip
