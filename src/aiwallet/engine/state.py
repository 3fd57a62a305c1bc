"""What the engine keeps in memory between requests, and how it is refreshed.

App look-ups, the router and provider keys are cached; any change made through the admin
API (or announced to it by the CLI) clears them at once, and app entries also expire after
a second, so a change written straight to a shared database is obeyed within one second.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection

from aiwallet.domain.appkeys import hash_app_key
from aiwallet.engine.routing import Router
from aiwallet.engine.writer import BatchWriter
from aiwallet.store.apps import AppRecord, GrantRecord
from aiwallet.store.records import Budget

if TYPE_CHECKING:
    from aiwallet.service import Wallet

T = TypeVar("T")
APP_TTL_S = 1.0
PAUSED_SETTING = "paused"
ORIGINS_SETTING = "allowed_origins"


@dataclass(frozen=True, slots=True)
class AppContext:
    app: AppRecord
    grant: GrantRecord | None
    budgets: tuple[Budget, ...]

    @property
    def budget_ids(self) -> tuple[int, ...]:
        return tuple(b.id for b in self.budgets)


class EngineState:
    def __init__(self, wallet: Wallet, db_workers: int = 4) -> None:
        self.wallet = wallet
        self.budgets = wallet.budgets
        self.requests = wallet.requests
        self.db_pool = ThreadPoolExecutor(max_workers=db_workers, thread_name_prefix="aiwallet-db")
        self.writer = BatchWriter(wallet.db, wallet.budgets.hot)
        self._apps: dict[str, tuple[float, AppContext | None]] = {}
        self._secrets: dict[str, str | None] = {}
        self._loading: dict[str, asyncio.Future[AppContext | None]] = {}
        self.router = Router([], wallet.catalog)
        self.paused = False
        self.timezone = wallet.timezone
        self.allowed_origins: frozenset[str] = frozenset()
        self.generation = 0

    async def db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking store work off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.db_pool, fn, *args)

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run a store write in the writer's next transaction (group commit)."""
        return await self.writer.submit(fn)

    def reload_blocking(self) -> None:
        w = self.wallet
        self.router = Router(w.providers.list(), w.catalog)
        self.paused = bool(w.settings.get(PAUSED_SETTING, False))
        self.timezone = w.timezone
        self.allowed_origins = frozenset(w.settings.get(ORIGINS_SETTING, []) or [])
        self._apps.clear()
        self._secrets.clear()
        self.generation += 1

    async def reload(self) -> None:
        await self.db(self.reload_blocking)

    def _load_app(self, key_hash: str) -> AppContext | None:
        app = self.wallet.apps.by_key_hash(key_hash)
        return None if app is None else self._context(app)

    def _load_app_by_id(self, app_id: int) -> AppContext | None:
        app = self.wallet.apps.by_id(app_id)
        return None if app is None else self._context(app)

    async def app_by_id(self, app_id: int) -> AppContext | None:
        """An app's context by id (session tokens); cached like key look-ups."""
        cache_key = f"id:{app_id}"
        now = time.monotonic()
        hit = self._apps.get(cache_key)
        if hit is not None and now - hit[0] < APP_TTL_S:
            return hit[1]
        ctx = await self.db(self._load_app_by_id, app_id)
        self._apps[cache_key] = (now, ctx)
        return ctx

    def _context(self, app: AppRecord) -> AppContext:
        grant = self.wallet.apps.grant(app.id)
        budgets = tuple(self.wallet.budgets.applicable(app.id))
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
            secret = await self.wallet.vault.aget(secret_ref)
            self._secrets[provider] = secret.reveal() if secret else None
        return self._secrets[provider]

    def close(self) -> None:
        self.db_pool.shutdown(wait=True)
        self.writer.close()
