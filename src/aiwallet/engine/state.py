"""What the engine keeps in memory between requests, and how it is refreshed.

App look-ups, the router and provider keys are cached; any change made through the admin
API (or announced to it by the CLI) clears them at once, and app entries also expire after
a second, so a change written straight to a shared database is obeyed within one second.

Every reload also reads every secret the vault holds (on the read pool, never the loop) and
builds the :class:`~aiwallet.engine.scrub.Scrubber` that everything relayed to apps passes
through, with the engine's own secrets added at start (:meth:`EngineState.add_engine_secret`).

Nothing starts in the constructor: :meth:`EngineState.start` starts the read pool and the
writer thread, :meth:`EngineState.close` stops them (and is safe when start never ran).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection

from aiwallet.domain.appkeys import hash_app_key
from aiwallet.domain.chains import Network
from aiwallet.domain.errors import InvalidInput, VaultError
from aiwallet.domain.gateways import gateway_secret_name
from aiwallet.domain.providers import provider_kind
from aiwallet.domain.subkeys import SUBKEY_KINDS, management_ref
from aiwallet.engine.health import ProviderHealth
from aiwallet.engine.live_budgets import LiveBudgets
from aiwallet.engine.port import WalletPort
from aiwallet.engine.routing import Router
from aiwallet.engine.scrub import Labelled, Scrubber, load_vault_secrets, provider_label
from aiwallet.engine.writer import BatchWriter
from aiwallet.logsetup import REDACTOR
from aiwallet.payments.keys import SolanaKey
from aiwallet.preferences import MIN_CLAMPED_OUTPUT_TOKENS
from aiwallet.store.apps import AppRecord, GrantRecord
from aiwallet.store.providers import ProviderRecord
from aiwallet.store.records import Budget, Reservation, SpendEntry

T = TypeVar("T")
log = logging.getLogger(__name__)
APP_TTL_S = 1.0


class KeyUnavailable(Exception):
    """An app's own provider key (per-app keys are on) could not be made or read."""

    def __init__(self, provider: str) -> None:
        super().__init__(provider)
        self.provider = provider


def gateway_label(name: str) -> str:
    return f"the gateway token of provider {name!r}"


@dataclass(frozen=True, slots=True)
class SolanaSetup:
    """What x402 payments are made with, read at each reload (off the loop)."""

    key: SolanaKey | None
    network: Network
    cap_nano: int  # no single payment above this is signed


@dataclass(frozen=True, slots=True)
class AppContext:
    app: AppRecord
    grant: GrantRecord | None
    budgets: tuple[Budget, ...]

    @property
    def budget_ids(self) -> tuple[int, ...]:
        return tuple(b.id for b in self.budgets)


