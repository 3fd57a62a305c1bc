"""The policy pipeline for one proxied request.

authenticate → policy (paused, revoked, expired, model allowed) → parse → price → reserve the
worst case (clamping max output to what the budget can pay) → forward → meter → settle (durable
before the last byte) → respond. Every refusal is an error in the caller's wire format.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from aiwallet.domain.appkeys import looks_like_app_key
from aiwallet.domain.cost import cost_of, max_output_tokens_affordable, worst_case_cost
from aiwallet.domain.errors import VaultError
from aiwallet.domain.money import usd_string
from aiwallet.domain.providers import WireFormat
from aiwallet.domain.usage import Usage
from aiwallet.engine.endpoints import Endpoint
from aiwallet.engine.errors import Api, ProxyError, error_response
from aiwallet.engine.estimate import estimate_tokens, estimated_usage
from aiwallet.engine.events import EventBus
from aiwallet.engine.ratelimit import Limits, RateLimiter
from aiwallet.engine.routing import Route, scope_allows
from aiwallet.engine.state import AppContext, EngineState
from aiwallet.engine.tokens import PREFIX as SESSION_PREFIX
from aiwallet.engine.tokens import SessionTokens
from aiwallet.store.budgets import BudgetRefused
from aiwallet.store.records import RequestRecord, Reservation, SpendEntry
from aiwallet.upstreams.client import upstream_headers, upstream_url

if TYPE_CHECKING:
    from aiwallet.engine.consent import ConsentManager

log = logging.getLogger(__name__)

MIN_OUTPUT_TOKENS = 16  # below this a clamped answer is useless: refuse instead
DEFAULT_MAX_OUTPUT = 4096  # when the catalog knows no output limit
MAX_OUTPUT_FIELD = 2**31 - 1  # a larger max-output field is refused before any reservation


@dataclass
class Call:
    """One request as it moves through the pipeline."""

    request: web.Request
    endpoint: Endpoint
    request_id: str = field(default_factory=lambda: "awreq_" + uuid.uuid4().hex)
    started: float = field(default_factory=time.monotonic)
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))
    ctx: AppContext | None = None
    route: Route | None = None
    body: dict[str, Any] | None = None
    raw: bytes = b""  # the body as the client sent it: forwarded as is unless policy changed it
    prompt_bytes: int = 0
    may_write_cache: bool = False  # Anthropic cache_control present: cache-write prices apply
    stream: bool = False
    reservation: Reservation | None = None
    clamped_to: int | None = None
    ttfb_ms: int | None = None
    settled: bool = False
    rl_tokens: int | None = None  # tokens taken from the app's rate limit (None: none taken)
    used_tokens: int = 0

    @property
    def api(self) -> Api:
        return self.endpoint.api

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)


def app_key_of(request: web.Request) -> str | None:
    """The key or session token a request carries; None when it carries none (keys and tokens
    are ASCII: anything else is no key, and could not be hashed or compared)."""
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        key = auth[7:].strip() or None
    else:
        key = request.headers.get("x-api-key") or None
    return key if key is not None and key.isascii() else None


class Proxy:
    def __init__(self, state: EngineState, session: aiohttp.ClientSession, max_body: int) -> None:
        self.state = state
        self.session = session
        self.max_body = max_body
        self.background: set[asyncio.Task[Any]] = set()
        self.limiter = RateLimiter()
        self.tokens = SessionTokens()
        self.consent: ConsentManager | None = None
        self.events = EventBus()

    # -- entry --------------------------------------------------------------------------------
    async def handle(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        call = Call(request, endpoint)
        try:
            await self._admit(call)
            return await self._forward(call)
        except ProxyError as err:
            self._record_refusal(call, err)
            return error_response(call.api, err, call.request_id)
        except asyncio.CancelledError:
            self._after_cancel(call)
            raise
        finally:
            if call.rl_tokens is not None and call.ctx is not None:
                self.limiter.done(call.ctx.app.id, call.rl_tokens, call.used_tokens)

    # -- identity -------------------------------------------------------------------------------
    async def identify(self, request: web.Request) -> AppContext | None:
        """The app behind a request's key or session token; None when it carries neither a
        known key nor a token (a keyless caller)."""
        key = app_key_of(request)
        if key and key.startswith(SESSION_PREFIX):
            claim = self.tokens.check(key)
            ctx = await self.state.app_by_id(claim.app_id)
            if ctx is None or ctx.grant is None or ctx.grant.id != claim.grant_id:
                raise ProxyError(
                    "consent_required",
                    "the grant behind this session token was revoked or replaced; ask again",
                )
            return ctx
        if key and looks_like_app_key(key):
            return await self.state.app_for_key(key)
        return None

    async def keyless(self, call: Call) -> AppContext:
        """A caller with no usable key: ask the user (see consent.py) or refuse."""
        if self.consent is not None:
            ctx = await self.consent.admit_keyless(call.request)
            if ctx is not None:
                return ctx
        raise ProxyError(
            "consent_required",
            "this program has no wallet app key; ask the wallet's owner for one "
            "('aiwallet apps add NAME'), or connect through POST /wallet/v1/connect",
        )

    # -- admission ------------------------------------------------------------------------------
    async def _admit(self, call: Call) -> None:
        request, ep = call.request, call.endpoint
        ctx = await self.identify(request)
        if ctx is None:
            ctx = await self.keyless(call)
        call.ctx = ctx
        if ctx.app.revoked_at is not None:
            raise ProxyError(
                "consent_required", "the wallet's owner revoked this app's access; ask them again"
            )
        if self.state.paused:
            raise ProxyError(
                "wallet_paused", "the wallet is paused: all AI spending is stopped by its owner"
            )
        if ctx.app.paused:
            raise ProxyError("wallet_paused", "the wallet's owner paused this app")
        if ctx.grant is None or not ctx.grant.active_at(call.ts):
            raise ProxyError(
                "consent_required", "this app's grant has expired or was revoked; ask again"
            )
        ctype = request.headers.get("Content-Type", "")
        if not ctype.lower().startswith("application/json"):
            raise ProxyError(
                "unsupported_media_type",
                f"send the request body as JSON (Content-Type: application/json), not {ctype!r}",
                status=415,
            )
        if request.content_length is not None and request.content_length > self.max_body:
            raise _too_large(self.max_body)
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise _too_large(self.max_body) from None
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested too deep to parse
            raise ProxyError("invalid_request", "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ProxyError("invalid_request", "the request body must be a JSON object")
        call.body, call.raw, call.prompt_bytes = body, raw, len(raw)
        call.may_write_cache = ep.wire is WireFormat.ANTHROPIC and b"cache_control" in raw
        call.stream = body.get("stream") is True and ep.meter is not None
        route = self.state.router.resolve(body.get("model"), ep.wire)
        if not scope_allows(ctx.grant.scopes, route):
            raise ProxyError(
                "model_not_allowed",
                f"this app may not use {body.get('model')!r}; it may use: "
                f"{', '.join(ctx.grant.scopes)}",
                param="model",
            )
        call.route = route
        if ep.requires_max and not isinstance(body.get("max_tokens"), int):
            raise ProxyError("invalid_request", "max_tokens: Field required", param="max_tokens")
        for name in ep.max_fields:
            value = body.get(name)
            if isinstance(value, int) and value > MAX_OUTPUT_FIELD:
                # no model writes this much; its worst case would not fit a ledger integer
                raise ProxyError(
                    "invalid_request", f"{name}: at most {MAX_OUTPUT_FIELD}", param=name
                )
        app = ctx.app
        limits = Limits(app.rpm_limit, app.tpm_limit, app.concurrency_limit)
        if limits.any:
            tokens = estimate_tokens(call.prompt_bytes) + (self._requested_max(call) or 0)
            self.limiter.admit(app.id, limits, tokens)  # no await between check and take
            call.rl_tokens = tokens
        if ep.billable:
            await self._reserve(call)

    def _requested_max(self, call: Call) -> int | None:
        assert call.body is not None
        for name in call.endpoint.max_fields:
            value = call.body.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
        return None

    async def _reserve(self, call: Call) -> None:
        assert call.route is not None and call.ctx is not None and call.body is not None
        row, ep = call.route.row, call.endpoint
        prompt_ub = call.prompt_bytes  # a token is at least one byte: a true upper bound
        wanted = self._requested_max(call)
        if ep.max_fields:
            max_out = wanted if wanted is not None else (row.output_limit or DEFAULT_MAX_OUTPUT)
        else:
            max_out = 0
        cw = call.may_write_cache
        amount = worst_case_cost(prompt_ub, max_out, row, cache_writes=cw)
        try:
            call.reservation = await self._try_reserve(call, amount)
            return
        except BudgetRefused as refused:
            if not ep.max_fields:
                raise _exceeded(refused) from None
            remaining = refused.remaining_nano
            states = await self.state.db(self._remaining, call.ctx.app.id)
            remaining = min([remaining, *states])
            affordable = min(
                max_out, max_output_tokens_affordable(remaining, prompt_ub, row, cache_writes=cw)
            )
            if affordable < MIN_OUTPUT_TOKENS:
                raise _exceeded(refused) from None
            self._clamp(call, affordable)
            amount = worst_case_cost(prompt_ub, affordable, row, cache_writes=cw)
            try:
                call.reservation = await self._try_reserve(call, amount)
            except BudgetRefused as again:
                raise _exceeded(again) from None

    def _remaining(self, app_id: int) -> list[int]:
        w, now = self.state.wallet, datetime.now(UTC)
        return [
            w.budgets.state(b, now, w.timezone).remaining_nano for b in w.budgets.applicable(app_id)
        ]

    async def _try_reserve(self, call: Call, amount: int) -> Reservation:
        assert call.ctx is not None and call.route is not None
        w, tz = self.state.wallet, self.state.timezone
        route = call.route
        priced = SpendEntry(
            route.provider.name, route.upstream_model, route.row.ref, None, "estimated"
        )
        return await self.state.write(
            lambda conn: w.budgets.reserve_in(
                conn,
                call.ctx.budget_ids if call.ctx else (),
                amount,
                at=call.ts,
                tz=tz,
                request_id=call.request_id,
                app_id=call.ctx.app.id if call.ctx else None,
                known=call.ctx.budgets if call.ctx else None,
                priced=priced,
            )
        )

    def _clamp(self, call: Call, tokens: int) -> None:
        assert call.body is not None and call.route is not None
        fields = call.endpoint.max_fields
        present = [f for f in fields if f in call.body]
        if present:
            for name in present:
                call.body[name] = tokens
        elif call.route.kind.id == "openai" or len(fields) == 1:
            call.body[fields[0]] = tokens
        else:
            call.body[fields[-1]] = tokens  # "max_tokens": what every compatible server takes
        call.clamped_to = tokens

    # -- forwarding -----------------------------------------------------------------------------
    async def _forward(self, call: Call) -> web.StreamResponse:
        from aiwallet.engine.relay import relay_stream, relay_whole

        assert call.route is not None and call.body is not None
        route = call.route
        injected = False
        if call.stream and call.endpoint.path == "/v1/chat/completions":
            opts = call.body.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage") is True):
                call.body["stream_options"] = {**(opts or {}), "include_usage": True}
                injected = True
        if (
            injected
            or call.clamped_to is not None
            or call.body.get("model") != route.upstream_model
        ):
            body = {**call.body, "model": route.upstream_model}
            payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        else:
            payload = call.raw  # nothing to change: the provider gets the client's own bytes
        try:
            key = await self.state.secret_for(route.provider.name, route.provider.secret_ref)
        except VaultError:
            raise ProxyError(
                "no_provider",
                "the wallet's secret store is locked, so it cannot reach the provider; its "
                "owner should restart the wallet and unlock it",
            ) from None
        if route.kind.needs_key and key is None:
            raise ProxyError(
                "no_provider",
                f"the wallet has no key for provider {route.provider.name!r}; its owner should "
                "add it again",
            )
        url = upstream_url(route.kind, route.provider.base_url, call.endpoint.path)
        headers = upstream_headers(route.kind, key, dict(call.request.headers))
        headers["x-aiwallet-request-id"] = call.request_id  # lets a provider's logs be matched
        try:
            up = await self.session.post(url, data=payload, headers=headers)
        except (TimeoutError, aiohttp.ServerTimeoutError):
            await self._release(call, 504, "upstream_timeout")
            raise ProxyError(
                "upstream_timeout", f"provider {route.provider.name!r} did not answer in time"
            ) from None
        except aiohttp.ClientError as exc:
            await self._release(call, 502, "upstream_unavailable")
            raise ProxyError(
                "upstream_unavailable",
                f"cannot reach provider {route.provider.name!r} ({type(exc).__name__}); "
                "try again later",
            ) from None
        call.ttfb_ms = call.elapsed_ms()
        async with up:
            if up.status != 200:
                return await self._upstream_error(call, up)
            if call.stream:
                return await relay_stream(self, call, up, injected)
            return await relay_whole(self, call, up)

    async def _upstream_error(self, call: Call, up: aiohttp.ClientResponse) -> web.StreamResponse:
        assert call.route is not None
        name = call.route.provider.name
        try:
            data = await up.read()
        except (aiohttp.ClientError, TimeoutError):
            data = b""
        err: ProxyError | None = None
        if up.status in (401, 403):
            err = ProxyError(
                "upstream_unavailable",
                f"provider {name!r} refused the wallet's key (HTTP {up.status}); the wallet's "
                "owner should check it with 'aiwallet providers test'",
            )
        elif up.status >= 500:
            err = ProxyError(
                "upstream_unavailable",
                f"provider {name!r} failed (HTTP {up.status}); try again later",
                status=503 if up.status in (503, 529) else 502,
                retry_after=_retry_after(up),
            )
        await self._release(
            call, err.status if err else up.status, err.code if err else "upstream_status"
        )
        if err is not None:
            raise err
        # 4xx about the request itself (400, 404, 413, 422, 429): the provider's own words.
        headers = self.headers(call, cost=0)
        for h in ("Retry-After", "retry-after-ms", "x-request-id", "request-id"):
            if h in up.headers:
                headers[h] = up.headers[h]
        return web.Response(
            status=up.status, body=data, headers=headers, content_type="application/json"
        )

    # -- settlement -----------------------------------------------------------------------------
    def usage_or_estimate(
        self, call: Call, usage: Usage | None, output_bytes: int, problem: str | None
    ) -> tuple[Usage, str | None]:
        if usage is not None:
            return usage, None
        return estimated_usage(call.prompt_bytes, output_bytes), problem or "no usage reported"

    async def settle(
        self,
        call: Call,
        usage: Usage,
        status: int,
        note: str | None = None,
        error_code: str | None = None,
    ) -> tuple[int, int | None]:
        """Record the real cost; returns (cost, budget remaining). Durable when it returns.

        ``error_code`` marks a request that was billed but failed on the way (a stream the
        provider cut off: the client saw HTTP 200 and then a broken stream)."""
        assert call.route is not None
        route, res = call.route, call.reservation
        cost = cost_of(usage, route.row)
        call.used_tokens = usage.total_prompt_tokens + usage.output_tokens
        record = self._record(call, status, usage=usage, cost=cost.nano, error_code=error_code)
        if res is None or call.settled:
            return cost.nano, None
        spend = SpendEntry(
            provider=route.provider.name,
            model=route.upstream_model,
            price_row_ref=route.row.ref,
            price_row=route.row.to_json(),
            token_source=usage.source.value,
            note=note,
        )
        w = self.state.wallet
        await self.state.write(
            lambda conn: w.budgets.settle_in(conn, res.id, cost.nano, spend, record)
        )
        call.settled = True
        self._logged(record)
        if error_code is not None:
            self.events.emit(
                "upstream.failed",
                {"provider": route.provider.name, "status": status, "code": error_code},
            )
        remaining = None
        if res.remaining_nano is not None:
            remaining = res.remaining_nano + res.amount_nano - cost.nano
        return cost.nano, remaining

    async def _release(self, call: Call, status: int, code: str) -> None:
        if call.reservation is None or call.settled:
            return
        record = self._record(call, status, error_code=code)
        res_id, budgets = call.reservation.id, self.state.wallet.budgets
        await self.state.write(lambda conn: budgets.release_in(conn, res_id, record))
        call.settled = True
        self._logged(record)
        if code in ("upstream_timeout", "upstream_unavailable") and call.route is not None:
            self.events.emit(
                "upstream.failed",
                {"provider": call.route.provider.name, "status": status, "code": code},
            )

    def _record(
        self,
        call: Call,
        status: int,
        *,
        usage: Usage | None = None,
        cost: int = 0,
        error_code: str | None = None,
    ) -> RequestRecord:
        u = usage or Usage()
        route = call.route
        return RequestRecord(
            id=call.request_id,
            ts=call.ts,
            endpoint=call.endpoint.path,
            status=status,
            app_id=call.ctx.app.id if call.ctx else None,
            model=route.upstream_model if route else None,
            provider=route.provider.name if route else None,
            input_tokens=u.input_tokens,
            cache_read_tokens=u.cache_read_tokens,
            cache_write_tokens=u.cache_write_tokens + u.cache_write_1h_tokens,
            output_tokens=u.output_tokens,
            reasoning_tokens=u.reasoning_tokens,
            cost_nano=cost,
            token_source=u.source.value if usage else None,
            latency_ms=call.elapsed_ms(),
            ttfb_ms=call.ttfb_ms,
            error_code=error_code,
            stream=call.stream,
        )

    def _record_refusal(self, call: Call, err: ProxyError) -> None:
        """Refusals of a known app go to the request log (in the background; they cost 0)."""
        if call.reservation is not None and not call.settled:
            self.spawn(self._release(call, err.status, err.code))
            return
        if call.ctx is None or call.settled:
            return
        record = self._record(call, err.status, error_code=err.code)
        requests = self.state.wallet.requests
        self.spawn(self._write_refusal(record, lambda conn: requests.record_in(conn, record)))

    async def _write_refusal(self, record: RequestRecord, fn: Any) -> None:
        await self.state.write(fn)
        self._logged(record)

    def _logged(self, record: RequestRecord) -> None:
        """Tell subscribers (the desktop app) that a request row is committed."""
        self.events.emit(
            "request.logged",
            {
                "id": record.id,
                "app_id": record.app_id,
                "status": record.status,
                "cost_nano": record.cost_nano,
                "error_code": record.error_code,
            },
        )

    def _after_cancel(self, call: Call) -> None:
        """The client went away: settle what is known, never lose the spend."""
        if call.reservation is None or call.settled:
            return
        if call.ttfb_ms is None and not call.stream:
            self.spawn(self._release(call, 499, "client_closed"))
            return
        usage = estimated_usage(call.prompt_bytes, 0)
        self.spawn(self.settle(call, usage, 499, note="client closed the connection"))

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    # -- responses ------------------------------------------------------------------------------
    def headers(
        self, call: Call, *, cost: int | None, remaining: int | None = None
    ) -> dict[str, str]:
        h = {"x-aiwallet-request-id": call.request_id}
        if cost is not None:
            h["x-aiwallet-cost-usd"] = usd_string(cost)
        if remaining is not None:
            h["x-aiwallet-budget-remaining-usd"] = usd_string(max(remaining, 0))
        if call.clamped_to is not None:
            h["x-aiwallet-max-tokens-clamped"] = str(call.clamped_to)
        return h


def _too_large(limit: int) -> ProxyError:
    return ProxyError(
        "payload_too_large",
        f"the request body is larger than the wallet's limit of {limit // (1024 * 1024)} MiB",
    )


def _exceeded(refused: BudgetRefused) -> ProxyError:
    retry = None
    if refused.reset_at is not None:
        retry = max(1, int((refused.reset_at - datetime.now(UTC)).total_seconds()))
    return ProxyError("budget_exceeded", str(refused), retry_after=retry)


def _retry_after(up: aiohttp.ClientResponse) -> int | None:
    value = up.headers.get("Retry-After")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
