"""What the engine may use of the wallet: the store's repositories, the vault, the catalog and
the data dir, and nothing of the facade (``service.Wallet``) that builds it.

The engine calls these from its own threads (the store's read pool, the group-commit writer)
and never from its event loop; ``signing_key`` and the vault may block.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import nacl.signing

from aiwallet.domain.catalog import Catalog, PriceRow
from aiwallet.domain.chains import Network
from aiwallet.domain.money import BudgetSpec, usd_to_nano
from aiwallet.paths import DataDir
from aiwallet.payments.keys import VAULT_NAME
from aiwallet.preferences import (
    ASK_OVER_USD,
    MIN_CLAMPED_OUTPUT_TOKENS,
    ORIGINS_SETTING,
    PAUSED_SETTING,
    PROMPT_TIMEOUT_S,
    paying_network,
    payment_cap_nano,
)
from aiwallet.preferences import read as read_pref
from aiwallet.store.apps import Apps
from aiwallet.store.audit import AuditLog
from aiwallet.store.budgets import Budgets
from aiwallet.store.consent import ConsentRules
from aiwallet.store.db import Database
from aiwallet.store.grants import IssuedApp, Remember, issue_app
from aiwallet.store.ledger import Requests
from aiwallet.store.payments import Payments
from aiwallet.store.providers import Providers
from aiwallet.store.records import Reservation
from aiwallet.store.routes import Routes, Templates
from aiwallet.store.settings import Settings
from aiwallet.store.subkeys import SubKeys
from aiwallet.vault import Vault


@dataclass(frozen=True, slots=True)
class WalletPort:
    data_dir: DataDir
    db: Database
    apps: Apps
    budgets: Budgets
    requests: Requests
    consent_rules: ConsentRules
    settings: Settings
    providers: Providers
    payments: Payments
    subkeys: SubKeys
    routes: Routes
    templates: Templates
    vault: Vault
    catalog: Catalog
    openrouter_prices: Callable[[], Mapping[str, PriceRow]]  # OpenRouter's own list (cached)
    timezone: Callable[[], ZoneInfo]  # the user's zone, as set now
    signing_key: Callable[[], nacl.signing.SigningKey]  # the receipt key (reads the vault)
    # a prepaid x402 router's top-up (provider, nano-dollars) → the result as JSON; blocking
    # (signing, RPC, HTTP). The engine runs it for the CLI while it keeps a SQLite ledger's
    # counters in memory, so that the reservation is granted where the counters are
    topup: Callable[[str, int], dict[str, Any]]

    def audit_seq(self) -> int:
        """The audit log's newest entry number: every change the user makes moves it."""
        return AuditLog(self.db).head_seq()

    def _dead_owner(self) -> str | None:
        """Whose open reservations a start may close: on a PostgreSQL ledger other wallets
        may share, this data dir's (and ownerless ones); on SQLite (one writer, its file
        locked) everyone's (None)."""
        b = self.budgets
        return b.owner if b.db.is_postgres else None

    def left_open(self) -> list[Reservation]:
        """The open reservations a dead engine of this wallet left (see :meth:`_dead_owner`)."""
        return self.budgets.open_reservations(owner=self._dead_owner())

    def recover_open(self) -> list[tuple[Reservation, str]]:
        """Bill what a dead engine of this wallet left open, at its worst case."""
        return self.budgets.recover_open(actor="engine", owner=self._dead_owner())

    def prompt_timeout_s(self) -> float:
        return float(read_pref(self.settings.get(PROMPT_TIMEOUT_S.key), PROMPT_TIMEOUT_S))

    def min_clamped_output_tokens(self) -> int:
        return read_pref(
            self.settings.get(MIN_CLAMPED_OUTPUT_TOKENS.key), MIN_CLAMPED_OUTPUT_TOKENS
        )

    def ask_over_nano(self) -> int | None:
        """The wallet-wide ask-before threshold in nano-dollars (None: never ask)."""
        usd = read_pref(self.settings.get(ASK_OVER_USD.key), ASK_OVER_USD)
        return None if usd is None else usd_to_nano(usd)

    def solana_network(self) -> Network:
        """The Solana network the wallet pays on (and the RPC URL it reads it through)."""
        return paying_network(self.settings.get)

    def x402_cap_nano(self) -> int:
        return payment_cap_nano(self.settings.get)

    def solana_secret(self) -> str | None:
        """The wallet's Solana secret key as the vault keeps it (blocking: the keyring)."""
        secret = self.vault.get(VAULT_NAME)
        return secret.reveal() if secret is not None else None

    def paused(self) -> bool:
        return bool(self.settings.get(PAUSED_SETTING, False))

    def allowed_origins(self) -> frozenset[str]:
        return frozenset(self.settings.get(ORIGINS_SETTING, []) or [])

    def issue_app(
        self,
        name: str,
        *,
        budget: BudgetSpec | None,
        models: list[str],
        expires_at: datetime | None,
        notes: str,
        remember: Remember | None,
    ) -> IssuedApp:
        """An approved consent request: app, grant, budget and rule in one transaction."""
        return issue_app(
            self.db, self.apps, self.budgets, self.consent_rules, name=name, budget=budget,
            models=models, expires_at=expires_at, notes=notes, signing_key=self.signing_key(),
            make_unique=True, remember=remember, actor="user",
        )  # fmt: skip