class EngineState:
    def __init__(self, port: WalletPort, db_workers: int = 4) -> None:
        self.port = port
        self.budgets = port.budgets
        self.requests = port.requests
        self._db_workers = db_workers
        self._db_pool: ThreadPoolExecutor | None = None
        self._writer: BatchWriter | None = None
        self.live: LiveBudgets | None = None  # set by the engine when it owns a SQLite ledger
        self._apps: dict[str, tuple[float, AppContext | None]] = {}
        self._secrets: dict[str, str | None] = {}
        self._gateway_tokens: dict[str, str | None] = {}  # provider name → its gateway token
        self._vault_secrets: list[Labelled] = []
        self._engine_secrets: dict[str, list[str]] = {}
        self.scrubber = Scrubber()
        self._loading: dict[str, asyncio.Future[AppContext | None]] = {}
        self.router = Router([], port.catalog)
        self.paused = False
        self.timezone = port.timezone()
        self.allowed_origins: frozenset[str] = frozenset()
        self.min_clamped_output = MIN_CLAMPED_OUTPUT_TOKENS.default  # read again at reload
        self.ask_over_nano: int | None = None  # preferences.ASK_OVER_USD, read at reload
        self.solana: SolanaSetup | None = None  # the x402 payer's key, network and cap
        # per-app provider keys (engine/subkeys.py): management keys by provider, and each
        # app's key by (provider, app id), read at reload; ``make_subkey`` makes a missing one
        self.subkey_managers: dict[str, str] = {}
        self._subkeys: dict[tuple[str, int], str] = {}
        self.make_subkey: Callable[[str, int], Awaitable[str | None]] | None = None
        self.generation = 0
        # one circuit breaker per provider (engine/health.py); the engine replaces it with
        # one on its own clock and policy
        self.health = ProviderHealth()
        self.provider_names: list[str] = []  # the configured providers, read at reload

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        if self._db_pool is None:
            self._db_pool = ThreadPoolExecutor(
                max_workers=self._db_workers, thread_name_prefix="aiwallet-db"
            )
        if self._writer is None:
            self._writer = BatchWriter(self.port.db, self.port.budgets.hot)
            self._writer.start()

    def close(self) -> None:
        if self._db_pool is not None:
            self._db_pool.shutdown(wait=True)
            self._db_pool = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def writer(self) -> BatchWriter:
        assert self._writer is not None, "EngineState.start() first"
        return self._writer

    # -- store access ---------------------------------------------------------------------------
    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking store work off the event loop."""
        assert self._db_pool is not None, "EngineState.start() first"
        return await asyncio.get_running_loop().run_in_executor(self._db_pool, fn, *args)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run a store write in the writer's next transaction (group commit)."""
        return await self.writer.submit(fn)

    # -- reservations -----------------------------------------------------------------------
    async def reserve(
        self,
        held: tuple[Budget, ...],
        amount_nano: int,
        *,
        at: datetime,
        request_id: str,
        app_id: int | None,
        priced: SpendEntry | None,
    ) -> Reservation:
        """Reserve on every budget of ``held``, all or nothing (raises ``BudgetRefused``):
        granted in memory where this engine is its SQLite ledger's only writer
        (engine/live_budgets.py), else by the database's conditional update, committed."""
        tz = self.timezone
        if self.live is not None:
            return await self.live.reserve(
                held, amount_nano, at=at, tz=tz, request_id=request_id, app_id=app_id,
                priced=priced,
            )  # fmt: skip
        budgets = self.budgets
        granting = self.writer.submit_nowait(
            lambda conn: budgets.reserve_in(
                conn,
                tuple(b.id for b in held),
                amount_nano,
                at=at,
                tz=tz,
                request_id=request_id,
                app_id=app_id,
                known=held,
                priced=priced,
            )
        )
        try:
            return await asyncio.shield(granting)
        except asyncio.CancelledError:
            # the client left while the database granted it: the write commits all the same,
            # and nobody will settle it; give it back once granted (else it holds the budget
            # until an engine start bills it at its worst case)
            granting.add_done_callback(self._release_orphan)
            raise

    def _release_orphan(self, granting: asyncio.Future[Reservation]) -> None:
        if granting.cancelled() or granting.exception() is not None:
            return  # refused (or failed): nothing was reserved
        res, budgets = granting.result(), self.budgets
        try:
            self.writer.submit_nowait(lambda conn: budgets.release_in(conn, res.id))
        except AssertionError:  # the writer has stopped: the next start recovers it
            log.warning("reservation %s of a request its client left stays open", res.id)

    async def grow(self, res: Reservation, extra_nano: int) -> Reservation:
        """Hold ``extra_nano`` more on every budget ``res`` holds, or raise BudgetRefused."""
        if self.live is not None:
            return await self.live.grow(res, extra_nano)
        budgets = self.budgets
        return await self.write(lambda conn: budgets.grow_in(conn, res, extra_nano))

    def remaining(self, held: tuple[Budget, ...], at: datetime) -> list[int] | None:
        """What the budgets have left as the live counters see it (None: no live counters;
        read the database)."""
        if self.live is None:
            return None
        return self.live.remaining(held, at, self.timezone)

    def reload_blocking(self) -> None:
        p = self.port
        self.router = Router(
            p.providers.list(),
            p.catalog,
            p.openrouter_prices(),
            routes={r.name: r.targets for r in p.routes.list()},
            healthy=self.provider_healthy,
        )
        self.provider_names = [r.name for r in p.providers.list()]
        self.paused = p.paused()
        self.timezone = p.timezone()
        self.allowed_origins = p.allowed_origins()
        self.min_clamped_output = p.min_clamped_output_tokens()
        self.ask_over_nano = p.ask_over_nano()
        self.solana = self._load_solana()
        self._vault_secrets, keys = load_vault_secrets(p.vault, p.providers.list())
        self.subkey_managers, self._subkeys = self._load_subkeys()
        self._apps.clear()
        self._secrets = keys  # every provider's key, read now: a request need not wait for it
        self._gateway_tokens = self._load_gateway_tokens(p.providers.list())
        self.scrubber = self._build_scrubber()
        self.generation += 1

    def _load_gateway_tokens(self, providers: list[ProviderRecord]) -> dict[str, str | None]:
        """The gateway token of every provider behind an authenticated gateway (blocking:
        the vault; load_vault_secrets has already added every vault entry to the scrubber)."""
        tokens: dict[str, str | None] = {}
        for p in providers:
            if provider_kind(p.kind).gateway is None:
                continue
            try:
                secret = self.port.vault.get(gateway_secret_name(p.name))
            except VaultError as exc:
                log.warning("cannot read the gateway token of provider %r: %s", p.name, exc)
                continue  # read again at the first request (gateway_token_for)
            tokens[p.name] = secret.reveal() if secret is not None else None
        return tokens

    def _load_solana(self) -> SolanaSetup:
        p = self.port
        key = None
        try:
            secret = p.solana_secret()
            key = SolanaKey.from_text(secret) if secret is not None else None
        except VaultError as exc:
            log.warning("cannot read the Solana key from the vault: %s", exc)
        except InvalidInput:
            log.warning("the vault's Solana key is not a valid keypair; x402 payments are off")
        return SolanaSetup(key, p.solana_network(), p.x402_cap_nano())

    def _load_subkeys(self) -> tuple[dict[str, str], dict[tuple[str, int], str]]:
        """Management keys of providers with per-app keys on, and each app's key (blocking)."""
        p = self.port
        managers: dict[str, str] = {}
        keys: dict[tuple[str, int], str] = {}
        for record in p.providers.list():
            if record.kind not in SUBKEY_KINDS or not (record.options or {}).get("subkeys"):
                continue
            try:
                secret = p.vault.get(management_ref(record.name))
                if secret is None:
                    log.warning("provider %r has per-app keys but no management key", record.name)
                    continue
                managers[record.name] = secret.reveal()
                for sub in p.subkeys.list(record.name):
                    key = p.vault.get(sub.secret_ref)
                    if key is not None:
                        keys[(record.name, sub.app_id)] = key.reveal()
            except VaultError as exc:
                log.warning("cannot read the per-app keys of provider %r: %s", record.name, exc)
        return managers, keys

    def provider_healthy(self, name: str) -> bool:
        """Whether provider ``name`` takes requests now (its circuit breaker is not open)."""
        return self.health.healthy(name)

    def learn_subkey(self, provider: str, app_id: int, key: str) -> None:
        """A per-app key just made: scrubbed from everything relayed, used from now on."""
        REDACTOR.register(key)
        self._subkeys[(provider, app_id)] = key
        self._vault_secrets.append((f"the key of app {app_id} at provider {provider!r}", key))
        self.scrubber = self._build_scrubber()

    def forget_subkey(self, provider: str, app_id: int) -> None:
        self._subkeys.pop((provider, app_id), None)

    def subkey_of(self, provider: str, app_id: int) -> str | None:
        return self._subkeys.get((provider, app_id))

    async def key_for(self, provider: ProviderRecord, app_id: int | None) -> str | None:
        """The key a request of app ``app_id`` goes to ``provider`` with: the app's own key
        where the provider has per-app keys on (made now if missing), else the provider's.
        Raises :class:`KeyUnavailable` when the app's key cannot be had: the request must
        not go with the uncapped one."""
        if provider.name not in self.subkey_managers or app_id is None:
            return await self.secret_for(provider.name, provider.secret_ref)
        key = self._subkeys.get((provider.name, app_id))
        if key is None and self.make_subkey is not None:
            key = await self.make_subkey(provider.name, app_id)
        if key is None:
            raise KeyUnavailable(provider.name)
        return key

    def _build_scrubber(self) -> Scrubber:
        engine = [(label, v) for label, values in self._engine_secrets.items() for v in values]
        return Scrubber([*self._vault_secrets, *engine])

    def add_engine_secret(self, label: str, *forms: str) -> None:
        """A secret of the engine's own (the admin token, the session-token key): scrubbed
        from what apps receive, and from the logs, like the vault's."""
        self._engine_secrets[label] = list(forms)
        for form in forms:
            REDACTOR.register(form)
        self.scrubber = self._build_scrubber()

    async def reload(self) -> None:
        await self.db(self.reload_blocking)
        if self.live is not None:  # a budget may be gone, or new under a reused id
            self.live.forget_idle()

    def provider_health(self) -> list[dict[str, Any]]:
        """Every configured provider's breaker, as the admin API shows it (on the loop)."""
        return self.health.report(self.provider_names)

    # -- apps -----------------------------------------------------------------------------------
    def _load_app(self, key_hash: str) -> AppContext | None:
        app = self.port.apps.by_key_hash(key_hash)
        return None if app is None else self._context(app)

    def load_app_by_id(self, app_id: int) -> AppContext | None:
        """An app's context straight from the store (blocking: run it with :meth:`db`)."""
        app = self.port.apps.by_id(app_id)
        return None if app is None else self._context(app)

    async def app_by_id(self, app_id: int) -> AppContext | None:
        """An app's context by id (session tokens); cached like key look-ups."""
        cache_key = f"id:{app_id}"
        now = time.monotonic()
        hit = self._apps.get(cache_key)
        if hit is not None and now - hit[0] < APP_TTL_S:
            return hit[1]
        ctx = await self.db(self.load_app_by_id, app_id)
        self._apps[cache_key] = (now, ctx)
        return ctx

    def _context(self, app: AppRecord) -> AppContext:
        grant = self.port.apps.grant(app.id)
        budgets = tuple(self.port.budgets.applicable(app.id))
        return AppContext(app, grant, budgets)

    async def app_for_key(self, key: str) -> AppContext | None:
        key_hash = hash_app_key(key)
        now = time.monotonic()
        hit = self._apps.get(key_hash)
        if hit is not None and now - hit[0] < APP_TTL_S:
            return hit[1]
        pending = self._loading.get(key_hash)
        if pending is None:  # one look-up per key at a time, however many requests wait
            pending = asyncio.ensure_future(self.db(self._load_app, key_hash))
            self._loading[key_hash] = pending
            pending.add_done_callback(lambda _: self._loading.pop(key_hash, None))
        ctx = await asyncio.shield(pending)
        if len(self._apps) > 10_000:  # unknown keys must not grow the cache without bound
            self._apps.clear()
        self._apps[key_hash] = (now, ctx)
        return ctx

    async def secret_for(self, provider: str, secret_ref: str | None) -> str | None:
        if secret_ref is None:
            return None
        if provider not in self._secrets:
            secret = await self.port.vault.aget(secret_ref)
            self._secrets[provider] = secret.reveal() if secret else None
            if secret is not None:  # not loaded at reload (the vault was locked then)
                self._vault_secrets.append((provider_label(provider), secret.reveal()))
                self.scrubber = self._build_scrubber()
        return self._secrets[provider]

    async def gateway_token_for(self, provider: ProviderRecord) -> str | None:
        """The token of the authenticated gateway in front of ``provider`` (Cloudflare AI
        Gateway's ``cf-aig-authorization``); None for an open gateway or any other kind."""
        if provider_kind(provider.kind).gateway is None:
            return None
        name = provider.name
        if name not in self._gateway_tokens:  # the vault was locked at reload
            secret = await self.port.vault.aget(gateway_secret_name(name))
            self._gateway_tokens[name] = secret.reveal() if secret else None
            if secret is not None:
                self._vault_secrets.append((gateway_label(name), secret.reveal()))
                self.scrubber = self._build_scrubber()
        return self._gateway_tokens[name]
