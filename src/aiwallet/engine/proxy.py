"""The policy pipeline for one proxied request.

authenticate → policy (paused, revoked, expired, model allowed) → parse → price → reserve the
worst case (clamping max output to what the budget can pay) → forward → relay (metered) →
respond. Every refusal is an error in the caller's wire format. Whatever ends a request, its
:class:`~aiwallet.engine.owner.RequestOwner` alone settles, releases and records it. Whatever
of the provider's answer is relayed (body, stream events, copied headers) first passes the
engine's scrubber (engine/scrub.py): no secret of the wallet reaches an app.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from aiwallet.domain.appkeys import looks_like_app_key
from aiwallet.domain.bounds import BOUNDS, Bound, flag
from aiwallet.domain.cost import affordable_output, bound_cost
from aiwallet.domain.errors import InvalidInput, NotFound, VaultError
from aiwallet.domain.local_servers import is_budgeted
from aiwallet.domain.money import format_usd, usd_string
from aiwallet.domain.strictjson import parse_object
from aiwallet.engine.attempts import Resilience, Sender
from aiwallet.engine.call import Call
from aiwallet.engine.endpoints import Endpoint
from aiwallet.engine.errors import ProxyError, error_response
from aiwallet.engine.estimate import estimate_tokens, estimated_usage
from aiwallet.engine.events import EventBus
from aiwallet.engine.owner import Ending, RequestOwner
from aiwallet.engine.ratelimit import Limits, RateLimiter
from aiwallet.engine.relay import WRITE_ERRORS, Ended, UpstreamCut, read_whole, relay_stream
from aiwallet.engine.routing import Route, scope_allows
from aiwallet.engine.state import AppContext, EngineState, KeyUnavailable
from aiwallet.engine.templating import FIELD as TEMPLATE_FIELD
from aiwallet.engine.templating import apply_template, template_ref
from aiwallet.engine.tokens import PREFIX as SESSION_PREFIX
from aiwallet.engine.tokens import SessionTokens
from aiwallet.engine.translate import start as start_translation
from aiwallet.engine.translate import translatable
from aiwallet.store.budgets import WALLET as WALLET_SCOPE
from aiwallet.store.budgets import BudgetRefused, InFlight
from aiwallet.store.providers import ProviderRecord
from aiwallet.store.records import Reservation, SpendEntry
from aiwallet.upstreams.client import client_headers, upstream_headers, upstream_url

if TYPE_CHECKING:
    from aiwallet.engine.consent import ConsentManager
    from aiwallet.engine.payflow import PaymentFlow

log = logging.getLogger(__name__)


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
    def __init__(
        self,
        state: EngineState,
        session: aiohttp.ClientSession,
        max_body: int,
        resilience: Resilience | None = None,
    ) -> None:
        self.state = state
        self.session = session
        self.sender = Sender(session, state.health, resilience or Resilience())
        self.max_body = max_body
        self.background: set[asyncio.Future[Any]] = set()  # writes and tasks in flight
        self.limiter = RateLimiter()
        self.tokens = SessionTokens()
        self.consent: ConsentManager | None = None
        self.payflow: PaymentFlow | None = None
        self.events = EventBus()

    # -- entry --------------------------------------------------------------------------------
    async def handle(self, request: web.Request, endpoint: Endpoint) -> web.StreamResponse:
        call = Call(request, endpoint)
        owner = RequestOwner(call, self.state, self.events, self.limiter, self.background)
        try:
            await self._admit(call)
            return await self._forward(call, owner)
        except ProxyError as err:
            ending = Ending(err.status, err.code)
            if call.reservation is None:
                owner.end_soon(ending)  # costs nothing: logged in the background
            else:
                await owner.end(ending)  # the budget is free again before the client hears
            return error_response(call.api, err, call.request_id)
        except asyncio.CancelledError:
            owner.end_soon(self._client_left(call))
            raise
        except Exception:
            log.exception("unexpected error in %s (%s)", call.endpoint.path, call.request_id)
            await owner.end(Ending(500, "internal_error"))
            failed = ProxyError("internal_error", "the wallet failed on this request; see its log")
            return error_response(call.api, failed, call.request_id)
        finally:
            if not owner.ended:  # every path above ends it; this is the net under them
                log.error("request %s ended without an outcome", call.request_id)
                owner.end_soon(Ending(500, "internal_error"))

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
            ctx = await self.state.app_for_key(key)
            if ctx is None:
                raise ProxyError(
                    "invalid_app_key",
                    "this wallet never issued the app key this program sent (it may belong to "
                    "another wallet, or was deleted); ask the wallet's owner for a key",
                )
            return ctx
        return None  # no key, or a key that is not the wallet's (sk-..., DUMMY_KEY): keyless

    async def keyless(self, call: Call) -> AppContext:
        """A caller with no usable key: ask the user (see consent.py) or refuse. The body is
        read, routed and bounded first (an invalid one is refused before anyone is asked), so
        the prompt shows the held request's model and worst case; nothing is reserved while
        it waits."""
        if self.consent is not None:  # nobody to ask: refused before the body is read
            purpose = _declared_purpose(call.request)
            await self._read_body(call)
            self._resolve(call)
            self._bound(call)
            ctx = await self.consent.admit_keyless(
                call.request, held=self._held(call), purpose=purpose
            )
            if ctx is not None:
                return ctx
        what = (
            "the key this program sent is not a wallet app key (those start with aw_app_)"
            if call.foreign_key
            else "this program sent no wallet app key"
        )
        raise ProxyError(
            "consent_required",
            f"{what}; ask the wallet's owner for one ('aiwallet apps add NAME'), or connect "
            "through POST /wallet/v1/connect",
        )

    def _held(self, call: Call) -> dict[str, Any]:
        """What a keyless prompt shows of the request it holds: the model it will run, its
        worst case (exact USD: the amount a reservation would hold) and output bound."""
        assert call.route is not None and call.bound is not None
        worst = bound_cost(call.bound, call.route.row) if call.endpoint.billable else 0
        return {
            "model": call.route.upstream_model,
            "worst_case_usd": usd_string(worst),
            "max_output_tokens": call.bound.output_tokens,
            "request_id": call.request_id,
        }

    # -- admission ------------------------------------------------------------------------------
    async def _admit(self, call: Call) -> None:
        request, ep = call.request, call.endpoint
        ctx = await self.identify(request)
        if ctx is None:
            call.foreign_key = app_key_of(request) is not None
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
        if call.body is None:  # a keyless call was read before it was held
            await self._read_body(call)
            self._resolve(call)
        assert call.body is not None and call.route is not None
        # a route never widens a grant: each target must be allowed on its own
        allowed = [r for r in call.candidates if scope_allows(ctx.grant.scopes, r)]
        if allowed and allowed != call.candidates:
            call.candidates = allowed
            call.route, call.bound = allowed[0], None
        if not allowed:
            raise ProxyError(
                "model_not_allowed",
                f"this app may not use {call.body.get('model')!r}; it may use: "
                f"{', '.join(ctx.grant.scopes)}",
                param="model",
            )
        if call.bound is None:
            self._bound(call)
        assert call.bound is not None
        app = ctx.app
        limits = Limits(app.rpm_limit, app.tpm_limit, app.concurrency_limit)
        if limits.any:
            tokens = call.bound.total_tokens  # the same worst case as the reservation
            self.limiter.admit(app.id, limits, tokens)  # no await between check and take
            call.rl_tokens = tokens
        if ep.billable:
            await self._ask_if_expensive(call)  # before reserving: nothing held while asked
            await self._reserve(call)

    async def _read_body(self, call: Call) -> None:
        """Read and strictly parse the JSON body, once: what is priced is what will run."""
        request, ep = call.request, call.endpoint
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
            body = parse_object(raw)
            call.stream = flag(body, "stream") and ep.meter is not None
        except InvalidInput as exc:
            raise ProxyError("invalid_request", str(exc), param=exc.param) from None
        if (ref := template_ref(body)) is not None:
            name, version, variables = ref
            try:
                template = await self.state.db(self.state.port.templates.get, name, version)
            except NotFound as exc:
                raise ProxyError("invalid_request", str(exc), param=TEMPLATE_FIELD) from None
            apply_template(body, ep.path, template, variables)
            raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            call.rewrite = True  # what goes upstream is the rendered request
        call.body, call.raw, call.prompt_bytes = body, raw, len(raw)
        if "models" in body:  # OpenRouter-style fallbacks: a model the grant did not price
            raise ProxyError(
                "invalid_request",
                "the wallet serves one model per request: name it in 'model' (the 'models' "
                "list of fallbacks is not forwarded)",
                param="models",
            )

    def _resolve(self, call: Call) -> None:
        assert call.body is not None
        path = call.endpoint.path
        chain = self.state.router.chain(
            call.body.get("model"), call.endpoint.wire, translate=translatable(path)
        )
        call.route, call.candidates = chain[0], chain
        if any(r.translate_from != chain[0].translate_from for r in chain[1:]):
            # a fallback of the other wire format starts again from this (only then copied)
            call.client_endpoint, call.client_body = call.endpoint, copy.deepcopy(call.body)
        if call.route.translate_from is not None:  # from here on, the provider's request
            start_translation(call)

    def _bound(self, call: Call) -> None:
        """The request's worst case (and the caps set in the forwarded body for it)."""
        assert call.body is not None and call.route is not None
        bound_of = BOUNDS[call.endpoint.path]
        try:
            call.bound = bound_of(call.body, call.raw, call.route.row)
            self._apply_caps(call)
            # the targets of the same wire format share this body; another format's are
            # bounded when (if) they are tried (_switch_wire)
            same = call.route.translate_from
            bounds: list[Bound | None] = [call.bound]
            bounds += [
                bound_of(call.body, call.raw, r.row) if r.translate_from == same else None
                for r in call.candidates[1:]
            ]
            call.bounds = bounds
        except InvalidInput as exc:
            raise ProxyError("invalid_request", str(exc), param=exc.param) from None

    def _apply_caps(self, call: Call) -> None:
        """Set the fields the bound needs in the forwarded body (a cap on server-tool uses,
        a max-output field where neither the request nor the catalog bounds the output)."""
        assert call.body is not None and call.bound is not None
        for path, value in call.bound.sets.items():
            *parents, leaf = path.split(".")
            target: Any = call.body
            for part in parents:
                target = target[int(part)] if isinstance(target, list) else target[part]
            target[leaf] = value
            call.capped[path] = value
            call.rewrite = True

    async def _ask_if_expensive(self, call: Call) -> None:
        """Hold a request whose worst case is over the app's ask-before threshold (else the
        wallet's) until the user lets it through, once; refuse it if they do not."""
        assert call.route is not None and call.ctx is not None and call.bound is not None
        app = call.ctx.app
        own = app.ask_over_nano
        threshold = own if own is not None else self.state.ask_over_nano
        if threshold is None:
            return
        worst = (
            self._worst(call)[0]
            if len(call.bounds) == len(call.candidates) and call.bounds
            else bound_cost(call.bound, call.route.row)
        )
        if worst <= threshold:
            return
        whose = "this app's" if own is not None else "the wallet's"
        held = {
            "app": app.name,
            "model": call.route.upstream_model,
            "worst_case_usd": usd_string(worst),
            "max_output_tokens": call.bound.output_tokens,
            "threshold_usd": usd_string(threshold),
            "threshold_of": "app" if own is not None else "wallet",
            "request_id": call.request_id,
        }
        over = (
            f"its worst case, {format_usd(worst, places=None)}, is over {whose} "
            f"ask-before threshold of {format_usd(threshold, places=None)}"
        )
        if self.consent is None:
            raise ProxyError(
                "expensive_request_denied", f"{over}, and nobody is there to approve it"
            )
        if not await self.consent.ask_expensive(call.request, held):
            raise ProxyError(
                "expensive_request_denied",
                f"the wallet's owner did not approve this request: {over}; lower max_tokens, "
                "or ask them to raise the threshold ('aiwallet apps ask-over NAME AMOUNT')",
            )

    def _worst(self, call: Call) -> tuple[int, int]:
        """The largest worst case among the routes that may serve ``call`` (any of them may
        be the one billed), and which route has it."""
        costs = [
            bound_cost(b, r.row) if b is not None else -1
            for r, b in zip(call.candidates, call.bounds, strict=True)
        ]
        i = max(range(len(costs)), key=costs.__getitem__)
        return costs[i], i

    async def _reserve(self, call: Call) -> None:
        assert call.route is not None and call.ctx is not None and call.bound is not None
        if len(call.bounds) != len(call.candidates):
            call.bounds = [call.bound]
            call.candidates = call.candidates[:1] or [call.route]
        amount, worst_i = self._worst(call)
        row, ep = call.candidates[worst_i].row, call.endpoint
        bound = call.bounds[worst_i]
        assert bound is not None
        try:
            call.reservation = await self._try_reserve(call, amount)
            return
        except BudgetRefused as refused:
            if call.ctx.app.downgrade and await self._downgrade(call):
                return
            if not ep.max_fields:
                raise await self._exceeded(call, refused) from None
            remaining = refused.remaining_nano
            states = self.state.remaining(call.ctx.budgets, call.ts)
            if states is None:
                states = await self.state.db(self._remaining, call.ctx.app.id)
            remaining = min([remaining, *states])
            affordable = min(bound.output_tokens, affordable_output(remaining, bound, row))
            if affordable < self.state.min_clamped_output:
                raise await self._exceeded(call, refused) from None
            self._clamp(call, affordable)
            call.bounds = [
                replace(b, output_tokens=min(b.output_tokens, affordable)) if b else None
                for b in call.bounds
            ]
            call.bound = call.bounds[call.candidates.index(call.route)]
            assert call.bound is not None
            try:
                call.reservation = await self._try_reserve(call, self._worst(call)[0])
            except BudgetRefused as again:
                raise await self._exceeded(call, again) from None

    async def _downgrade(self, call: Call) -> bool:
        """The budget cannot pay for the model asked: serve it with the next cheaper model
        of the user's route (the route it asked for, or one that lists the model), whose
        worst case fits; False when none does. Grants still apply to that model."""
        assert call.route is not None and call.ctx is not None and call.body is not None
        asked, router = call.route, self.state.router
        chains = (
            [asked.via]
            if asked.via
            else [name for name, targets in router.routes.items() if asked.qualified in targets]
        )
        worst_asked = self._worst(call)[0]
        bound_of = BOUNDS[call.endpoint.path]
        for name in chains:
            if name is None:
                continue
            targets = list(router.routes[name])
            start = targets.index(asked.qualified) + 1 if asked.qualified in targets else 1
            for target in targets[start:]:
                try:
                    r = router.resolve(target, call.endpoint.wire)
                except ProxyError:
                    continue
                if not scope_allows(call.ctx.grant.scopes if call.ctx.grant else (), r):
                    continue
                try:
                    b = bound_of(call.body, call.raw, r.row)
                except InvalidInput:
                    continue
                cost = bound_cost(b, r.row)
                if cost >= worst_asked:
                    continue  # not cheaper
                try:
                    call.reservation = await self._try_reserve(call, cost)
                except BudgetRefused:
                    continue
                call.downgraded_from = asked.qualified
                call.route, call.bound = replace(r, via=name), b
                call.candidates, call.bounds = [call.route], [b]
                return True
        return False

    async def _exceeded(self, call: Call, refused: BudgetRefused) -> ProxyError:
        """``budget_exceeded``, saying how much of the budget requests in flight hold (one
        cheap read, on this refusal path only)."""
        budgets, live = self.state.budgets, self.state.live
        if live is not None:  # the grants not yet recorded are known here only
            return _exceeded(
                refused.explained(
                    InFlight(*live.in_flight(refused.budget, call.ts, self.state.timezone))
                )
            )
        try:
            held = await self.state.db(
                budgets.in_flight, refused.budget, call.ts, self.state.timezone
            )
        except Exception:  # the refusal stands without the detail
            log.exception("could not read the reservations in flight (%s)", call.request_id)
            return _exceeded(refused)
        return _exceeded(refused.explained(held))

    def _remaining(self, app_id: int) -> list[int]:
        budgets, now, tz = self.state.budgets, datetime.now(UTC), self.state.timezone
        return [budgets.state(b, now, tz).remaining_nano for b in budgets.applicable(app_id)]

    async def _try_reserve(self, call: Call, amount: int) -> Reservation:
        assert call.ctx is not None and call.route is not None
        route = call.route
        priced = SpendEntry(
            route.provider.name, route.upstream_model, route.row.ref, None, "estimated"
        )
        held = call.ctx.budgets if call.ctx else ()
        if route.kind.local and not is_budgeted(route.provider.options):
            held = ()  # a server on this machine: metered, outside every budget
        if route.provider.prepaid:
            # paid for at the top-up, which the wallet-wide budget counted: the app's own
            # budget counts what it uses of the credit
            held = tuple(b for b in held if b.scope != WALLET_SCOPE)
        return await self.state.reserve(
            held,
            amount,
            at=call.ts,
            request_id=call.request_id,
            app_id=call.ctx.app.id if call.ctx else None,
            priced=priced,
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
    async def _forward(self, call: Call, owner: RequestOwner) -> web.StreamResponse:
        """Try the routes in order: a failure of the provider before anything reached the
        app (it could not be reached, failed, timed out, is paused by its breaker, or has no
        usable key) goes on to the next; anything else is the answer."""
        candidates = call.candidates or ([call.route] if call.route else [])
        bounds = call.bounds if len(call.bounds) == len(candidates) else []
        prepared: object = candidates[0].translate_from if candidates else None
        for i, route in enumerate(candidates):
            last = i == len(candidates) - 1
            call.fallback_left = not last
            if route.translate_from != prepared:
                prepared = _UNPREPARED  # until the switch is made
                try:
                    await self._switch_wire(call, route)  # the other wire format's request
                except ProxyError as err:  # untranslatable, or more than the budget has left
                    if last:
                        raise
                    call.fallbacks.append(f"{route.qualified}: {err.code}")
                    continue
                prepared = route.translate_from
            else:
                call.route = route
                if bounds and bounds[i] is not None:
                    call.bound = bounds[i]
            try:
                return await self._forward_one(call, owner)
            except ProxyError as err:
                if last or owner.ended or call.payment is not None or err.code not in FALLBACK:
                    raise
                call.fallbacks.append(f"{route.qualified}: {err.code}")
                log.info("%s: %s failed (%s); trying %s", call.request_id, route.qualified,
                         err.code, candidates[i + 1].qualified)  # fmt: skip
        raise ProxyError("no_provider", "no provider could serve this request")

    async def _switch_wire(self, call: Call, route: Route) -> None:
        """Make ``call`` the request of ``route``, a fallback of the other wire format than
        the route before it: the client's request translated for it (or as the client sent
        it), bounded and capped like the first, and the reservation grown to its worst case
        if that is larger (all or nothing: else it is not tried, ``budget_exceeded``)."""
        assert call.client_endpoint is not None and call.client_body is not None
        call.endpoint, call.body = call.client_endpoint, copy.deepcopy(call.client_body)
        call.translation, call.route, call.rewrite = None, route, True
        if route.translate_from is not None:
            start_translation(call)
        else:
            call.raw = json.dumps(call.body, separators=(",", ":"), ensure_ascii=False).encode()
            call.prompt_bytes = len(call.raw)
        assert call.body is not None
        try:
            call.bound = BOUNDS[call.endpoint.path](call.body, call.raw, route.row)
        except InvalidInput as exc:
            raise ProxyError("invalid_request", str(exc), param=exc.param) from None
        self._apply_caps(call)
        if call.clamped_to is not None:
            self._clamp(call, call.clamped_to)
            call.bound = replace(call.bound, output_tokens=min(call.bound.output_tokens,
                                                               call.clamped_to))  # fmt: skip
        res, cost = call.reservation, bound_cost(call.bound, route.row)
        if res is not None and cost > res.amount_nano:
            try:
                call.reservation = await self.state.grow(res, cost - res.amount_nano)
            except BudgetRefused as refused:
                raise _exceeded(refused) from None

    async def _forward_one(self, call: Call, owner: RequestOwner) -> web.StreamResponse:
        assert call.route is not None and call.body is not None
        route = call.route
        injected = False
        if call.stream and call.endpoint.path == "/v1/chat/completions":
            opts = call.body.get("stream_options")
            if not (isinstance(opts, dict) and opts.get("include_usage") is True):
                call.body["stream_options"] = {**(opts or {}), "include_usage": True}
                injected = True
        payload = self._payload(call, rewrite=injected or call.rewrite)
        try:
            key = await self.state.key_for(route.provider, call.ctx.app.id if call.ctx else None)
        except KeyUnavailable:
            raise ProxyError(
                "provider_key_unavailable",
                f"the wallet could not make this app's own capped key at provider "
                f"{route.provider.name!r} (its second budget layer), so the request was not "
                "sent; try again in a minute, or ask the wallet's owner to check the "
                "provider's management key ('aiwallet providers subkeys')",
            ) from None
        except VaultError:
            raise ProxyError(
                "no_provider",
                "the wallet's secret store is locked, so it cannot reach the provider; its "
                "owner should restart the wallet and unlock it",
            ) from None
        gateway = await self._gateway_token(route.provider)
        if route.kind.needs_key and key is None and gateway is None:  # a gateway may hold it
            raise ProxyError(
                "no_provider",
                f"the wallet has no key for provider {route.provider.name!r}; its owner should "
                "add it again",
            )
        url = upstream_url(
            route.kind, route.provider.base_url, call.endpoint.path, call.request.query_string
        )
        sent = dict(call.request.headers)
        if call.translation is not None:
            sent = call.translation.headers(sent)
        headers = upstream_headers(route.kind, key, sent, gateway)
        headers["x-aiwallet-request-id"] = call.request_id  # lets a provider's logs be matched
        call.sent = True
        up = await self._send(call, url, payload, headers)
        if up.status == 402 and route.kind.x402:
            up = await self._paid(call, up, url, payload, headers)
        call.ttfb_ms = call.elapsed_ms()
        async with up:
            encoding = up.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):  # bytes the scrubber could not read
                raise ProxyError(
                    "upstream_unavailable",
                    f"provider {route.provider.name!r} answered in an encoding the wallet did "
                    f"not ask for ({encoding[:32]!r}); try again later",
                )
            if up.status != 200:
                return await self._upstream_error(call, owner, up)
            if call.stream:
                return await self._stream(call, owner, up, injected)
            return await self._whole(call, owner, up)

    async def _gateway_token(self, provider: ProviderRecord) -> str | None:
        """The token of the gateway in front of ``provider`` (None: an open one, or none)."""
        try:
            return await self.state.gateway_token_for(provider)
        except VaultError:
            raise ProxyError(
                "no_provider",
                "the wallet's secret store is locked, so it cannot reach the provider's "
                "gateway; its owner should restart the wallet and unlock it",
            ) from None

    async def _send(
        self,
        call: Call,
        url: str,
        payload: bytes,
        headers: dict[str, str],
        *,
        retry: bool = True,
    ) -> aiohttp.ClientResponse:
        """The route's provider's last answer, its breaker asked first and retryable outcomes
        tried again while nothing was relayed (engine/attempts.py); ``retry=False``: exactly
        one attempt (a paid x402 resend)."""
        return await self.sender.send(call, url, payload, headers, retry=retry)

    async def _paid(
        self,
        call: Call,
        up: aiohttp.ClientResponse,
        url: str,
        payload: bytes,
        headers: dict[str, str],
    ) -> aiohttp.ClientResponse:
        """An x402 router asked for payment: pay within the budgets and the user's consent,
        and send the request again with it (engine/payflow.py); the app never sees the 402."""
        assert call.route is not None
        name = call.route.provider.name
        if call.route.provider.prepaid:
            up.release()
            raise ProxyError(
                "payment_failed",
                f"the prepaid credit at provider {name!r} cannot pay for this request; the "
                f"wallet's owner can top it up ('aiwallet wallet topup {name} AMOUNT')",
            )
        if self.payflow is None:
            up.release()
            raise ProxyError("no_solana_wallet", f"provider {name!r} asks for an x402 payment")
        paid = await self.payflow.pay(
            call,
            up,
            lambda extra: self._send(call, url, payload, {**headers, **extra}, retry=False),
        )
        if paid is None:
            raise ProxyError(
                "payment_failed",
                f"provider {name!r} answered 402 (payment required) without x402 payment "
                "requirements; nothing was paid",
            )
        return paid

    def _payload(self, call: Call, *, rewrite: bool) -> bytes:
        """What goes upstream: the client's own bytes, unless policy changed the body."""
        assert call.body is not None and call.route is not None
        model = call.route.upstream_model
        if not (rewrite or call.clamped_to is not None or call.body.get("model") != model):
            return call.raw
        try:
            text = json.dumps({**call.body, "model": model}, separators=(",", ":"))
            return text.encode()
        except RecursionError:
            raise ProxyError(
                "invalid_request", "the request body is nested too deeply to forward"
            ) from None

    async def _whole(
        self, call: Call, owner: RequestOwner, up: aiohttp.ClientResponse
    ) -> web.Response:
        """A non-streamed answer: read it, price it, settle (durable), then send it as is."""
        try:
            answer = await read_whole(call.endpoint, up)
        except UpstreamCut:
            guess = estimated_usage(call.prompt_bytes, 0)
            await owner.end(
                Ending(502, "upstream_unavailable", guess, note="upstream answer was cut")
            )
            raise ProxyError(
                "upstream_unavailable", "the provider's answer was cut off; try again"
            ) from None
        headers = self._relayed_headers(call, up, "application/json")
        body = self._scrub(call, answer.data, "its answer")
        if not call.endpoint.billable:
            await owner.end(Ending(up.status, note=self._note(call, None)))
            headers.update(self.headers(call, cost=0))
            return web.Response(status=up.status, body=body, headers=headers)
        note = None
        usage = answer.usage
        if usage is None:
            usage = estimated_usage(call.prompt_bytes, estimate_tokens(answer.output_bytes))
            note = answer.problem or "no usage reported"
        done = await owner.end(Ending(up.status, None, usage, self._note(call, note)))
        headers.update(self.headers(call, cost=done.cost_nano, remaining=done.remaining_nano))
        if call.translation is not None:  # billed as the provider's answer: then translated
            translated = call.translation.answer(body)
            body = self._scrub(call, translated, "its translated answer")
        return web.Response(status=up.status, body=body, headers=headers)

    async def _stream(
        self, call: Call, owner: RequestOwner, up: aiohttp.ClientResponse, injected: bool
    ) -> web.StreamResponse:
        """Relay SSE event by event; the cost is settled before the final event goes out."""
        assert call.endpoint.meter is not None and call.reservation is not None
        meter = call.meter = call.endpoint.meter(injected)
        resp = web.StreamResponse(
            status=200, headers=self._relayed_headers(call, up, "text/event-stream")
        )
        resp.headers.update(self.headers(call, cost=call.reservation.amount_nano))
        resp.headers["Cache-Control"] = "no-cache"
        resp.headers["x-aiwallet-cost-is"] = "reserved-maximum"
        try:
            await resp.prepare(call.request)
        except WRITE_ERRORS:
            ended = Ended.CLIENT_LEFT
        else:
            bound = call.bound.total_output_tokens if call.bound else None
            ended = await relay_stream(
                resp,
                up,
                meter,
                lambda: owner.end(self._stream_ending(call, Ended.COMPLETE)),
                bound,
                lambda raw: self._relayed_event(call, raw),
            )
        await owner.end(self._stream_ending(call, ended))
        if ended is Ended.COMPLETE:
            with contextlib.suppress(*WRITE_ERRORS):
                await resp.write_eof()
        elif call.request.transport is not None:
            # Break off too, so the client sees an incomplete stream rather than a clean end
            # it would take for a whole answer (or, if it left, so nothing more is sent).
            call.request.transport.abort()
        return resp

    def _relayed_event(self, call: Call, raw: bytes) -> bytes:
        """A stream event as it reaches the client: scrubbed, and in the client's format
        (scrubbed again after translating: the re-encoded JSON is new bytes)."""
        out = self._scrub(call, raw, "a stream event")
        if call.translation is None:
            return out
        usage = call.meter.usage if call.meter is not None else None
        return self._scrub(call, call.translation.event(out, usage), "a stream event")

    def _stream_ending(self, call: Call, ended: Ended) -> Ending:
        """How a stream that ``ended`` so is billed (and noted: a secret the provider echoed
        is said in the ledger row's note)."""
        ending = self._stream_outcome(call, ended)
        return replace(ending, note=self._note(call, ending.note))

    def _stream_outcome(self, call: Call, ended: Ended) -> Ending:
        """How a stream that ``ended`` so is billed: the provider's usage when the stream
        finished with it; else what is known (exact input where the stream said it, output at
        least what was relayed), marked ``estimated``."""
        meter = call.meter
        assert meter is not None
        usage = meter.usage
        complete = ended is Ended.COMPLETE and not meter.broken
        if complete and usage is not None and meter.usage_problem is None:
            return Ending(200, None, usage)
        guess = estimated_usage(
            call.prompt_bytes, meter.relayed_output_tokens, usage, input_known=meter.input_known
        )
        if ended is Ended.CLIENT_LEFT:
            return Ending(499, "client_closed", guess, note="client closed the connection")
        if ended is Ended.OVER_BOUND:
            note = "the provider streamed more output than the request allowed; relaying stopped"
            return Ending(200, "over_reserved", guess, note=note, over_bound=True)
        if ended is Ended.UPSTREAM_CUT or meter.broken:
            # the client saw 200 and then a broken stream: logged as the provider failing
            note = "stream ended before the provider reported usage"
            return Ending(200, "upstream_unavailable", guess, note=note)
        return Ending(200, None, guess, note=meter.usage_problem or "no usage reported")

    def _client_left(self, call: Call) -> Ending:
        """The client went away (its handler was cancelled): bill what is known."""
        if call.meter is not None:
            return self._stream_ending(call, Ended.CLIENT_LEFT)
        if call.reservation is None or not call.sent:
            return Ending(499, "client_closed")
        usage = estimated_usage(call.prompt_bytes, 0)
        return Ending(499, "client_closed", usage, note="client closed before the answer came")

    async def _upstream_error(
        self, call: Call, owner: RequestOwner, up: aiohttp.ClientResponse
    ) -> web.StreamResponse:
        assert call.route is not None
        name = call.route.provider.name
        try:
            data = await up.read()
        except (aiohttp.ClientError, ConnectionError, TimeoutError):
            data = b""
        if up.status == 403 and route_limit_reached(call, data):
            raise ProxyError(
                "provider_limit_reached",
                f"provider {name!r} refused the request: this app's own capped key there "
                "reached its limit for the period (the wallet's second budget layer); the "
                "wallet's owner can raise the app's budget",
            )
        if up.status == 429 and call.fallback_left:  # rate limited even after its retries
            raise ProxyError(
                "rate_limited",
                f"provider {name!r} is rate limiting the wallet (HTTP 429)",
                retry_after=_retry_after(up),
            )
        if up.status in (401, 403):
            raise ProxyError(
                "upstream_unavailable",
                f"provider {name!r} refused the wallet's key (HTTP {up.status}); the wallet's "
                "owner should check it with 'aiwallet providers test'",
            )
        if up.status >= 500:
            raise ProxyError(
                "upstream_unavailable",
                f"provider {name!r} failed (HTTP {up.status}); try again later",
                status=503 if up.status in (503, 529) else 502,
                retry_after=_retry_after(up),
            )
        # 4xx about the request itself (400, 404, 413, 422, 429): the provider's own words,
        # less any secret of the wallet they echo (some echo the key, or the whole header).
        headers = self._relayed_headers(call, up, "application/json")
        data = self._scrub(call, data, "an error answer")
        if call.translation is not None:  # in the client's shape, the provider's words kept
            data = self._scrub(call, call.translation.error(up.status, data), "an error answer")
            headers["Content-Type"] = "application/json"
        await owner.end(Ending(up.status, "upstream_status", note=self._note(call, None)))
        headers.update(self.headers(call, cost=0))
        return web.Response(status=up.status, body=data, headers=headers)

    # -- scrubbing ------------------------------------------------------------------------------
    def _scrub(self, call: Call, data: bytes, where: str) -> bytes:
        """``data`` as it may reach the app: without any secret of the wallet."""
        out, labels = self.state.scrubber.scrub(data)
        if labels:
            self._echoed(call, labels, where)
        return out

    def _relayed_headers(
        self, call: Call, up: aiohttp.ClientResponse, default_type: str
    ) -> dict[str, str]:
        """The allow-listed upstream headers, less any whose name or value holds a secret
        (dropped whole); the content type as sent."""
        headers = client_headers(up.headers)
        headers["Content-Type"] = up.headers.get("Content-Type", default_type)
        kept, labels = self.state.scrubber.scrub_headers(headers)
        if labels:
            self._echoed(call, labels, "a response header")
            kept.setdefault("Content-Type", default_type)
        return kept

    def _echoed(self, call: Call, labels: frozenset[str], where: str) -> None:
        new = labels - call.echoed
        if not new:
            return  # said once per request, however many events carry it
        call.echoed |= new
        provider = call.route.provider.name if call.route is not None else "?"
        log.warning(
            "provider %r echoed %s in %s for request %s; redacted before relaying",
            provider,
            ", ".join(sorted(new)),
            where,
            call.request_id,
        )
        self.events.emit(
            "upstream.echoed_secret",
            {"request_id": call.request_id, "provider": provider, "secrets": sorted(new)},
        )

    def _note(self, call: Call, note: str | None) -> str | None:
        """A ledger note as it may be stored: without secrets (a provider's malformed usage
        is quoted in one), saying when the provider echoed one, which routes failed before
        the one that served it, and a downgrade."""
        scrubber = self.state.scrubber
        note = scrubber.scrub_text(note) if note else note
        served = []
        if call.fallbacks:
            served.append("served after " + ", ".join(call.fallbacks) + " failed")
        if call.downgraded_from and call.route is not None:
            served.append(
                f"downgraded from {call.downgraded_from} to {call.route.qualified}: the "
                "budget could not pay for it"
            )
        if served:
            note = "; ".join([*([note] if note else []), *served])
        if not call.echoed:
            return note
        echoed = f"the provider echoed {', '.join(sorted(call.echoed))}: redacted before relaying"
        return f"{note}; {echoed}" if note else echoed

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
        if call.capped:
            h["x-aiwallet-capped"] = ",".join(f"{k}={v}" for k, v in call.capped.items())
        paid = call.payment
        if paid is not None and paid.tx_signature is not None:
            h["x-aiwallet-x402-transaction"] = paid.tx_signature
        if call.route is not None:  # which provider and model served it
            h["x-aiwallet-provider"] = call.route.provider.name
            h["x-aiwallet-model"] = call.route.upstream_model
            if call.route.via:
                h["x-aiwallet-route"] = call.route.via
        if call.fallbacks:
            h["x-aiwallet-fallbacks"] = str(len(call.fallbacks))
        if call.downgraded_from:
            h["x-aiwallet-downgraded-from"] = call.downgraded_from
        return h


