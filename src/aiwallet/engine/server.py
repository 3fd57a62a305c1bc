"""The engine: an aiohttp server on its own thread and event loop (uvloop where installed).

Started by the desktop app or by ``aiwallet serve`` (which imports no Qt). On start it first
resolves reservations a crashed engine left open (auditing each), then listens on loopback.
It writes ``engine.json`` (address, pid, process start time, instance id) and a new admin token
(0600) into the data dir so that the CLI can find it, check it, and tell it about changes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import json
import logging
import os
import secrets
import threading
import time
from typing import Any

import aiohttp
from aiohttp import web

from aiwallet.domain.errors import WalletError
from aiwallet.domain.providers import WireFormat
from aiwallet.engine import heap
from aiwallet.engine.admin import add_admin_routes
from aiwallet.engine.attempts import Resilience
from aiwallet.engine.consent import DEFAULT_TIMEOUT_S, ConsentManager
from aiwallet.engine.context import CONSENT, ENGINE, PROXY, STATE
from aiwallet.engine.endpoints import ENDPOINTS
from aiwallet.engine.errors import Api, ProxyError, error_response
from aiwallet.engine.events import EventBus
from aiwallet.engine.health import ProviderHealth
from aiwallet.engine.ledger_watch import LedgerWatch
from aiwallet.engine.listener import process_started
from aiwallet.engine.live_budgets import LiveBudgets
from aiwallet.engine.payflow import PaymentFlow
from aiwallet.engine.port import WalletPort
from aiwallet.engine.provider_watch import ProviderWatch
from aiwallet.engine.proxy import Proxy
from aiwallet.engine.reconcile import Reconciler, Round
from aiwallet.engine.routing import Route
from aiwallet.engine.state import EngineState
from aiwallet.engine.subkeys import SubKeyKeeper
from aiwallet.engine.tokens import DEFAULT_TTL_S, SessionTokens
from aiwallet.engine.wallet_api import add_wallet_routes
from aiwallet.paths import write_private
from aiwallet.store.reservation_journal import ReservationJournal
from aiwallet.store.writer_lock import EngineLocks, hold_engine_locks
from aiwallet.upstreams.client import Timeouts, make_session

log = logging.getLogger(__name__)
RELOAD_WAIT_S = 30.0  # how long a reload asked from another thread is waited for

DEFAULT_PORT = 8402
MAX_BODY = 32 * 1024 * 1024
MAX_REQUEST_LINE = 64 * 1024
# A connection must send a whole request head within this time of opening (or of its last
# answer), and an idle keep-alive connection is closed after it: aiohttp's keepalive timer
# starts at connection_made and closes a connection still waiting for a complete message.
# A request being handled (a long-poll, a stream) is not affected.
IDLE_TIMEOUT_S = 15.0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency where it builds
        return asyncio.new_event_loop()


def api_of(request: web.Request) -> Api:
    """The wire format of a request's errors: its route's, or (other paths) Anthropic's when
    it says ``anthropic-version``."""
    endpoint = ENDPOINTS.get(request.path)
    if endpoint is not None:  # the guard and the middleware answer as the proxy would
        return endpoint.api
    if request.path.startswith("/v1/messages") or "anthropic-version" in request.headers:
        return Api.ANTHROPIC
    return Api.OPENAI


class Engine:
    def __init__(
        self,
        wallet: WalletPort,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        max_body: int = MAX_BODY,
        timeouts: Timeouts | None = None,
        allow_non_loopback: bool = False,
        consent_timeout_s: float | None = None,
        session_ttl_s: int = DEFAULT_TTL_S,
        idle_timeout_s: float = IDLE_TIMEOUT_S,
        resilience: Resilience | None = None,
    ) -> None:
        """An engine for ``wallet`` (its port: ``service.Wallet.new_engine`` builds both). Not
        started: nothing runs until :meth:`start`. ``resilience``: its retry and breaker
        policies, clock and sleep (engine/attempts.py; tests inject theirs)."""
        if not _is_loopback(host) and not allow_non_loopback:
            raise WalletError(
                f"refusing to listen on {host}: the wallet listens on loopback only",
                code="invalid_request",
            )
        self.wallet = wallet
        self.host, self.port = host, port
        self.max_body = max_body
        self.timeouts = timeouts or Timeouts()
        self._hosts_cache: tuple[tuple[str, int], frozenset[str]] | None = None
        self.state = EngineState(wallet)
        self.resilience = resilience or Resilience()
        self.state.health = ProviderHealth(self.resilience.clock, self.resilience.breaker)
        self.events = EventBus()
        self.consent: ConsentManager | None = None
        self.reconciler: Reconciler | None = None
        self.subkeys: SubKeyKeeper | None = None  # per-app provider keys (engine/subkeys.py)
        self.watch: ProviderWatch | None = None  # balances, key age, OpenRouter's price list
        self.ledger_watch: LedgerWatch | None = None  # a shared PostgreSQL ledger's changes
        self.reconciled: Round | None = None
        # An explicit timeout (tests, ``serve``) wins; else the user's preference applies.
        self._timeout_from_settings = consent_timeout_s is None
        self.consent_timeout_s = (
            DEFAULT_TIMEOUT_S if consent_timeout_s is None else consent_timeout_s
        )
        self.session_ttl_s = session_ttl_s
        self.idle_timeout_s = idle_timeout_s
        self.admin_token = ""
        self.instance = ""  # a random id per start, in engine.json and the admin proofs
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._proxy: Proxy | None = None
        self._wrote_engine_file = False
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.recovered: list[Any] = []
        self.replayed = 0  # grants found only in the journal at start (engine/live_budgets.py)
        self._locks: EngineLocks | None = None

    @property
    def proxy(self) -> Proxy | None:
        return self._proxy

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> int:
        """Start on its own thread; returns the port once the server listens. A start that
        fails leaves nothing running (no thread, pool, writer or client session)."""
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="aiwallet-engine", daemon=True)
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            self._thread.join(30)
            self._thread = None
            raise self._error
        if not self._ready.is_set():
            raise WalletError("the engine did not start within 60 s")
        return self.port

    def _run(self) -> None:
        loop = self.loop = _new_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start())
        except BaseException as exc:
            self._error = exc
            try:
                loop.run_until_complete(self._shutdown())
            finally:
                loop.close()
                self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.close()

    async def _start(self) -> None:
        wallet = self.wallet
        # one engine per data dir and per SQLite ledger, before anything is touched (a
        # non-blocking flock: no wait on the loop)
        self._locks = hold_engine_locks(wallet.data_dir.root, wallet.db.sqlite_file)
        self.state.start()
        # the reservations this engine takes carry its data dir's id (what a start recovers)
        wallet.budgets.owner = await self.state.db(wallet.data_dir.wallet_id)
        journal = self._journal()
        if journal is not None:  # grants a killed engine never recorded become open ones
            self.replayed = await self.state.db(self._replay, journal)
        # payments first: a reservation whose payment the chain can place is billed exactly
        self.reconciler = Reconciler(self.state, self.events)
        self.reconciled = await self.reconciler.run_once(at_start=True)
        self.recovered = await self.state.db(wallet.recover_open)
        if wallet.db.is_sqlite:  # this engine is the ledger's only writer: counters in memory
            self._go_live(journal)
        # on PostgreSQL other wallets may change what this engine reads: a change after this
        # point moves the audit log past what the watch starts from
        audit_seq = (
            await self.state.db(self.state.port.audit_seq) if wallet.db.is_postgres else None
        )
        await self.state.reload()
        self.admin_token = await self.state.db(self._admin_token)
        self._session = make_session(self.timeouts)
        self.state.health.events = self.events
        self._proxy = Proxy(self.state, self._session, self.max_body, self.resilience)
        self._proxy.tokens = SessionTokens(self.session_ttl_s)
        # never in what an app receives (engine/scrub.py), nor in the logs
        self.state.add_engine_secret("the admin token", self.admin_token)
        self.state.add_engine_secret("the session-token key", *self._proxy.tokens.key_forms())
        self._proxy.events = self.events
        if self._timeout_from_settings:
            self.consent_timeout_s = await self.state.db(wallet.prompt_timeout_s)
        self.consent = ConsentManager(
            self.state, self.events, self.consent_timeout_s, on_change=self.reload
        )
        await self.consent.end_orphaned_exit_grants()  # their processes are not known here
        self._proxy.consent = self.consent
        self._proxy.payflow = PaymentFlow(self.state, self.events)
        self._proxy.payflow.consent = self.consent
        self.reconciler.start()
        self.subkeys = SubKeyKeeper(self.state, self.events)
        self.subkeys.start()
        self.watch = ProviderWatch(self.state, self.events)
        self.watch.start()
        if audit_seq is not None:
            self.ledger_watch = LedgerWatch(self.state, self.reload)
            self.ledger_watch.seen = audit_seq
            self.ledger_watch.start()
        self.events.subscribe(self._on_payment_event)
        app = web.Application(
            client_max_size=self.max_body, middlewares=[self._guard, self._errors]
        )
        app[ENGINE] = self
        app[STATE] = self.state
        app[PROXY] = self._proxy
        app[CONSENT] = self.consent
        for path, endpoint in ENDPOINTS.items():
            app.router.add_post(path, self._proxied(endpoint))
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{id:.+}", self._model)
        app.router.add_get("/healthz", self._health)
        add_admin_routes(app)
        add_wallet_routes(app)
        # A request line may carry a long query (a list of request ids to wait for): past
        # aiohttp's 8 KiB default its parser answers in plain text, before any route could
        # answer in the caller's shape.
        self._runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=True,
            max_line_size=MAX_REQUEST_LINE,
            keepalive_timeout=self.idle_timeout_s,
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        await self.state.db(self._write_engine_file)
        if heap.tune_for_serving():
            log.debug("garbage collector set for serving (gen 0 every %d)", heap.GEN0_THRESHOLD)
        log.info("engine listening on %s:%s", self.host, self.port)

    def _on_payment_event(self, name: str, payload: dict[str, Any]) -> None:
        if name in ("payment.unconfirmed", "payment.held") and self.reconciler is not None:
            self.reconciler.poke()  # ask the chain now rather than at the next round

    async def _shutdown(self) -> None:
        """Undo whatever :meth:`_start` got to (it may have failed half-way)."""
        if self.reconciler is not None:
            await self.reconciler.stop()
        if self.subkeys is not None:
            await self.subkeys.stop()
        if self.watch is not None:
            await self.watch.stop()
        if self.ledger_watch is not None:
            await self.ledger_watch.stop()
        if self._proxy is not None and self._proxy.background:
            await asyncio.gather(*self._proxy.background, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self.consent is not None:
            self.consent.close()  # its peer-lookup worker
        if self._proxy is not None and self._proxy.payflow is not None:
            self._proxy.payflow.close()  # its signing threads
        self.state.close()  # the writer drains (and is dropped): every grant is recorded
        live, self.state.live = self.state.live, None
        if live is not None:
            self.wallet.db.counter_listener = None
            self.wallet.budgets.live_reserve = None
            live.close()
        if self._wrote_engine_file:  # never another engine's (a second start on a busy port)
            self._remove_engine_files()
            self._wrote_engine_file = False
        if self._locks is not None:
            self._locks.release()
            self._locks = None

    def _journal(self) -> ReservationJournal | None:
        """The reservation journal beside a SQLite ledger's file (None: not SQLite, or a
        ledger in memory, which no restart could recover anyway)."""
        path = self.wallet.db.sqlite_file
        return ReservationJournal(path.with_name(path.name + "-grants")) if path else None

    def _replay(self, journal: ReservationJournal) -> int:
        """Blocking: record every grant of the journal the ledger lacks, then drop the
        journal (all of it is in the database now)."""
        entries = list(journal.entries())
        missing = 0
        if entries:
            with self.wallet.db.begin() as conn:
                missing = self.wallet.budgets.replay_in(conn, entries)
        if missing:
            log.warning(
                "%d reservation(s) found only in the journal: billed at worst case", missing
            )
        journal.remove_all()
        return missing

    def _go_live(self, journal: ReservationJournal | None) -> None:
        assert self.loop is not None
        live = LiveBudgets(
            self.wallet.budgets, self.state.writer, journal, self.state.db, self.loop
        )
        if journal is not None:
            journal.open()
        self.wallet.db.counter_listener = live.listener  # commits made elsewhere
        self.state.writer.counter_sink = (self.loop, live.apply)  # the writer's, with results
        self.wallet.budgets.live_reserve = live.reserve_blocking
        self.state.live = live

    def stop(self) -> None:
        if self.loop is not None and self._thread is not None and self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)
            self._thread = None

    def in_engine_thread(self) -> bool:
        return self._thread is not None and threading.current_thread() is self._thread

    async def reload(self) -> None:
        """Re-read settings, apps and providers (after a change made outside the engine, or
        by the engine itself: a consent approval)."""
        await self.state.reload()
        if self.subkeys is not None:
            self.subkeys.poke()  # a budget, a pause, an app may have changed
        if self.consent is not None and self._timeout_from_settings:
            self.consent.timeout_s = await self.state.db(self.wallet.prompt_timeout_s)
        self.events.emit(
            "engine.reloaded", {"paused": self.state.paused, "generation": self.state.generation}
        )

    def reload_soon(self) -> bool:
        """From another thread of this process (the desktop app's workers): reload without
        HTTP; False when the engine is not running."""
        loop = self.loop
        if loop is None or not loop.is_running() or self._proxy is None:
            return False
        future = asyncio.run_coroutine_threadsafe(self.reload(), loop)
        if self.in_engine_thread():
            return True
        deadline = time.monotonic() + RELOAD_WAIT_S
        while True:
            try:
                future.result(0.05)
                return True
            except concurrent.futures.TimeoutError:
                # the engine stopping meanwhile (its loop no longer runs) never runs it:
                # nothing to wait for
                if not loop.is_running() or time.monotonic() > deadline:
                    future.cancel()
                    return False

    def provider_health(self) -> list[dict[str, Any]]:
        """Each configured provider's circuit breaker, from any thread: ``provider``,
        ``health`` (``ok`` / ``open`` / ``probing``), ``state`` (closed / open / half_open),
        ``failures``, ``retry_at`` (ISO UTC, while open) and ``retry_in_s``; [] when the
        engine is not running. ``provider.breaker`` events say when one changes."""
        loop = self.loop
        if loop is None or not loop.is_running():
            return []
        if self.in_engine_thread():
            return self.state.provider_health()

        async def read() -> list[dict[str, Any]]:
            return self.state.provider_health()

        return asyncio.run_coroutine_threadsafe(read(), loop).result(RELOAD_WAIT_S)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _admin_token(self) -> str:
        """A new admin token (and instance id) for this start: a leftover one is never reused.
        It reaches the data dir in :meth:`_write_engine_file`, once the port is ours, so that a
        start that fails on a busy port does not replace the running engine's token."""
        self.instance = secrets.token_urlsafe(12)
        return secrets.token_urlsafe(32)

    def _write_engine_file(self) -> None:
        """The admin token, then ``engine.json`` (each 0600, written atomically): what the CLI
        checks (engine/listener.py) before it asks the engine to prove it knows the token."""
        data_dir = self.wallet.data_dir
        write_private(data_dir.admin_token, self.admin_token)
        info = {
            "host": self.host,
            "port": self.port,
            "pid": os.getpid(),
            "process_started": process_started(os.getpid()),
            "instance": self.instance,
            "started": time.time(),
        }
        write_private(data_dir.engine_file, json.dumps(info))
        self._wrote_engine_file = True

    def _remove_engine_files(self) -> None:
        """At a clean shutdown: ``engine.json`` and the admin token, if they are still this
        engine's (never another engine's, started on the same data dir since)."""
        data_dir = self.wallet.data_dir
        try:
            mine = json.loads(data_dir.engine_file.read_text()).get("instance") == self.instance
        except (OSError, ValueError, AttributeError):
            mine = False
        if mine:
            data_dir.engine_file.unlink(missing_ok=True)
        try:
            if data_dir.admin_token.read_text() == self.admin_token:
                data_dir.admin_token.unlink(missing_ok=True)
        except OSError:
            pass

    # -- handlers -----------------------------------------------------------------------------
    def _proxied(self, endpoint: Any) -> Any:
        async def handler(request: web.Request) -> web.StreamResponse:
            assert self._proxy is not None
            return await self._proxy.handle(request, endpoint)

        return handler

    def _allowed_hosts(self) -> frozenset[str]:
        """The Host values the engine answers to, built once per bound port."""
        cached = self._hosts_cache
        if cached is None or cached[0] != (self.host, self.port):
            names = {"127.0.0.1", "localhost", "[::1]", self.host}
            hosts = {f"{n}:{self.port}" for n in names} | (names if self.port == 80 else set())
            cached = self._hosts_cache = ((self.host, self.port), frozenset(hosts))
        return cached[1]

    @web.middleware
    async def _guard(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Refuse DNS rebinding (a foreign Host) and browsers (an Origin the user did not
        allow) before any other work."""
        host = request.headers.get("Host", "").lower()
        if host not in self._allowed_hosts():
            return error_response(
                api_of(request),
                ProxyError(
                    "forbidden_host",
                    f"the wallet answers only to 127.0.0.1:{self.port} or localhost:{self.port}, "
                    f"not to Host {host!r}",
                ),
            )
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self.state.allowed_origins:
            return error_response(
                api_of(request),
                ProxyError(
                    "forbidden_origin",
                    f"requests from web pages ({origin}) are refused; the wallet's owner can "
                    "allow an origin with 'aiwallet origins allow'",
                ),
            )
        response: web.StreamResponse = await handler(request)
        return response

    @web.middleware
    async def _errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Every failure becomes an error in the wire shape the caller speaks."""
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except web.HTTPNotFound:
            return error_response(
                api_of(request),
                ProxyError("not_found", f"the wallet has no route {request.path}"),
            )
        except web.HTTPMethodNotAllowed:
            return error_response(
                api_of(request),
                ProxyError(
                    "method_not_allowed", f"{request.method} is not allowed on {request.path}"
                ),
            )
        except web.HTTPRequestEntityTooLarge:
            return error_response(
                api_of(request),
                ProxyError("payload_too_large", "the request body is larger than the limit"),
            )
        except web.HTTPException:
            raise
        except WalletError as err:  # deliberate (a ProxyError or any other): its own status
            return error_response(api_of(request), err)
        except Exception:  # a bug: the only 500
            log.exception("unexpected error in %s %s", request.method, request.path)
            return error_response(
                api_of(request),
                ProxyError("internal_error", "the wallet failed on this request; see its log"),
            )

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def _granted_routes(self, request: web.Request) -> tuple[Api, list[Route]]:
        """The models the caller's grant lets it use, in the wire format it speaks."""
        assert self._proxy is not None
        api = api_of(request)
        ctx = await self._proxy.identify(request)
        if ctx is None or ctx.app.revoked_at is not None or ctx.grant is None:
            raise ProxyError("consent_required", "this program has no valid wallet app key")
        wire = WireFormat.ANTHROPIC if api is Api.ANTHROPIC else WireFormat.OPENAI
        return api, self.state.router.models_for(wire, ctx.grant.scopes)

    async def _models(self, request: web.Request) -> web.Response:
        api, routes = await self._granted_routes(request)
        if api is Api.ANTHROPIC:
            data = [_anthropic_model(r) for r in routes]
            body: dict[str, Any] = {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        else:
            body = {"object": "list", "data": [_openai_model(r) for r in routes]}
        return web.json_response(body)

    async def _model(self, request: web.Request) -> web.Response:
        """``GET /v1/models/{id}``: one model the grant allows (by name or provider/name)."""
        api, routes = await self._granted_routes(request)
        wanted = request.match_info["id"]
        for r in routes:
            if wanted in (r.upstream_model, r.qualified):
                model = _anthropic_model(r) if api is Api.ANTHROPIC else _openai_model(r)
                return web.json_response(model)
        raise ProxyError(
            "unknown_model",
            f"the wallet serves no model {wanted!r} to this app (GET /v1/models lists those "
            "it may use)",
            param="model",
        )


def _openai_model(r: Route) -> dict[str, Any]:
    return {"id": r.upstream_model, "object": "model", "created": 0, "owned_by": r.provider.name}


def _anthropic_model(r: Route) -> dict[str, Any]:
    return {
        "type": "model",
        "id": r.upstream_model,
        "display_name": r.row.name,
        "created_at": "2025-01-01T00:00:00Z",
    }
