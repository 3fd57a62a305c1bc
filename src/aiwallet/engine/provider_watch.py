"""What the provider side needs the user's attention for, looked at on a timer.

* Balances: every ``balance_refresh_min`` minutes, each provider that publishes one is read
  (upstreams/balance.py); ``balance.changed`` carries them all, and ``balance.low`` fires once
  when what is left falls below ``low_balance_usd`` (again only after it rose above it).
* Key age: once a day, ``provider.key_old`` for each key stored more than
  ``key_rotation_days`` ago (the threat model asks for rotation).
* OpenRouter's own price list: refreshed when older than a day, where an OpenRouter
  provider is set up (a broken list changes nothing).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from aiwallet.catalog_files import atomic_write, openrouter_prices_age_s
from aiwallet.domain.errors import CatalogError
from aiwallet.domain.money import usd_to_nano
from aiwallet.domain.providers import Balance, key_age_days, rotation_due
from aiwallet.engine.events import EventBus
from aiwallet.engine.periodic import Periodic
from aiwallet.engine.state import EngineState
from aiwallet.preferences import BALANCE_REFRESH_MIN, KEY_ROTATION_DAYS, LOW_BALANCE_USD
from aiwallet.preferences import read as read_pref
from aiwallet.upstreams.balance import read_balances
from aiwallet.upstreams.openrouter_api import fetch_price_list

log = logging.getLogger(__name__)

DAY_S = 86_400.0
TICK_S = 60.0


class ProviderWatch(Periodic):
    """Looks every ``tick_s`` at what is due: balances, key age, the price list."""

    what = "looking at the providers' balances and keys"

    def __init__(self, state: EngineState, events: EventBus, tick_s: float = TICK_S) -> None:
        super().__init__()
        self.state = state
        self.events = events
        self.interval_s = tick_s
        self.balances: list[Balance] = []
        self._low: set[str] = set()  # providers reported low (re-armed once above again)
        self._next_balances = 0.0
        self._next_age = 0.0
        self._next_prices = 0.0

    def poke(self) -> None:
        """Read the balances now (a provider was added or changed)."""
        self._next_balances = 0.0
        super().poke()

    async def tick(self, poked: bool) -> None:
        await self.run_once()

    async def run_once(self, *, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if now >= self._next_balances:
            minutes = await self.state.db(lambda: read_pref(
                self.state.port.settings.get(BALANCE_REFRESH_MIN.key), BALANCE_REFRESH_MIN
            ))  # fmt: skip
            self._next_balances = now + 60.0 * minutes
            await self.read_balances()
        if now >= self._next_age:
            self._next_age = now + DAY_S
            await self.check_key_age()
        if now >= self._next_prices:
            self._next_prices = now + DAY_S
            await self.refresh_prices()

    async def read_balances(self) -> list[Balance]:
        p = self.state.port
        records = await self.state.db(p.providers.list)
        found = await read_balances(p.vault, records)
        self.balances = found
        low_usd = await self.state.db(
            lambda: read_pref(p.settings.get(LOW_BALANCE_USD.key), LOW_BALANCE_USD)
        )
        threshold = usd_to_nano(low_usd) if low_usd else None
        self.events.emit("balance.changed", {"balances": [b.to_json() for b in found]})
        for b in found:
            left = b.left_nano
            if threshold is None or left is None or left >= threshold:
                self._low.discard(b.provider)
                continue
            if b.provider not in self._low:
                self._low.add(b.provider)
                self.events.emit(
                    "balance.low",
                    {"provider": b.provider, "left_nano": left, "threshold_nano": threshold},
                )
        return found

    async def check_key_age(self) -> list[str]:
        p = self.state.port
        records = await self.state.db(p.providers.list)
        days = await self.state.db(
            lambda: read_pref(p.settings.get(KEY_ROTATION_DAYS.key), KEY_ROTATION_DAYS)
        )
        now = datetime.now(UTC)
        old = []
        for r in records:
            age = key_age_days(r.key_set_at, now)
            if rotation_due(age, days):
                old.append(r.name)
                self.events.emit(
                    "provider.key_old", {"provider": r.name, "age_days": age, "after_days": days}
                )
        return old

    async def refresh_prices(self) -> int | None:
        """OpenRouter's price list, when an OpenRouter provider exists and the cached list is
        missing or over a day old; the number of priced models, or None if not refreshed."""
        p = self.state.port
        records = [r for r in await self.state.db(p.providers.list) if r.kind == "openrouter"]
        if not records:
            return None
        dest = p.data_dir.openrouter_models
        age = openrouter_prices_age_s(dest, time.time())
        if age is not None and age < DAY_S:
            return None
        record = records[0]
        secret = await p.vault.aget(record.secret_ref) if record.secret_ref else None
        try:
            raw, rows = await fetch_price_list(record.base_url, secret.reveal() if secret else None)
        except CatalogError as exc:
            log.warning("OpenRouter's price list was not refreshed: %s", exc)
            return None
        await self.state.db(atomic_write, dest, raw)
        await self.state.reload()  # the router prices by it from now on
        return len(rows)
