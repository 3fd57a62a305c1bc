"""Consent requests: an app asks (``/wallet/v1/connect``) or a local program calls without a
key; the user answers (tray prompt, or ``aiwallet consent approve|deny``); the engine waits.

A request is an object with a lifecycle: ``pending`` → ``approved`` | ``denied`` |
``expired`` (no answer in time: denies once, remembers nothing) | ``cancelled`` (every waiting
client left). Keyless calls from the same process (pid, executable and OS user) while its
prompt is open join that prompt.

A connect request is bound to its requester: the 202 answer carries a poll secret (256 random
bits, kept here only hashed), polling needs it (``Authorization: Bearer aw_poll_...``), and
without it the id is as unknown as any other. The key is handed out once, to that secret, and
only to a poller of the same OS user as the requester; it is dropped from memory once handed
out, or ``KEEP_KEY`` after the approval. Pending prompts are bounded (admission.py) and connect
requests rate-limited per OS user.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import BudgetSpec, parse_budget_spec
from aiwallet.domain.providers import WireFormat
from aiwallet.engine.admission import DEFAULT_LIMITS, AdmissionLimits, ConnectRate, check_pending
from aiwallet.engine.errors import ProxyError
from aiwallet.engine.events import EventBus
from aiwallet.engine.peer import PeerLookup, ProcessInfo
from aiwallet.store.consent import ConsentRule
from aiwallet.store.grants import Remember

if TYPE_CHECKING:
    from aiwallet.engine.state import AppContext, EngineState

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0
ONCE_LIFETIME = timedelta(minutes=2)
KEEP_ANSWERED = timedelta(minutes=15)  # how long an answer (without the key) can be polled
KEEP_KEY_S = 120.0  # how long an approved key waits for its requester's poll
POLL_SECRET_PREFIX = "aw_poll_"  # noqa: S105 - a prefix, not a secret
PROGRAM = "program"  # the subject kind of a remembered keyless decision (program + OS user)
MAX_LIFETIME_S = 10 * 366 * 24 * 3600  # ten years: longer is "no expiry", not a date
EXPENSIVE = "expensive"  # one request of a known app over its ask-before threshold
PAYMENT = "payment"  # the first x402 payment to a payee the wallet has not paid before
PAYEE = "payee"  # the subject kind of a remembered payee decision ("<network>:<address>")
ONE_OFF = (EXPENSIVE, PAYMENT)  # prompts about one request: no app, no model list
# How long an approval lasts (as OpenSnitch offers): this request's burst, a quarter of an hour,
# an hour (grant expiries: the rule expires with them), until the program's process exits (no
# rule remembered: the engine watches the pid), until the owner revokes it.
DURATIONS: dict[str, timedelta | None] = {
    "once": ONCE_LIFETIME,
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "exit": None,
    "always": None,
}
SCOPES = ("script", "program")  # a rule for this script, or for any script of the interpreter
UNTIL_EXIT_NOTE = " (until its process exits)"  # ends an app's notes: see end_orphaned_exit_grants
MAX_SERVED_SHOWN = 200  # model names a request's JSON lists of what "any model" covers
EXIT_CHECK_S = 1.0  # how often the processes with "until it exits" grants are checked


@dataclass
class ConsentRequest:
    id: str
    kind: str  # "connect" | "keyless" | "expensive"
    app_name: str
    purpose: str | None
    models: list[str]
    budget: str | None
    lifetime_s: int | None
    process: ProcessInfo | None
    created_at: datetime
    deadline: float
    state: str = "pending"
    answer: dict[str, Any] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: int = 0
    app_id: int | None = None
    poll_hash: bytes = b""  # sha256 of the poll secret (connect requests only)
    refused_polls: int = 0
    held_request: dict[str, Any] | None = None  # the request held: model, worst case, ...
    served: list[str] = field(default_factory=list)  # what "any model" would mean, by name

    @property
    def owner(self) -> str | None:
        """The requester's OS user (None: the platform would not tell)."""
        return self.process.owner if self.process is not None else None

    def polled_with(self, secret: str | None) -> bool:
        if not secret or not self.poll_hash:
            return False
        return hmac.compare_digest(hashlib.sha256(secret.encode()).digest(), self.poll_hash)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "app_name": self.app_name,
            "purpose": self.purpose,
            "models": self.models,
            "budget": self.budget,
            "lifetime_s": self.lifetime_s,
            "process": self.process.to_json() if self.process else None,
            "process_label": self.process.label if self.process else "unknown process",
            "created_at": self.created_at.isoformat(),
            "expires_in_s": max(0, round(self.deadline - time.monotonic())),
            "state": self.state,
            **({"held_request": self.held_request} if self.held_request is not None else {}),
            "served_models": self.served[:MAX_SERVED_SHOWN],
            "served_count": len(self.served),
        }


