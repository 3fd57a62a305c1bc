"""``Wallet.provider_keys``: per-app provider keys, the second budget layer (engine/subkeys.py
keeps them in line; this is what the user turns on, reads and removes).

Turning them on stores the provider's management key in the vault and marks the provider;
the running engine then makes a capped key per app. Turning them off deletes every per-app
key at the provider first, then the management key. The report puts the provider's figure
for each key beside the wallet's own for the same window (the provider counts in UTC days,
Monday-to-Sunday weeks and calendar months).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiwallet.domain.errors import InvalidInput, NotFound
from aiwallet.domain.subkeys import SUBKEY_KINDS, management_ref
from aiwallet.store.apps import AppRecord
from aiwallet.store.subkeys import SubKey
from aiwallet.upstreams.openrouter_api import ManagementClient, OpenRouterError

if TYPE_CHECKING:
    from aiwallet.service import Wallet

USAGE_FIELD = {"daily": "daily_nano", "weekly": "weekly_nano", "monthly": "monthly_nano"}


def window_start(reset: str | None, now: datetime, since: datetime) -> datetime:
    """Where the provider's current window for a key began (UTC), never before ``since``
    (the key's creation): the same window the wallet's figure is summed over."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if reset == "daily":
        start = day
    elif reset == "weekly":
        start = day - timedelta(days=day.weekday())
    elif reset == "monthly":
        start = day.replace(day=1)
    else:
        start = since
    return max(start, since)


@dataclass(frozen=True, slots=True)
class SubKeyView:
    provider: str
    app: str
    key_hint: str | None
    limit_nano: int | None
    limit_reset: str | None
    disabled: bool
    provider_used_nano: int | None  # what the provider says the key used this window
    wallet_used_nano: int  # what the wallet billed the app at this provider, same window
    remaining_nano: int | None
    window_start: datetime
    synced_at: datetime | None
    problem: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "app": self.app,
            "key_hint": self.key_hint,
            "limit_nano": self.limit_nano,
            "limit_reset": self.limit_reset,
            "disabled": self.disabled,
            "provider_used_nano": self.provider_used_nano,
            "wallet_used_nano": self.wallet_used_nano,
            "remaining_nano": self.remaining_nano,
            "window_start": self.window_start.isoformat(),
            "synced_at": self.synced_at.isoformat() if self.synced_at else None,
            "problem": self.problem,
        }


class ProviderKeys:
    def __init__(self, wallet: Wallet) -> None:
        self.wallet = wallet

    def _provider(self, name: str) -> Any:
        record = self.wallet.providers.get(name)
        if record.kind not in SUBKEY_KINDS:
            raise InvalidInput(
                f"provider {name!r} is a {record.kind} provider; per-app keys need one whose "
                f"API makes capped keys ({', '.join(sorted(SUBKEY_KINDS))})"
            )
        return record

    def enabled(self, name: str) -> bool:
        record = self.wallet.providers.get(name)
        return bool((record.options or {}).get("subkeys"))

    def enable(self, name: str, management_key: str) -> None:
        """Store ``name``'s management key and have the engine make a capped key per app."""
        record = self._provider(name)
        if not management_key.strip():
            raise InvalidInput("the management key is empty")
        self.wallet.vault.set(management_ref(name), management_key.strip())
        self.wallet.providers.set_options(name, {**(record.options or {}), "subkeys": True})
        self.wallet.notify_engine()

    def disable(self, name: str) -> int:
        """Delete every per-app key at the provider, then the management key; the provider's
        own key serves every app again. Returns how many keys were deleted. Nothing is
        changed if the provider cannot be reached (the keys would stay usable there)."""
        record = self._provider(name)
        # the engine stops making keys first, so none is made while these are deleted
        options = {k: v for k, v in (record.options or {}).items() if k != "subkeys"}
        self.wallet.providers.set_options(name, options)
        self.wallet.notify_engine()
        subs = self.wallet.subkeys.list(name)
        try:
            if subs:
                self._delete_remote(record.base_url, name, subs)
        except InvalidInput:
            self.wallet.providers.set_options(name, record.options or {})
            self.wallet.notify_engine()
            raise
        for sub in subs:
            self.wallet.vault.delete(sub.secret_ref)
            self.wallet.subkeys.remove(sub)
        self.wallet.vault.delete(management_ref(name))
        return len(subs)

    def _delete_remote(self, base_url: str, provider: str, subs: list[SubKey]) -> None:
        secret = self.wallet.vault.get(management_ref(provider))
        if secret is None:
            raise NotFound(
                f"provider {provider!r} has no management key in the vault, so its per-app "
                "keys cannot be deleted; delete them at the provider's site"
            )
        client = ManagementClient(base_url, secret.reveal())

        async def run() -> None:
            for sub in subs:
                await client.delete(sub.key_id)

        try:
            asyncio.run(run())
        except OpenRouterError as exc:
            raise InvalidInput(
                f"could not delete the per-app keys at {provider!r}: {exc}; nothing was changed, "
                "try again"
            ) from None

    def remove_app(self, name: str) -> AppRecord:
        """Remove app ``name``: its per-app provider keys deleted at each provider first (so
        none stays usable), then the app, its grant and budget. Its spend stays in the
        ledger."""
        app = self.wallet.apps.get(name)
        subs = [s for s in self.wallet.subkeys.list() if s.app_id == app.id]
        for provider in sorted({s.provider for s in subs}):
            record = self.wallet.providers.get(provider)
            mine = [s for s in subs if s.provider == provider]
            self._delete_remote(record.base_url, provider, mine)
            for sub in mine:
                self.wallet.vault.delete(sub.secret_ref)
        removed = self.wallet.apps.remove(name)
        self.wallet.notify_engine()
        return removed

    def report(self, name: str | None = None) -> list[SubKeyView]:
        """Each per-app key (of provider ``name``, or all): the provider's figure for its
        current window beside the wallet's own."""
        apps = {a.id: a.name for a in self.wallet.apps.list()}
        now = datetime.now(UTC)
        out: list[SubKeyView] = []
        for sub in self.wallet.subkeys.list(name):
            start = window_start(sub.limit_reset, now, sub.created_at)
            usage = sub.usage or {}
            field = USAGE_FIELD.get(sub.limit_reset or "", "usage_nano")
            used = usage.get(field)
            out.append(
                SubKeyView(
                    provider=sub.provider,
                    app=apps.get(sub.app_id, f"app {sub.app_id}"),
                    key_hint=sub.key_hint,
                    limit_nano=sub.limit_nano,
                    limit_reset=sub.limit_reset,
                    disabled=sub.disabled,
                    provider_used_nano=used if isinstance(used, int) else None,
                    wallet_used_nano=self.wallet.ledger.total_spent(
                        app_id=sub.app_id, since=start, provider=sub.provider
                    ),
                    remaining_nano=usage.get("remaining_nano"),
                    window_start=start,
                    synced_at=sub.synced_at,
                    problem=sub.problem,
                )
            )
        return out