_UNPREPARED = object()  # the call is prepared for no route (a switch to another wire failed)

# A provider's failure before anything reached the app: the next route is tried. Not a
# timeout: the provider may still be working on (and billing) the request, as with retries.
FALLBACK = frozenset(
    {"upstream_unavailable", "provider_key_unavailable", "no_provider", "rate_limited"}
)

PURPOSE_HEADER = "x-aiwallet-purpose"
MAX_PURPOSE = 500  # characters, as a connect request's purpose


def _declared_purpose(request: web.Request) -> str | None:
    """What a keyless caller says it wants the wallet for (``x-aiwallet-purpose``): plain
    text the prompt shows as the caller's own words; too long is refused before asking."""
    value = request.headers.get(PURPOSE_HEADER)
    if value is None:
        return None
    if len(value) > MAX_PURPOSE:
        raise ProxyError(
            "invalid_request",
            f"{PURPOSE_HEADER} must be text of at most {MAX_PURPOSE} characters",
            param=PURPOSE_HEADER,
        )
    return value.strip() or None


def route_limit_reached(call: Call, data: bytes) -> bool:
    """OpenRouter's refusal of a key past its spending limit (403 ``Key limit exceeded``),
    for a request that went with an app's own capped key."""
    route = call.route
    if route is None or route.kind.id != "openrouter":
        return False
    return b"key limit exceeded" in data[:2048].lower()


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