async def read_json(request: web.Request) -> Any:
    """A request's JSON body; ``invalid_request`` when it is not JSON in a known charset."""
    try:
        return await request.json()
    except (ValueError, LookupError, RecursionError):  # LookupError: an unknown charset
        raise ProxyError("invalid_request", "the request body is not valid JSON") from None


def check_lifetime(value: Any) -> int | None:
    """A grant lifetime in whole seconds (None: as long as the app is not revoked)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_LIFETIME_S:
        raise ProxyError(
            "invalid_request",
            f"lifetime_s must be a whole number of seconds from 1 to {MAX_LIFETIME_S}",
            param="lifetime_s",
        )
    return value


def _opt_str(body: dict[str, Any], key: str, limit: int = 500) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ProxyError("invalid_request", f"{key} must be text of at most {limit} characters")
    return value.strip() or None


class ConsentManager:
    def __init__(
        self,
        state: EngineState,
        events: EventBus,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        on_change: Callable[[], Awaitable[None]] | None = None,
        limits: AdmissionLimits = DEFAULT_LIMITS,
    ) -> None:
        self.state = state
        self.events = events
        self.on_change = on_change or state.reload  # after an approval created an app
        self.timeout_s = timeout_s
        self.requests: dict[str, ConsentRequest] = {}
        self.peers = PeerLookup()
        self.limits = limits
        self.connect_rate = ConnectRate(limits)
        self._rule_flights: dict[tuple[str, str], asyncio.Future[ConsentRule | None]] = {}
        # "until it exits" grants: app id → (its app name, the process it belongs to)
        self.until_exit: dict[int, tuple[str, ProcessInfo]] = {}
        self.exit_check_s = EXIT_CHECK_S
        self._watcher: asyncio.Task[None] | None = None

    def set_limits(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self.connect_rate = ConnectRate(limits)

    def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        self.peers.close()

    # -- opening --------------------------------------------------------------------------
    def _prune(self) -> None:
        """Forget answered requests after a while (a long-running engine must not grow)."""
        horizon = datetime.now(UTC) - KEEP_ANSWERED
        for req_id in [
            r.id for r in self.requests.values() if r.state != "pending" and r.created_at < horizon
        ]:
            del self.requests[req_id]

    def _open(self, **kw: Any) -> ConsentRequest:
        self._prune()
        check_pending(self.limits, self.pending(), kw.get("process"))
        req = ConsentRequest(
            id="cr_" + uuid.uuid4().hex,
            created_at=datetime.now(UTC),
            deadline=time.monotonic() + self.timeout_s,
            served=self._served() if kw.get("kind") not in ONE_OFF else [],
            **kw,
        )
        self.requests[req.id] = req
        asyncio.get_running_loop().call_later(self.timeout_s, self._expire, req.id)
        self.events.emit("consent.requested", req.to_json())
        return req

    def _served(self) -> list[str]:
        """The names of every model this wallet serves (both wire formats): what a grant of
        ``*`` lets a program use, listed so that "any model" is never a bare ``*``."""
        router = self.state.router
        names = {r.upstream_model for w in WireFormat for r in router.models_for(w, ["*"])}
        return sorted(names)

    def _expire(self, req_id: str) -> None:
        req = self.requests.get(req_id)
        if req is not None and req.state == "pending":
            self._finish(req, "expired", {})

    def _finish(self, req: ConsentRequest, state: str, answer: dict[str, Any]) -> None:
        req.state, req.answer = state, answer
        req.done.set()
        if "key" in answer:  # not kept for long, whether or not its requester polls
            asyncio.get_running_loop().call_later(KEEP_KEY_S, answer.pop, "key", None)
        self.events.emit(
            "consent.cancelled" if state == "cancelled" else "consent.answered",
            {"id": req.id, "state": state},
        )

    async def connect(self, request: web.Request) -> tuple[ConsentRequest, str]:
        """``POST /wallet/v1/connect``: an app asks by name; the request and its poll secret
        (which only this answer carries)."""
        process = await self._peer(request)
        self.connect_rate.take(process)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ProxyError("invalid_request", "the request body must be a JSON object")
        name = _opt_str(body, "app_name", 100) or _opt_str(body, "name", 100)
        if not name:
            raise ProxyError("invalid_request", "say who is asking: app_name is required")
        models = body.get("models") or body.get("providers") or ["*"]
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise ProxyError("invalid_request", "models must be a list of model names or patterns")
        budget = _opt_str(body, "budget", 64)
        if budget:
            try:
                parse_budget_spec(budget)
            except InvalidInput as exc:
                raise ProxyError("invalid_request", str(exc), param="budget") from None
        lifetime = check_lifetime(body.get("lifetime_s"))
        check_pending(self.limits, self.pending(), process)  # before any database work
        rule = await self._rule("app", name)
        req = self._open(
            kind="connect",
            app_name=name,
            purpose=_opt_str(body, "purpose"),
            models=models,
            budget=budget,
            lifetime_s=lifetime,
            process=process,
        )
        secret = POLL_SECRET_PREFIX + secrets.token_urlsafe(32)
        req.poll_hash = hashlib.sha256(secret.encode()).digest()
        if rule is not None and rule.decision == "deny":
            self._finish(req, "denied", {"remembered": True})
        return req, secret

    async def _peer(self, request: web.Request) -> ProcessInfo | None:
        """The caller's process: looked up once per connection, on the peer worker."""
        return await self.peers.lookup(request.transport)

    async def _rule(self, kind: str, subject: str) -> ConsentRule | None:
        """A remembered decision; concurrent look-ups of one subject share one read."""
        key = (kind, subject)
        flight = self._rule_flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(
                self.state.db(self.state.port.consent_rules.find, kind, subject)
            )
            self._rule_flights[key] = flight
            flight.add_done_callback(lambda _: self._rule_flights.pop(key, None))
        return await asyncio.shield(flight)

    # -- waiting --------------------------------------------------------------------------
    async def poll(
        self, request: web.Request, req_id: str, secret: str | None, timeout_s: float
    ) -> tuple[ConsentRequest, str | None]:
        """``GET /wallet/v1/connect/{id}``: wait for the answer; (the request, its key if this
        poll is the one that collects it). Without the request's poll secret, or from another
        OS user than the requester's, the request is as unknown as any other id."""
        req = self.requests.get(req_id)
        if req is None or req.kind != "connect" or not req.polled_with(secret):
            raise ProxyError("not_found", f"no consent request {req_id}")
        if req.owner is not None:
            poller = await self._peer(request)
            if poller is None or poller.owner != req.owner:
                req.refused_polls += 1
                if req.refused_polls <= 3:  # cheap: a few lines per request, however many tries
                    log.warning(
                        "consent request %s: a poll with its secret from %s, not the requester "
                        "(%s), got nothing",
                        req.id,
                        poller.owner if poller else "an unknown process",
                        req.owner,
                    )
                raise ProxyError("not_found", f"no consent request {req_id}")
        await self.wait(req, timeout_s)
        key = req.answer.pop("key", None) if req.state == "approved" else None
        return req, key

    async def wait(self, req: ConsentRequest, timeout_s: float) -> ConsentRequest:
        if req.state == "pending":
            req.waiters += 1
            try:
                await asyncio.wait_for(req.done.wait(), timeout=max(0.0, timeout_s))
            except TimeoutError:
                pass
            finally:
                req.waiters -= 1
        return req

    async def admit_keyless(
        self,
        request: web.Request,
        *,
        held: dict[str, Any] | None = None,
        purpose: str | None = None,
    ) -> AppContext | None:
        """Hold a keyless call until the user answers; the app to serve it, or None. ``held``
        (model, worst case as exact USD, max output tokens) and the ``purpose`` the caller
        declared are what its prompt shows; the models asked are the held request's."""
        process = await self._peer(request)
        if process is not None:
            ctx = await self._running_grant(process)
            if ctx is not None:
                return ctx
            rule = await self._program_rule(process)
            if rule is not None and rule.decision == "deny":
                raise _denied(process.label, always=True)
            if rule is not None and rule.app_id is not None:
                ctx = await self.state.db(self.state.load_app_by_id, rule.app_id)
                if ctx is not None and ctx.app.revoked_at is None:
                    return ctx
        req = self._joinable(process) or self._open(
            kind="keyless",
            app_name=(process.name if process else "unknown process"),
            purpose=purpose,
            models=[str(held["model"])] if held else ["*"],
            budget=None,
            lifetime_s=None,
            process=process,
            held_request=held,
        )
        await self._hold(req)
        label = process.label if process is not None else "this unknown process"
        if req.state == "denied":
            raise _denied(label, always=bool(req.answer.get("remembered")))
        if req.state == "expired":  # nobody answered: not a denial, and not told as one
            sent_key = "Authorization" in request.headers or "x-api-key" in request.headers
            raise ProxyError(
                "consent_required",
                f"nobody answered the wallet's prompt for {label} within "
                f"{self.timeout_s:g} s; call again to ask again"
                + (
                    " (the key this program sent is not a wallet app key: those start with aw_app_)"
                    if sent_key
                    else ", or ask the wallet's owner for an app key ('aiwallet apps add NAME')"
                ),
            )
        if req.state != "approved" or req.app_id is None:
            return None
        return await self.state.db(self.state.load_app_by_id, req.app_id)

    async def _hold(self, req: ConsentRequest) -> None:
        """Wait, as one of ``req``'s callers, until it is answered or its prompt times out; the
        last caller to leave while it is pending withdraws it (the prompt closes)."""
        req.waiters += 1
        try:
            await asyncio.wait_for(
                req.done.wait(), timeout=max(0.0, req.deadline - time.monotonic())
            )
        except TimeoutError:
            # the deadline passed: expired now, whether or not the expiry timer (scheduled
            # at the same moment) has run yet, so every waiter reads one outcome
            self._expire(req.id)
        except asyncio.CancelledError:
            if req.waiters == 1 and req.state == "pending":
                self._finish(req, "cancelled", {})  # the client left: withdraw the prompt
            raise
        finally:
            req.waiters -= 1

    async def ask_expensive(self, request: web.Request, held: dict[str, Any]) -> bool:
        """Hold one request of a known app whose worst case is over the ask-before
        threshold until the user answers: True to serve it (this once), False when they
        declined or did not answer. ``held`` (app, model, worst case as exact USD, max output
        tokens, threshold) is what the prompt shows. Nothing is reserved while it waits."""
        return await self._ask_once(request, EXPENSIVE, held)

    async def payee_decision(self, payee: str) -> str | None:
        """The remembered decision about paying ``payee`` ("allow", "deny", or None)."""
        rule = await self._rule(PAYEE, payee)
        return rule.decision if rule is not None else None

    async def ask_payment(self, request: web.Request, held: dict[str, Any]) -> bool:
        """Hold a request until the user says whether the wallet may pay a new x402 payee
        (``held``: app, payee, network, amount, resource, provider). True to pay. "Always"
        and "never" answers are remembered for the payee; a timeout is a no this once."""
        payee = str(held["payee_id"])
        for open_req in self.pending():  # one prompt per payee and app, however many ask
            asked = open_req.held_request or {}
            if open_req.kind == PAYMENT and (asked.get("payee_id"), open_req.app_name) == (
                payee,
                str(held["app"]),
            ):
                await self._hold(open_req)
                return open_req.state == "approved"
        return await self._ask_once(request, PAYMENT, held)

    async def _ask_once(self, request: web.Request, kind: str, held: dict[str, Any]) -> bool:
        """Prompt about one held request of a known app (``held``: what the prompt shows)
        and wait for the answer: True when the user let it through."""
        req = self._open(
            kind=kind,
            app_name=str(held["app"]),
            purpose=None,
            models=[str(held["model"])] if held.get("model") else [],
            budget=None,
            lifetime_s=None,
            process=await self._peer(request),
            held_request=held,
        )
        await self._hold(req)
        return req.state == "approved"

    async def _program_rule(self, process: ProcessInfo) -> ConsentRule | None:
        """The remembered decision for this program, script and OS user: one for this very
        script, else one for any script of the interpreter; rules from before the script (or
        the OS user) was part of the identity count only when they deny, and so does a rule for
        any script when the script could not be resolved (a relative path, its cwd unknown)."""
        subject = process.rule_subject
        rule = await self._rule(PROGRAM, subject) if subject is not None else None
        wide_subject = process.any_script_subject if process.script is not None else None
        if rule is None and wide_subject is not None:
            wide = await self._rule(PROGRAM, wide_subject)
            if wide is not None and (subject is not None or wide.decision == "deny"):
                rule = wide
        if rule is not None:
            return rule
        for kind, old in ((PROGRAM, process.legacy_subject), ("exe", process.exe)):
            legacy = await self._rule(kind, old) if old else None
            if legacy is not None and legacy.decision == "deny":
                return legacy
        return None

    async def _running_grant(self, process: ProcessInfo) -> AppContext | None:
        """The app of an "until it exits" grant to this very process, if it has one."""
        for app_id, (_name, granted) in list(self.until_exit.items()):
            if process.same_process(granted):
                ctx = await self.state.db(self.state.load_app_by_id, app_id)
                if ctx is not None and ctx.app.revoked_at is None:
                    return ctx
        return None

    # -- "until it exits" -------------------------------------------------------------------
    async def end_orphaned_exit_grants(self) -> list[str]:
        """At engine start: revoke every app approved "until its process exits" that is still
        active. This engine never saw those processes, so it cannot tell when they end; a
        restart ends their grants (the programs are asked again). The names revoked."""
        apps = self.state.port.apps

        def sweep() -> list[str]:
            ended = []
            for app in apps.list():
                if app.revoked_at is None and (app.notes or "").endswith(UNTIL_EXIT_NOTE):
                    apps.revoke(app.name, actor="engine")
                    ended.append(app.name)
            return ended

        ended = await self.state.db(sweep)
        if ended:
            log.info("ended %d 'until it exits' grant(s) from before this start", len(ended))
            await self.state.reload()
        return ended

    def _watch_exit(self, app_id: int, name: str, process: ProcessInfo) -> None:
        self.until_exit[app_id] = (name, process)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch_exits())

    async def _watch_exits(self) -> None:
        """Every ``exit_check_s``, check the processes with "until it exits" grants (on the
        peer worker: one pass for all of them) and revoke the app of each one that is gone.
        Ends when no such grant is left."""
        while self.until_exit:
            await asyncio.sleep(self.exit_check_s)
            watched = list(self.until_exit.items())
            try:
                alive = await self.peers.alive([(p.pid or 0, p.started) for _, (_, p) in watched])
            except Exception:
                log.exception("checking the processes of 'until it exits' grants failed")
                continue
            gone = [
                (app_id, name, p)
                for (app_id, (name, p)), up in zip(watched, alive, strict=True)
                if not up
            ]
            apps = self.state.port.apps
            for app_id, name, proc in gone:
                try:
                    await self.state.db(functools.partial(apps.revoke, name, actor="engine"))
                except Exception:
                    log.exception("revoking app %s after its process exited failed", name)
                    continue
                self.until_exit.pop(app_id, None)
                self.events.emit("consent.ended", {"app": name, "pid": proc.pid})
                log.info("app %s ended: its process %s exited", name, proc.pid)
            if gone:
                try:
                    await self.on_change()
                except Exception:  # the revocations are committed; the next reload shows them
                    log.exception("reloading after 'until it exits' grants ended failed")

    def _joinable(self, process: ProcessInfo | None) -> ConsentRequest | None:
        if process is None:
            return None
        for req in self.requests.values():
            keyless = req.kind == "keyless" and req.state == "pending"
            if keyless and process.same_process(req.process):
                return req
        return None

    # -- answering ------------------------------------------------------------------------
    def pending(self) -> list[ConsentRequest]:
        return [r for r in self.requests.values() if r.state == "pending"]

    async def approve(
        self,
        req_id: str,
        *,
        budget: str | None = None,
        models: list[str] | None = None,
        lifetime_s: int | None = None,
        once: bool = False,
        duration: str | None = None,
        scope: str = "script",
    ) -> ConsentRequest:
        """Approve, possibly with less than asked; creates the app, its grant and receipt.

        ``duration`` is one of :data:`DURATIONS` (``once`` is the same as ``once=True``;
        None: the lifetime asked or given, else until revoked); ``scope`` ``program`` widens the
        remembered rule to any script of the interpreter (``script``, the default, does not)."""
        req = self._pending(req_id)
        if req.kind == EXPENSIVE:  # an expensive request is only let through, once
            answer = {"app": req.app_name, "models": req.models, "budget": None, "once": True}
            self._finish(req, "approved", {**answer, "receipt": None, "expires_at": None})
            return req
        if req.kind == PAYMENT:  # this payment; "always": every later one to this payee
            remembered = duration == "always"
            if remembered:
                payee = str((req.held_request or {})["payee_id"])
                await self.state.db(
                    lambda: self.state.port.consent_rules.add(
                        PAYEE, payee, "allow", note=f"approved consent request {req.id}"
                    )
                )
            answer = {"app": req.app_name, "once": not remembered, "remembered": remembered}
            self._finish(req, "approved", {**answer, "receipt": None, "expires_at": None})
            return req
        duration = "once" if once else duration
        if duration is not None and duration not in DURATIONS:
            raise ProxyError(
                "invalid_request",
                f"duration must be one of {', '.join(DURATIONS)}",
                param="duration",
            )
        if scope not in SCOPES:
            raise ProxyError(
                "invalid_request", f"scope must be one of {', '.join(SCOPES)}", param="scope"
            )
        watched = req.process if duration == "exit" else None
        if duration == "exit" and (watched is None or watched.pid is None):
            raise ProxyError(
                "invalid_request",
                "the wallet does not know this requester's process, so it cannot end the grant "
                "when it exits; choose another duration",
                param="duration",
            )
        spec_text = budget if budget is not None else req.budget
        spec: BudgetSpec | None = parse_budget_spec(spec_text) if spec_text else None
        scopes = models or req.models
        lifetime = lifetime_s if lifetime_s is not None else req.lifetime_s
        span = DURATIONS.get(duration or "") or (timedelta(seconds=lifetime) if lifetime else None)
        expiry = datetime.now(UTC) + span if span is not None else None
        subject = self._subject(req, scope)
        remember = (
            Remember(*subject) if subject is not None and duration not in ("once", "exit") else None
        )
        note = f"approved consent request {req.id}" + (
            UNTIL_EXIT_NOTE if duration == "exit" else f" ({duration})" if duration else ""
        )
        port = self.state.port
        issued = await self.state.db(
            lambda: port.issue_app(
                req.app_name, budget=spec, models=scopes, expires_at=expiry, notes=note,
                remember=remember,
            )
        )  # fmt: skip
        await self.on_change()  # in this engine, at once: no HTTP to itself
        app, key, receipt = issued.app, issued.key, issued.grant.receipt
        req.app_id = app.id
        if watched is not None:
            self._watch_exit(app.id, app.name, watched)
        self._finish(
            req,
            "approved",
            {
                "app": app.name,
                "key": key,
                "receipt": receipt,
                "budget": str(spec) if spec else None,
                "models": scopes,
                "expires_at": expiry.isoformat() if expiry else None,
                "once": duration == "once",
                "duration": duration or ("lifetime" if lifetime else "always"),
                "scope": scope if remember is not None and req.kind == "keyless" else None,
                "remembered": remember is not None,
            },
        )
        return req

    async def deny(
        self, req_id: str, *, always: bool = False, scope: str = "script"
    ) -> ConsentRequest:
        req = self._pending(req_id)
        if scope not in SCOPES:
            raise ProxyError(
                "invalid_request", f"scope must be one of {', '.join(SCOPES)}", param="scope"
            )
        subject = self._subject(req, scope) if always else None
        if subject is not None:
            kind, text = subject
            await self.state.db(lambda: self.state.port.consent_rules.add(kind, text, "deny"))
        self._finish(req, "denied", {"remembered": subject is not None})
        return req

    @staticmethod
    def _subject(req: ConsentRequest, scope: str = "script") -> tuple[str, str] | None:
        """What a remembered answer to ``req`` is about: the program, its script and its OS
        user for a keyless call (any script of the program with scope ``program``; nothing
        when one of them is unknown), the name for a connect request; nothing for one expensive
        request (each is asked about on its own)."""
        if req.kind == EXPENSIVE:
            return None
        if req.kind == PAYMENT:
            return (PAYEE, str((req.held_request or {})["payee_id"]))
        if req.kind != "keyless":
            return ("app", req.app_name)
        if req.process is None or req.process.rule_subject is None:
            return None
        wide = scope == "program" and req.process.script is not None
        subject = req.process.any_script_subject if wide else req.process.rule_subject
        return (PROGRAM, subject) if subject is not None else None

    def _pending(self, req_id: str) -> ConsentRequest:
        req = self.requests.get(req_id)
        if req is None:
            raise ProxyError("not_found", f"no consent request {req_id}")
        if req.state != "pending":
            raise ProxyError("invalid_request", f"consent request {req_id} is already {req.state}")
        return req


def _denied(label: str, *, always: bool) -> ProxyError:
    """``consent_denied``: the owner said no to this program, once or for good."""
    if always:
        return ProxyError(
            "consent_denied",
            f"the wallet's owner declined {label} for good; they can see and revoke that "
            "decision with 'aiwallet consent list' and 'aiwallet consent revoke ID'",
        )
    return ProxyError(
        "consent_denied",
        f"the wallet's owner declined {label} this time; call again to be asked again",
    )
