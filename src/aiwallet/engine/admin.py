"""The admin API (``/admin/v1/...``): the CLI tells a running engine about changes. Every call
is signed with the admin token (the data dir's 0600 ``admin.token``), which itself never goes
on the wire: ``GET /admin/v1/challenge`` hands out a single-use nonce with the engine's proof
that it knows the token, and each request carries ``Authorization: AW-HMAC nonce, mac``
(adminauth.py has the scheme)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import parse_budget_spec
from aiwallet.engine import adminauth
from aiwallet.engine.consent import check_lifetime, read_json
from aiwallet.engine.context import CONSENT, ENGINE, PROXY, STATE
from aiwallet.engine.errors import ProxyError


async def _json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object ({} when there is none); else ``invalid_request``."""
    if not request.body_exists:  # (not can_read_body: the guard has read the body already)
        return {}
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ProxyError("invalid_request", "the request body must be a JSON object")
    return body


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise ProxyError("invalid_request", f"{name} must be true or false", param=name)
    return value


def _choice(body: dict[str, Any], name: str, default: str | None) -> str | None:
    """A text field (checked against its choices by the consent manager)."""
    value = body.get(name, default)
    if value is not None and not isinstance(value, str):
        raise ProxyError("invalid_request", f"{name} must be text", param=name)
    return value


CHALLENGES = web.AppKey("admin_challenges", adminauth.ChallengeStore)


def _refused(message: str) -> web.Response:
    return web.json_response(
        {"error": {"code": "admin_token_required", "message": message}}, status=401
    )


def add_admin_routes(app: web.Application) -> None:
    challenges = app[CHALLENGES] = adminauth.ChallengeStore()

    def guarded(fn: Any) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            engine = request.app[ENGINE]
            parsed = adminauth.parse_auth_header(request.headers.get("Authorization", ""))
            if parsed is None:
                return _refused(
                    "admin requests are signed: Authorization: AW-HMAC nonce=..., mac=... "
                    f"(a nonce from GET {adminauth.CHALLENGE_PATH}); the token itself is "
                    "never accepted"
                )
            nonce, mac = parsed
            if not engine.admin_token or not challenges.consume(nonce):  # used up either way
                return _refused("unknown, used or expired nonce; ask for a new challenge")
            body = await request.read()
            expected = adminauth.request_mac(
                engine.admin_token, nonce, request.method, request.raw_path, body
            )
            if not adminauth.same(mac, expected):
                return _refused("wrong signature")
            result: web.StreamResponse = await fn(request)
            return result

        return handler

    async def challenge(request: web.Request) -> web.Response:
        engine = request.app[ENGINE]
        client_nonce = request.query.get("client_nonce", "")
        if not adminauth.valid_nonce(client_nonce):
            raise ProxyError(
                "invalid_request",
                "client_nonce must be 16 to 128 characters of A-Z, a-z, 0-9, - and _",
                param="client_nonce",
            )
        if not engine.admin_token:
            return _refused("the engine has no admin token yet")
        nonce = challenges.issue()
        proof = adminauth.engine_proof(engine.admin_token, client_nonce, nonce, engine.instance)
        return web.json_response(
            {
                "nonce": nonce,
                "instance": engine.instance,
                "proof": proof,
                "expires_in_s": challenges.ttl_s,
            }
        )

    async def status(request: web.Request) -> web.Response:
        state = request.app[STATE]
        return web.json_response(
            {
                "port": request.app[ENGINE].port,
                "paused": state.paused,
                "generation": state.generation,
                "in_flight_settlements": len(request.app[PROXY].background),
            }
        )

    async def providers_health(request: web.Request) -> web.Response:
        return web.json_response(request.app[STATE].provider_health())

    async def reload(request: web.Request) -> web.Response:
        await request.app[ENGINE].reload()
        return web.json_response({"ok": True, "generation": request.app[STATE].generation})

    async def consent_pending(request: web.Request) -> web.Response:
        return web.json_response([r.to_json() for r in request.app[CONSENT].pending()])

    async def consent_approve(request: web.Request) -> web.Response:
        body = await _json_object(request)
        budget, models, lifetime = body.get("budget"), body.get("models"), body.get("lifetime_s")
        if budget is not None:
            if not isinstance(budget, str):
                raise ProxyError("invalid_request", "budget must be text such as 1/day")
            try:
                parse_budget_spec(budget)
            except InvalidInput as exc:
                raise ProxyError("invalid_request", str(exc), param="budget") from None
        if models is not None and not (
            isinstance(models, list) and all(isinstance(m, str) and m for m in models)
        ):
            raise ProxyError("invalid_request", "models must be a list of model names or patterns")
        req = await request.app[CONSENT].approve(
            request.match_info["id"],
            budget=budget,
            models=models,
            lifetime_s=check_lifetime(lifetime),
            once=_flag(body, "once"),
            duration=_choice(body, "duration", None),
            scope=_choice(body, "scope", "script") or "script",
        )
        answer = {k: v for k, v in req.answer.items() if k != "key"}  # the key is the app's
        return web.json_response({**req.to_json(), "answer": answer})

    async def consent_deny(request: web.Request) -> web.Response:
        body = await _json_object(request)
        always = _flag(body, "always")
        scope = _choice(body, "scope", "script") or "script"
        req = await request.app[CONSENT].deny(request.match_info["id"], always=always, scope=scope)
        return web.json_response(req.to_json())

    async def wallet_topup(request: web.Request) -> web.Response:
        """A prepaid router's top-up, run here for the CLI: this engine grants its
        reservation from the budget counters it keeps in memory."""
        body = await _json_object(request)
        provider, nano = body.get("provider"), body.get("amount_nano")
        if not isinstance(provider, str) or not provider:
            raise ProxyError("invalid_request", "provider must be a provider's name")
        if not isinstance(nano, int) or isinstance(nano, bool) or nano <= 0:
            raise ProxyError("invalid_request", "amount_nano must be a positive integer")
        state = request.app[STATE]
        return web.json_response(await state.db(state.port.topup, provider, nano))

    app.router.add_get(adminauth.CHALLENGE_PATH, challenge)
    app.router.add_get("/admin/v1/status", guarded(status))
    app.router.add_get("/admin/v1/providers/health", guarded(providers_health))
    app.router.add_get("/admin/v1/consent/pending", guarded(consent_pending))
    app.router.add_post("/admin/v1/consent/{id}/approve", guarded(consent_approve))
    app.router.add_post("/admin/v1/consent/{id}/deny", guarded(consent_deny))
    app.router.add_post("/admin/v1/reload", guarded(reload))
    app.router.add_post("/admin/v1/wallet/topup", guarded(wallet_topup))
