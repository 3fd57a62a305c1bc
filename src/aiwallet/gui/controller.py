"""The GUI's handle on the wallet and its engine.

Blocking :class:`~aiwallet.service.Wallet` calls run on a small worker pool and are awaited
on the GUI's qasync loop; consent answers run on the engine's loop
(``run_coroutine_threadsafe``). Engine events arrive through :class:`EngineBridge` and are
turned into a few signals; "data changed" is coalesced by a timer, so a burst of a thousand
requests causes a handful of redraws, not a thousand.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from PySide6.QtCore import QObject, QTimer, Signal

from aiwallet.domain.errors import WalletError
from aiwallet.domain.money import format_usd
from aiwallet.domain.providers import KINDS, Balance
from aiwallet.domain.windows import describe_until
from aiwallet.gui import texts
from aiwallet.gui.bridge import EngineBridge, dispatch
from aiwallet.gui.provider_view import balance_of, days, money
from aiwallet.gui.solana_view import SolanaReading, payment_notice, read_solana
from aiwallet.preferences import NOTIFY_THRESHOLDS, NOTIFY_UPSTREAM, PORT
from aiwallet.service import Wallet
from aiwallet.summaries import AppSummary, app_summaries

if TYPE_CHECKING:
    from aiwallet.engine.server import Engine

log = logging.getLogger(__name__)
T = TypeVar("T")
REDRAW_MS = 400
BALANCE_TTL_S = 300.0  # provider balances are re-read at most every five minutes
SOLANA_TTL_S = 60.0  # the Solana wallet's balances and routers' credit: at most a minute old
KEY_OLD_TOLD = "gui.key_old_told"  # a setting: provider -> the day its reminder was shown
SOLANA_REREADS = 3  # a read overtaken by a change is read again, this many times at most


class Controller(QObject):
    consent_requested = Signal(dict)
    consent_closed = Signal(str, str)  # request id, its state
    data_changed = Signal()
    paused_changed = Signal(bool)
    engine_changed = Signal()
    notice = Signal(str, str, str)  # kind, title, text
    failed = Signal(str)  # an action failed: what to tell the user
    totals_changed = Signal()  # today's spend (tray tooltip) was re-read
    solana_changed = Signal()  # the Solana wallet's balances (and routers' credit) were re-read
    balances_changed = Signal()  # providers' balances were read (here or by the engine)

    def __init__(self, wallet: Wallet, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.wallet = wallet
        self.engine: Engine | None = None
        self.health: dict[str, dict[str, Any]] = {}  # provider → its breaker (engine events)
        self.engine_error: str | None = None
        self.paused = False
        self.pending: dict[str, dict[str, Any]] = {}
        self.recent_prompts: deque[dict[str, Any]] = deque(maxlen=8)
        self.today_nano = 0
        self.balances: dict[str, Balance] = {}
        self._balances_for: tuple[str, ...] | None = None
        self._balances_at = 0.0
        self._balances_gen = 0  # balances shown so far: a read overtaken by newer is dropped
        self.solana: SolanaReading | None = None
        self._solana_stale = True
        self._solana_read: asyncio.Task[SolanaReading] | None = None
        self._solana_gen = 0  # changes told (solana_changed_here)
        self._solana_read_gen = 0  # the change the read under way began after
        self._pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="aiwallet-gui")
        self._bridge = EngineBridge(self)
        self._bridge.engine_event.connect(self._on_event)
        self._redraw = QTimer(self)
        self._redraw.setSingleShot(True)
        self._redraw.setInterval(REDRAW_MS)
        self._redraw.timeout.connect(self._flush)
        self._budget_levels: dict[tuple[int, str], int] = {}
        self._levels_primed = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop_hooks: list[Callable[[], None]] = []  # e.g. a sign-in's cancel
        self._key_old_told: dict[str, str] = {}  # provider -> the day its reminder was shown
        self.closed = False

    # -- running work -----------------------------------------------------------------------
    async def run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run a blocking call on the worker pool; await it on the GUI loop."""
        if self.closed:
            raise asyncio.CancelledError
        loop = asyncio.get_event_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kw))

    async def on_engine(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the engine's loop and await its result here."""
        if self.engine is None or self.engine.loop is None:
            coro.close()
            raise WalletError(self.engine_error or "the engine is not running")
        future = asyncio.run_coroutine_threadsafe(coro, self.engine.loop)
        return await asyncio.wrap_future(future)

    def spawn(self, coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        """Run a GUI-side coroutine; a failure is reported, never raised into Qt."""

        async def guarded() -> None:
            try:
                await coro
            except asyncio.CancelledError:
                return
            except Exception:
                if self.closed:  # shutting down: nobody is left to tell
                    return
                raise

        async def reported() -> None:
            try:
                await guarded()
            except WalletError as exc:  # the wallet's or the engine's words, for people
                self.failed.emit(f"{what}: {exc}")
            except Exception as exc:
                log.exception("%s failed", what)
                self.failed.emit(f"{what} failed ({type(exc).__name__}); see the log")

        if self.closed:
            coro.close()
            return asyncio.ensure_future(asyncio.sleep(0))
        task = asyncio.ensure_future(reported())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        # a task cancelled before its first step never started ``coro``: close it (no
        # "never awaited" warning; a started one has finished by now, and close is a no-op)
        task.add_done_callback(lambda _: coro.close())
        return task

    # -- balances -------------------------------------------------------------------------------
    def balances_stale(self, providers: list[Any]) -> bool:
        names = tuple(sorted(f"{p.name}:{p.key_hint}" for p in providers))
        return names != self._balances_for or time.monotonic() - self._balances_at > BALANCE_TTL_S

    async def load_balances(self) -> None:
        """Ask the providers that publish a balance (network: on a worker thread)."""
        wallet = self.wallet
        providers = await self.run(wallet.list_providers)
        self._balances_for = tuple(sorted(f"{p.name}:{p.key_hint}" for p in providers))
        self._balances_at = time.monotonic()
        began = self._balances_gen
        found = await self.run(lambda: asyncio.run(wallet.provider_balances()))
        if began != self._balances_gen:  # the engine told newer ones meanwhile: keep those
            return
        self._set_balances(found)

    def _set_balances(self, found: list[Balance]) -> None:
        self.balances = {b.provider: b for b in found}
        self._balances_gen += 1
        self.balances_changed.emit()

    def solana_stale(self) -> bool:
        """Whether the Solana balances should be read again: never read, a minute old, or a
        payment, a new key or another network since."""
        reading = self.solana
        return self._solana_stale or reading is None or time.monotonic() - reading.at > SOLANA_TTL_S

    def solana_changed_here(self) -> None:
        """A key, a network or a payment changed what the chain would say: read it again (a
        read already under way is not shown: it may have started before the change)."""
        self._solana_stale = True
        self._solana_gen += 1

    async def load_solana(self) -> SolanaReading:
        """Read the Solana wallet's balances and the prepaid routers' credit on a worker
        thread (RPC and HTTP, never on the GUI thread); reads asked while one runs share it.
        A read that began before the last change is read again (a few times at most), so an
        older reading never replaces what a payment or a top-up just told."""
        reading: SolanaReading | None = None
        for _ in range(SOLANA_REREADS):
            if self._solana_read is None or self._solana_read.done():
                self._solana_stale = False
                task = asyncio.ensure_future(self.run(read_solana, self.wallet))
                self._tasks.add(task)  # cancelled by stop() like every other
                task.add_done_callback(self._tasks.discard)
                self._solana_read, self._solana_read_gen = task, self._solana_gen
            began = self._solana_read_gen
            reading = await asyncio.shield(self._solana_read)
            if began == self._solana_gen:
                break
        assert reading is not None
        if self.solana is None or reading.at > self.solana.at:  # each reading shown once
            self.solana = reading
            self.solana_changed.emit()
        return reading

    # -- engine lifecycle -------------------------------------------------------------------
    async def start_engine(self, port: int | None = None, **engine_kw: Any) -> None:
        """Unlock the vault and start the engine on its own thread (off the GUI thread)."""
        wallet = self.wallet
        try:
            if port is None:
                port = int(await self.run(lambda: wallet.pref(PORT)))
            await self.run(wallet.unlock_vault)
            engine = wallet.new_engine(port=port, **engine_kw)
            self._bridge.attach(engine.events.subscribe)
            await self.run(engine.start)
        except (OSError, WalletError) as exc:
            self._bridge.detach()
            self.engine_error = (
                f"port {port} is in use (is another aiwallet running?)"
                if isinstance(exc, OSError) and "address already in use" in str(exc).lower()
                else str(exc)
            )
            self.engine_changed.emit()
            return
        self.engine, self.engine_error = engine, None
        self.paused = engine.state.paused
        for req in await self.on_engine(self._pending_now()):
            self._consent_requested(req)
        self.engine_changed.emit()
        self.paused_changed.emit(self.paused)
        self.mark_dirty()

    async def _pending_now(self) -> list[dict[str, Any]]:
        assert self.engine is not None and self.engine.consent is not None
        return [r.to_json() for r in self.engine.consent.pending()]

    def on_stop(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Call ``hook`` first thing in :meth:`stop` (a worker blocked on something outside,
        such as a browser sign-in, is let go so the pool can end); returns its removal."""
        self._stop_hooks.append(hook)

        def remove() -> None:
            if hook in self._stop_hooks:
                self._stop_hooks.remove(hook)

        return remove

    def stop(self) -> None:
        """Stop the engine (waits for its in-flight settlements) and the worker pool."""
        self.closed = True
        for hook in list(self._stop_hooks):
            try:
                hook()
            except Exception:
                log.exception("a stop hook failed")
        self._bridge.detach()
        self._redraw.stop()
        for task in list(self._tasks):
            task.cancel()
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        self._pool.shutdown(wait=True, cancel_futures=True)

    @property
    def url(self) -> str:
        if self.engine is not None:
            return self.engine.url
        return f"http://127.0.0.1:{self.wallet.pref(PORT)}"

    # -- events from the engine ------------------------------------------------------------
    def _on_event(self, name: str, payload: dict[str, Any]) -> None:
        dispatch(self, name, payload)

    def on_event_consent_requested(self, payload: dict[str, Any]) -> None:
        self._consent_requested(payload)

    def _consent_requested(self, payload: dict[str, Any]) -> None:
        if payload.get("state", "pending") != "pending" or payload["id"] in self.pending:
            return
        self.pending[payload["id"]] = payload
        self.recent_prompts.appendleft({**payload, "outcome": "pending"})
        self.consent_requested.emit(payload)

    def on_event_consent_answered(self, payload: dict[str, Any]) -> None:
        self._consent_closed(payload["id"], payload["state"])
        self.mark_dirty()

    def on_event_consent_cancelled(self, payload: dict[str, Any]) -> None:
        self._consent_closed(payload["id"], payload["state"])

    def on_event_consent_ended(self, payload: dict[str, Any]) -> None:
        """An "until it exits" grant ended with its process: its app is now revoked."""
        self.mark_dirty()

    def _consent_closed(self, req_id: str, state: str) -> None:
        self.pending.pop(req_id, None)
        for item in self.recent_prompts:
            if item["id"] == req_id:
                item["outcome"] = state
        self.consent_closed.emit(req_id, state)

    def on_event_request_logged(self, payload: dict[str, Any]) -> None:
        self.mark_dirty()
        if payload.get("error_code") == "budget_exceeded":
            self.spawn(self._budget_refused(payload.get("app_id")), "Notification")

    async def _budget_refused(self, app_id: int | None) -> None:
        """An app was stopped by a budget: that is "reaching 100 %" even when the last
        cents are too few for one more request."""
        wallet = self.wallet
        apps = await self.run(app_summaries, wallet)
        app = next((a for a in apps if a.id == app_id), None)
        if app is None:
            return
        b = app.budget
        if b is not None:
            key = (app.id, b.reset_at.isoformat() if b.reset_at else "total")
            if self._budget_levels.get(key, 0) >= 100:
                return
            self._budget_levels[key] = 100
            text = texts.NOTIFY_BUDGET_FULL.format(
                app=app.name,
                budget=b.spec.describe(),
                reset=describe_until(datetime.now(UTC), b.reset_at).removeprefix("resets "),
            )
        else:
            text = texts.NOTIFY_WALLET_FULL.format(app=app.name)
        self.notice.emit("budget100", f"Budget: {app.name}", text)

    def on_event_engine_reloaded(self, payload: dict[str, Any]) -> None:
        paused = bool(payload.get("paused"))
        if paused != self.paused:
            self.paused = paused
            self.paused_changed.emit(paused)
            self.notice.emit(
                "paused",
                texts.NOTIFY_PAUSED if paused else texts.NOTIFY_RESUMED,
                texts.PAUSED_BANNER if paused else "",
            )
        self.mark_dirty()

    def on_event_upstream_failed(self, payload: dict[str, Any]) -> None:
        self.spawn(self._upstream_failed(payload), "Notification")

    async def _upstream_failed(self, payload: dict[str, Any]) -> None:
        if await self.run(self.wallet.pref, NOTIFY_UPSTREAM):
            text = texts.NOTIFY_UPSTREAM.format(
                provider=payload.get("provider"), code=payload.get("code")
            )
            self.notice.emit("upstream", "A provider is failing", text)

    def on_event_request_over_reserved(self, payload: dict[str, Any]) -> None:
        """A provider billed beyond a request's own bound: always said (money went past a
        reservation the user's budget was counting on)."""
        text = texts.NOTIFY_OVER_RESERVED.format(
            provider=payload.get("provider"),
            cost=format_usd(int(payload.get("cost_nano") or 0), places=None),
            reserved=format_usd(int(payload.get("reserved_nano") or 0), places=None),
        )
        self.notice.emit("over_reserved", "A provider billed more than allowed", text)

    def on_event_payment_settled(self, payload: dict[str, Any]) -> None:
        self._payment_event("payment.settled", payload)

    def on_event_payment_unconfirmed(self, payload: dict[str, Any]) -> None:
        self._payment_event("payment.unconfirmed", payload)

    def on_event_payment_failed(self, payload: dict[str, Any]) -> None:
        self._payment_event("payment.failed", payload)

    def on_event_payment_held(self, payload: dict[str, Any]) -> None:
        """The router said it did not settle: not billed, the amount held until the chain
        tells (said now, as a failure the user should know of)."""
        self._payment_event("payment.held", payload)

    def _payment_event(self, name: str, payload: dict[str, Any]) -> None:
        """An x402 payment ended (or the chain told its fate): say so, and re-read the wallet's
        balances and the pages that show payments."""
        self.solana_changed_here()
        notice = payment_notice(name, payload)
        if notice is not None:
            self.notice.emit(*notice)
        self.mark_dirty()

    # -- providers: balances, key age, per-app keys -----------------------------------------
    def on_event_balance_changed(self, payload: dict[str, Any]) -> None:
        """The engine read the balances on its timer: show them without reading again."""
        items = payload.get("balances") or []
        self._balances_at = time.monotonic()
        self._set_balances([balance_of(i) for i in items if isinstance(i, dict)])

    def on_event_balance_low(self, payload: dict[str, Any]) -> None:
        provider = str(payload.get("provider"))
        self.notice.emit(
            f"balance_low:{provider}",
            texts.NOTIFY_BALANCE_LOW_TITLE.format(provider=provider),
            texts.NOTIFY_BALANCE_LOW.format(
                provider=provider,
                left=money(int(payload.get("left_nano") or 0)),
                threshold=money(int(payload.get("threshold_nano") or 0)),
            ),
        )

    def on_event_provider_key_old(self, payload: dict[str, Any]) -> None:
        self.spawn(self._key_old(payload), "Notification")

    async def _key_old(self, payload: dict[str, Any]) -> None:
        """At most once a day per provider, over restarts too (the day is kept in settings)."""
        provider = str(payload.get("provider"))
        today = datetime.now(UTC).astimezone().date().isoformat()
        settings = self.wallet.settings

        def first_today() -> bool:
            told = settings.get(KEY_OLD_TOLD)
            told = dict(told) if isinstance(told, dict) else {}
            if told.get(provider) == today:
                return False
            told[provider] = today
            settings.set(KEY_OLD_TOLD, told, audit=False)
            return True

        if self._key_old_told.get(provider) == today or not await self.run(first_today):
            return
        self._key_old_told[provider] = today
        self.notice.emit(
            f"key_old:{provider}",
            texts.NOTIFY_KEY_OLD_TITLE.format(provider=provider),
            texts.NOTIFY_KEY_OLD.format(
                provider=provider,
                age=payload.get("age_days"),
                after=days(int(payload.get("after_days") or 0)),
            ),
        )

    def on_event_provider_breaker(self, payload: dict[str, Any]) -> None:
        """A provider's circuit breaker changed: the Providers page shows it, and an opened
        one is told."""
        provider = str(payload.get("provider"))
        self.health[provider] = dict(payload)
        self.mark_dirty()
        if payload.get("state") != "open":
            return
        at = payload.get("retry_at")
        when = (
            datetime.fromisoformat(at).astimezone().strftime("%H:%M:%S")
            if isinstance(at, str)
            else "later"
        )
        self.notice.emit(
            f"breaker:{provider}",
            texts.NOTIFY_BREAKER_TITLE.format(provider=provider),
            texts.NOTIFY_BREAKER.format(
                provider=provider, failures=payload.get("failures"), at=when
            ),
        )

    def load_health(self) -> list[dict[str, Any]]:
        """Each provider's breaker as the engine has it (blocking: call it in a worker)."""
        engine = self.engine
        found = engine.provider_health() if engine is not None else []
        self.health = {str(h.get("provider")): dict(h) for h in found}
        return found

    def on_event_provider_limit_reached(self, payload: dict[str, Any]) -> None:
        self.mark_dirty()
        self.spawn(self._limit_reached(payload), "Notification")

    async def _limit_reached(self, payload: dict[str, Any]) -> None:
        provider = str(payload.get("provider"))
        app, label = await self.run(self._names, payload.get("app_id"), provider)
        self.notice.emit(
            f"provider_limit:{provider}:{app}",
            texts.NOTIFY_LIMIT_REACHED_TITLE.format(label=label, app=app),
            texts.NOTIFY_LIMIT_REACHED.format(label=label, app=app),
        )

    def on_event_subkey_problem(self, payload: dict[str, Any]) -> None:
        self.mark_dirty()
        self.spawn(self._subkey_problem(payload), "Notification")

    async def _subkey_problem(self, payload: dict[str, Any]) -> None:
        provider = str(payload.get("provider"))
        app, _label = await self.run(self._names, payload.get("app_id"), provider)
        self.notice.emit(
            f"subkey_problem:{provider}",
            texts.NOTIFY_SUBKEY_PROBLEM_TITLE.format(app=app, provider=provider),
            texts.NOTIFY_SUBKEY_PROBLEM.format(problem=payload.get("problem") or "unknown"),
        )

    def on_event_subkey_created(self, payload: dict[str, Any]) -> None:
        self.mark_dirty()

    def _names(self, app_id: Any, provider: str) -> tuple[str, str]:
        """An app's name (by id) and a provider's kind label, for a notice."""
        app = self.wallet.apps.by_id(app_id) if isinstance(app_id, int) else None
        record = self.wallet.providers.find(provider)
        kind = KINDS.get(record.kind) if record is not None else None
        return (app.name if app is not None else f"app {app_id}"), (
            kind.label if kind is not None else provider
        )

    # -- redraws ------------------------------------------------------------------------------
    def mark_dirty(self) -> None:
        """Something changed: pages reload once the timer fires (coalesced)."""
        if not self._redraw.isActive():
            self._redraw.start()

    def _flush(self) -> None:
        if self.closed:  # a redraw timer that fires during shutdown: the loop may be gone
            return
        self.data_changed.emit()
        self.spawn(self._check_budgets(), "Budget check")

    async def _check_budgets(self) -> None:
        """Notify when an app's spend crosses a threshold (80 % and 100 % by default), once
        per app, threshold and budget window."""
        wallet = self.wallet
        apps, thresholds, today = await self.run(self._budget_facts, wallet)
        self.today_nano = today
        self.totals_changed.emit()
        now = datetime.now(UTC)
        for app in apps:
            b = app.budget
            if b is None:
                continue
            window = b.reset_at.isoformat() if b.reset_at else "total"
            pct = (b.spent_nano * 100) // b.spec.amount_nano if b.spec.amount_nano else 100
            level = max((t for t in thresholds if pct >= t), default=0)
            key = (app.id, window)
            before = self._budget_levels.get(key, 0)
            self._budget_levels[key] = max(level, before)
            if not self._levels_primed or level <= before:
                continue
            if level >= 100:
                text = texts.NOTIFY_BUDGET_FULL.format(
                    app=app.name,
                    budget=b.spec.describe(),
                    reset=describe_until(now, b.reset_at).removeprefix("resets "),
                )
            else:
                text = texts.NOTIFY_BUDGET.format(
                    app=app.name,
                    pct=level,
                    spent=format_usd(b.spent_nano),
                    budget=b.spec.describe(),
                )
            self.notice.emit(f"budget{min(level, 100)}", f"Budget: {app.name}", text)
        self._levels_primed = True

    @staticmethod
    def _budget_facts(wallet: Wallet) -> tuple[list[AppSummary], tuple[int, ...], int]:
        from aiwallet.summaries import overview

        return app_summaries(wallet), wallet.pref(NOTIFY_THRESHOLDS), overview(wallet).today_nano

    # -- user actions ---------------------------------------------------------------------------
    async def approve(
        self,
        req_id: str,
        *,
        budget: str | None,
        models: list[str] | None,
        lifetime_s: int | None,
        once: bool,
        scope: str = "script",
        duration: str | None = None,
    ) -> dict[str, Any]:
        assert self.engine is not None
        consent = self.engine.consent
        assert consent is not None
        req = await self.on_engine(
            consent.approve(
                req_id, budget=budget, models=models, lifetime_s=lifetime_s, once=once,
                scope=scope, duration=duration,
            )
        )  # fmt: skip
        return req.to_json()

    async def pay(self, req_id: str, *, always: bool) -> dict[str, Any]:
        """Let an x402 payment through: this once, or every later one to this payee."""
        return await self.approve(
            req_id, budget=None, models=None, lifetime_s=None, once=False,
            duration="always" if always else "once",
        )  # fmt: skip

    async def deny(self, req_id: str, *, always: bool = False, scope: str = "script") -> None:
        assert self.engine is not None
        consent = self.engine.consent
        assert consent is not None
        try:
            await self.on_engine(consent.deny(req_id, always=always, scope=scope))
        except WalletError as exc:
            if "already" not in str(exc):  # expired or withdrawn meanwhile: nothing to deny
                raise

    async def set_paused(self, paused: bool) -> None:
        await self.run(self.wallet.set_paused, paused)
        if self.engine is not None:
            await self.on_engine(self.engine.reload())
