"""Per-app provider keys: a second budget layer that the provider itself enforces.

With a provider's management key in the vault (OpenRouter: ``aiwallet providers subkeys
NAME --management-key-env VAR``), the engine keeps one provider key per app, capped at the
app's budget and reset with its period, disabled while the app or the wallet is paused or the
app revoked, deleted with the app; that app's requests to the provider go with its own key
(:meth:`EngineState.key_for`). Even if the wallet's own accounting were wrong, the provider
would refuse a request past the app's budget.

:class:`SubKeyKeeper` carries the plan of ``domain/subkeys.py`` out after each reload (a
change of budget, pause, revoke or a new app) and every ``interval_s``, when it also reads
each key's use from the provider. A key is made the first time an app needs one if the
keeper has not made it yet. A failure is kept beside the key (``problem``) and emitted as
``subkey.problem``; nothing is retried in a loop faster than the interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from aiwallet.domain.money import BudgetSpec
from aiwallet.domain.subkeys import Have, Step, Wanted, plan, subkey_ref, wanted_for
from aiwallet.engine.events import EventBus
from aiwallet.engine.periodic import Periodic
from aiwallet.engine.state import EngineState
from aiwallet.store.providers import ProviderRecord
from aiwallet.store.subkeys import SubKey
from aiwallet.upstreams.openrouter_api import ManagementClient, OpenRouterError
from aiwallet.vault import key_hint

log = logging.getLogger(__name__)

MAKE_WAIT_S = 20.0  # how long a request waits for its app's key to be made


def key_name(app_name: str) -> str:
    return f"aiwallet: {app_name}"[:100]


@dataclass
class SyncRound:
    created: list[tuple[str, int]] = field(default_factory=list)
    updated: list[tuple[str, int]] = field(default_factory=list)
    deleted: list[tuple[str, int]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _World:
    """What the plan is made from, read in one go off the loop."""

    wanted: dict[str, list[Wanted]]  # by provider
    have: dict[str, list[SubKey]]


class SubKeyKeeper(Periodic):
    """Poked after every reload (a budget, pause or app changed); on the timer it also reads
    each key's use from the provider."""

    what = "bringing the per-app provider keys in line"

    def __init__(self, state: EngineState, events: EventBus, interval_s: float = 300.0) -> None:
        super().__init__()
        self.state = state
        self.events = events
        self.interval_s = interval_s
        self._lock = asyncio.Lock()
        self.last: SyncRound | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> None:
        super().start()
        self.state.make_subkey = self.make_for

    async def stop(self) -> None:
        self.state.make_subkey = None
        await super().stop()

    async def tick(self, poked: bool) -> None:
        await self.sync(read_usage=not poked)

    # -- the plan -------------------------------------------------------------------------------
    def _world(self) -> _World:
        p = self.state.port
        managed = [r for r in p.providers.list() if r.name in self.state.subkey_managers]
        paused = p.paused()
        wanted: dict[str, list[Wanted]] = {}
        have: dict[str, list[SubKey]] = {}
        apps = p.apps.list()
        specs: dict[int, BudgetSpec | None] = {}
        for app in apps:
            b = p.budgets.app_budget(app.id)
            specs[app.id] = BudgetSpec(b.amount_nano, b.period) if b is not None else None
        for record in managed:
            wanted[record.name] = [
                wanted_for(
                    a.id,
                    a.name,
                    specs[a.id],
                    paused=a.paused,
                    revoked=a.revoked_at is not None,
                    wallet_paused=paused,
                )
                for a in apps
            ]
            have[record.name] = p.subkeys.list(record.name)
        return _World(wanted, have)

    async def sync(self, *, read_usage: bool = False, only_app: int | None = None) -> SyncRound:
        """One pass: every managed provider's keys made, changed or deleted to match the
        apps; with ``read_usage`` each key's use read from the provider too."""
        async with self._lock:
            done = SyncRound()
            if not self.state.subkey_managers:
                self.last = done
                return done
            world = await self.state.db(self._world)
            for provider, wanted in world.wanted.items():
                record = self.state.router.by_name.get(provider)
                manager_key = self.state.subkey_managers.get(provider)
                if record is None or manager_key is None:
                    continue
                client = ManagementClient(record[0].base_url, manager_key)
                have = {s.app_id: s for s in world.have.get(provider, [])}
                steps = plan(
                    [w for w in wanted if only_app is None or w.app_id == only_app],
                    [
                        Have(s.app_id, s.limit_nano, s.limit_reset, s.disabled)
                        for s in have.values()
                        if only_app is None or s.app_id == only_app
                    ],
                )
                for step in steps:
                    await self._carry_out(client, record[0], step, have.get(step.app_id), done)
                if read_usage:
                    await self._read_usage(client, provider, done)
            self.last = done
            return done

    async def _carry_out(
        self,
        client: ManagementClient,
        provider: ProviderRecord,
        step: Step,
        sub: SubKey | None,
        done: SyncRound,
    ) -> None:
        name, p = provider.name, self.state.port
        try:
            if step.action == "create":
                assert step.wanted is not None
                await self._create(client, provider, step.wanted)
                done.created.append((name, step.app_id))
            elif step.action == "update":
                assert step.wanted is not None and sub is not None
                w = step.wanted
                figures = await client.update(
                    sub.key_id, limit_nano=w.limit_nano, limit_reset=w.limit_reset,
                    disabled=w.disabled,
                )  # fmt: skip
                await self.state.db(
                    lambda: p.subkeys.set_state(
                        sub, limit_nano=w.limit_nano, limit_reset=w.limit_reset,
                        disabled=w.disabled, usage=figures.usage_json(),
                    )
                )  # fmt: skip
                done.updated.append((name, step.app_id))
            else:
                assert sub is not None
                await client.delete(sub.key_id)
                await p.vault.adelete(sub.secret_ref)
                await self.state.db(p.subkeys.remove, sub)
                self.state.forget_subkey(name, sub.app_id)
                done.deleted.append((name, step.app_id))
        except OpenRouterError as exc:
            problem = f"{step.action} failed: {exc}"
            done.problems.append(f"{name}: app {step.app_id}: {problem}")
            log.warning("per-app key of app %s at %s: %s", step.app_id, name, problem)
            await self.state.db(p.subkeys.set_problem, name, step.app_id, problem)
            self.events.emit(
                "subkey.problem", {"provider": name, "app_id": step.app_id, "problem": problem}
            )

    async def _create(self, client: ManagementClient, provider: ProviderRecord, w: Wanted) -> None:
        p = self.state.port
        figures, key = await client.create(key_name(w.app_name), w.limit_nano, w.limit_reset)
        ref = subkey_ref(provider.name, w.app_id)
        try:
            await p.vault.aset(ref, key)
        except Exception:
            with contextlib.suppress(OpenRouterError):  # nobody could ever use it
                await client.delete(figures.key_id)
            raise
        if w.disabled:
            figures = await client.update(
                figures.key_id, limit_nano=w.limit_nano, limit_reset=w.limit_reset,
                disabled=True,
            )  # fmt: skip
        await self.state.db(
            lambda: p.subkeys.add(
                provider.name, w.app_id, key_id=figures.key_id, secret_ref=ref,
                key_hint=key_hint(key), limit_nano=w.limit_nano, limit_reset=w.limit_reset,
                disabled=w.disabled, usage=figures.usage_json(),
            )
        )  # fmt: skip
        # recorded first, so that a reload from now on finds it too; then scrubbed from
        # answers and usable by the app's next request
        self.state.learn_subkey(provider.name, w.app_id, key)
        self.events.emit(
            "subkey.created",
            {"provider": provider.name, "app_id": w.app_id, "limit_nano": w.limit_nano,
             "limit_reset": w.limit_reset},
        )  # fmt: skip

    async def _read_usage(self, client: ManagementClient, provider: str, done: SyncRound) -> None:
        p = self.state.port
        for sub in await self.state.db(p.subkeys.list, provider):
            try:
                figures = await client.get(sub.key_id)
            except OpenRouterError as exc:
                done.problems.append(f"{provider}: app {sub.app_id}: reading its use: {exc}")
                await self.state.db(
                    p.subkeys.set_problem, provider, sub.app_id, f"reading its use: {exc}"
                )
                continue
            await self.state.db(p.subkeys.set_usage, sub, figures.usage_json())

    async def make_for(self, provider: str, app_id: int) -> str | None:
        """The key for app ``app_id`` at ``provider``, made now if the keeper has not yet
        (a request of a new app); None if it could not be made in time."""
        known = self.state.subkey_of(provider, app_id)
        if known is not None:
            return known
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.sync(only_app=app_id)), timeout=MAKE_WAIT_S)
        known = self.state.subkey_of(provider, app_id)
        if known is None:  # made, but a reload read the keys before it was recorded
            p = self.state.port
            sub = await self.state.db(p.subkeys.find, provider, app_id)
            secret = await p.vault.aget(sub.secret_ref) if sub is not None else None
            if secret is not None:
                self.state.learn_subkey(provider, app_id, secret.reveal())
                known = secret.reveal()
        return known
