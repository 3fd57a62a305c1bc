"""``Wallet``: the one facade that the CLI (and later the GUI, the engine and the admin API)
call. It opens the database, the vault and the catalog of one data dir and carries out the
user's actions, auditing each change.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import nacl.signing
import tzlocal

from aiwallet.catalog_files import (
    CatalogUpdateResult,
    LoadedCatalog,
    atomic_write,
    load_catalog,
    load_openrouter_prices,
    update_catalog,
)
from aiwallet.domain.audit import AuditVerification
from aiwallet.domain.catalog import Catalog
from aiwallet.domain.errors import InvalidInput, NotFound, WalletError
from aiwallet.domain.gateways import CLOUDFLARE_ENDPOINTS, cloudflare_base_url, gateway_secret_name
from aiwallet.domain.local_servers import local_notes, local_options
from aiwallet.domain.money import BudgetSpec
from aiwallet.domain.providers import (
    Balance,
    ProviderKind,
    check_base_url,
    check_provider_name,
    key_age_days,
    provider_kind,
    rotation_due,
)
from aiwallet.domain.receipts import public_key_text
from aiwallet.domain.routes import check_route_name, parse_targets
from aiwallet.domain.templates import check_template_name, parse_messages, variables_of
from aiwallet.paths import DataDir, database_url
from aiwallet.preferences import ORIGINS_SETTING, PAUSED_SETTING, Pref
from aiwallet.preferences import read as read_pref
from aiwallet.provider_signin import OpenRouterConnect, start_connect_openrouter
from aiwallet.store.apps import AppRecord, Apps
from aiwallet.store.audit import AuditLog
from aiwallet.store.budgets import Budgets
from aiwallet.store.consent import ConsentRules
from aiwallet.store.db import Database, open_database
from aiwallet.store.grants import issue_app
from aiwallet.store.ledger import Ledger, Requests
from aiwallet.store.payments import Payments
from aiwallet.store.providers import ProviderRecord, Providers
from aiwallet.store.reports import Reports
from aiwallet.store.routes import RouteRecord, Routes, TemplateRecord, Templates
from aiwallet.store.settings import Settings
from aiwallet.store.subkeys import SubKeys
from aiwallet.upstreams.balance import read_balances
from aiwallet.upstreams.openrouter_api import fetch_price_list
from aiwallet.upstreams.probe import ProbeResult, probe_provider
from aiwallet.vault import Vault, key_hint, open_vault
from aiwallet.vault.select import VaultStatus

if TYPE_CHECKING:
    from aiwallet.engine.port import WalletPort
    from aiwallet.engine.server import Engine
    from aiwallet.provider_keys import ProviderKeys
    from aiwallet.solana_account import SolanaAccount

WALLET_ID_SETTING = "wallet_id"
SIGNING_KEY_SECRET = "wallet:receipt-signing-key"  # noqa: S105 - a vault entry name
PUBLIC_KEY_SETTING = "wallet_public_key"
TIMEZONE_SETTING = "timezone"
T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    name: str
    kind: str
    base_url: str
    key_hint: str | None
    last_test_ok: bool | None
    prepaid: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # never a secret (those: the vault)
    notes: str = ""  # a short word on pricing, budgets, the gateway ("free, outside budgets")
    key_set_at: datetime | None = None  # when its key was stored
    key_age_days: int | None = None
    subkeys: bool = False  # per-app provider keys are on

    @classmethod
    def of(cls, r: ProviderRecord) -> ProviderInfo:
        return cls(
            r.name, r.kind, r.base_url, r.key_hint, r.last_test_ok, r.prepaid,
            dict(r.options or {}), provider_notes(r), r.key_set_at,
            key_age_days(r.key_set_at, datetime.now(UTC)), bool((r.options or {}).get("subkeys")),
        )  # fmt: skip

    def rotation_due(self, after_days: int) -> bool:
        return rotation_due(self.key_age_days, after_days)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "base_url": self.base_url,
            "key_hint": self.key_hint,
            "last_test_ok": self.last_test_ok,
            "prepaid": self.prepaid,
            "options": self.options,
            "notes": self.notes,
            "key_set_at": self.key_set_at.isoformat() if self.key_set_at else None,
            "key_age_days": self.key_age_days,
            "subkeys": self.subkeys,
        }


@dataclass(frozen=True, slots=True)
class PriceListResult:
    provider: str
    models: int
    written_to: str

    def to_json(self) -> dict[str, Any]:
        return {"provider": self.provider, "models": self.models, "written_to": self.written_to}


def provider_notes(r: ProviderRecord) -> str:
    """What ``providers list`` says of a provider beyond its URL and key."""
    kind = provider_kind(r.kind)
    opts = r.options or {}
    if kind.local:
        return local_notes(opts)
    if kind.gateway is not None:
        acct, gw = str(opts.get("account_id", "?")), str(opts.get("gateway_id", "?"))
        token = ", token" if opts.get("gateway_auth") else ""
        return f"gateway {acct[:6]}…/{gw}{token}"
    if kind.vendor_models:
        return "vendor/model ids"
    if r.prepaid:
        return "prepaid"
    return ""


def secret_name(provider: str) -> str:
    return f"provider:{provider}"


class Wallet:
    """One wallet (one data dir). Methods are blocking; call them off any event loop."""

    def __init__(
        self,
        data_dir: DataDir,
        db: Database,
        *,
        passphrase_provider: Callable[[], str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.db = db
        self._passphrase_provider = passphrase_provider
        self.settings = Settings(db)
        self.providers = Providers(db)
        self.apps = Apps(db)
        self.budgets = Budgets(db)
        self.ledger = Ledger(db)
        self.requests = Requests(db)
        self.reports = Reports(db)
        self.audit = AuditLog(db)
        self.consent_rules = ConsentRules(db)
        self.payments = Payments(db)
        self.subkeys = SubKeys(db)
        self.routes = Routes(db)
        self.templates = Templates(db)
        self._engine: Engine | None = None  # this process's engine, once new_engine built it
        self.wallet_id: str = self.settings.get_or_create(
            WALLET_ID_SETTING, lambda: secrets.token_hex(8)
        )

    @classmethod
    def open(
        cls,
        data_dir: DataDir,
        *,
        url: str | None = None,
        passphrase_provider: Callable[[], str] | None = None,
    ) -> Wallet:
        data_dir.ensure()
        db = open_database(url or database_url(data_dir))
        return cls(data_dir, db, passphrase_provider=passphrase_provider)

    def close(self) -> None:
        self.db.dispose()

    # -- environment ------------------------------------------------------------------------
    @cached_property
    def solana(self) -> SolanaAccount:
        """The user's Solana wallet: key, network, balances, x402 payments and top-ups."""
        from aiwallet.solana_account import SolanaAccount

        return SolanaAccount(self)

    @cached_property
    def provider_keys(self) -> ProviderKeys:
        """Per-app provider keys (OpenRouter's capped keys): turn on or off, read, remove."""
        from aiwallet.provider_keys import ProviderKeys

        return ProviderKeys(self)

    @cached_property
    def vault(self) -> Vault:
        return open_vault(
            self.data_dir, self.wallet_id, passphrase_provider=self._passphrase_provider
        )

    def signing_key(self) -> nacl.signing.SigningKey:
        """The wallet's Ed25519 key for consent receipts, kept in the vault (made once)."""
        cached = self.__dict__.get("_signing_key")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        stored = self.vault.get(SIGNING_KEY_SECRET)
        if stored is None:
            key = nacl.signing.SigningKey.generate()
            self.vault.set(SIGNING_KEY_SECRET, bytes(key).hex())
            self.settings.set(PUBLIC_KEY_SETTING, public_key_text(key.verify_key))
        else:
            key = nacl.signing.SigningKey(bytes.fromhex(stored.reveal()))
        self.__dict__["_signing_key"] = key
        return key

    @property
    def public_key(self) -> str:
        return public_key_text(self.signing_key().verify_key)

    def unlock_vault(self) -> None:
        """Open the secret store now (the sealed file asks for its passphrase), so that a
        long-running engine never has to ask in the middle of a request."""
        backend = self.vault.backend
        unlock = getattr(backend, "unlock", None)
        if callable(unlock):
            unlock()

    def vault_status(self) -> VaultStatus:
        return self.vault.status

    @property
    def timezone(self) -> ZoneInfo:
        """The user's zone for budget windows: the setting, else the system's."""
        name = self.settings.get(TIMEZONE_SETTING) or tzlocal.get_localzone_name() or "UTC"
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")

    @cached_property
    def _loaded_catalog(self) -> LoadedCatalog:
        return load_catalog(self.data_dir.catalog)

    @property
    def catalog(self) -> Catalog:
        return self._loaded_catalog.catalog

    def status(self) -> dict[str, Any]:
        loaded = self._loaded_catalog
        return {
            "data_dir": str(self.data_dir.root),
            "database": self.db.describe(),
            "vault": self.vault_status().to_json(),
            "catalog": {
                "models": len(loaded.catalog),
                "source": loaded.catalog.source,
                "problem": loaded.problem,
            },
            "providers": [p.name for p in self.providers.list()],
            "timezone": self.timezone.key,
        }

    # -- providers --------------------------------------------------------------------------
    def add_provider(
        self,
        name: str,
        *,
        kind: str,
        api_key: str | None,
        base_url: str | None = None,
        replace: bool = False,
        prepaid: bool = False,
        options: dict[str, Any] | None = None,
        gateway_token: str | None = None,
        account_id: str | None = None,
        gateway_id: str | None = None,
    ) -> ProviderInfo:
        """Store the key in the vault and the provider (never its key) in the database.
        ``prepaid``: an x402 router paid ahead by top-ups (its key comes with the first).
        ``options``: a local server's ``price`` / ``budgeted`` (domain/local_servers.py).
        Cloudflare AI Gateway kinds: ``account_id`` and ``gateway_id`` build the base URL
        (``base_url`` is then the root, for tests and other deployments); ``gateway_token``
        (an authenticated gateway's, kept in the vault) lets the key be left out when the
        gateway holds the provider's key itself."""
        pkind, url = self.check_new_provider(
            name, kind=kind, base_url=base_url, replace=replace,
            account_id=account_id, gateway_id=gateway_id,
        )  # fmt: skip
        if prepaid and not pkind.x402:
            raise InvalidInput("only an x402 router can be prepaid")
        if gateway_token is not None and pkind.gateway is None:
            raise InvalidInput(f"a {pkind.label} provider takes no gateway token")
        old = self.providers.find(name) if replace else None
        old_opts = dict(old.options or {}) if old is not None else {}
        had_token = bool(old_opts.get("gateway_auth"))
        has_token = bool(gateway_token) or (had_token and old is not None)
        if pkind.needs_key and not api_key and not (pkind.gateway and has_token):
            extra = (
                " (or, when the gateway holds the provider's key, give its gateway token and "
                "--no-key)"
                if pkind.gateway
                else ""
            )
            raise InvalidInput(f"a {pkind.label} provider needs an API key{extra}")
        stored = self._provider_options(pkind, url, prepaid, options, old_opts, has_token)
        ref = secret_name(name) if api_key else None
        if api_key and ref:
            self.vault.set(ref, api_key)
        elif old is not None and old.secret_ref and pkind.gateway:
            self.vault.delete(old.secret_ref)  # now the gateway holds the key: ours goes
        if gateway_token:
            self.vault.set(gateway_secret_name(name), gateway_token)
        record = self.providers.upsert(
            name,
            kind=pkind.id,
            base_url=url,
            secret_ref=ref,
            key_hint=key_hint(api_key) if api_key else None,
            replace=replace,
            options=stored,
        )
        self.notify_engine()
        return ProviderInfo.of(record)

    def _provider_options(
        self,
        pkind: ProviderKind,
        url: str,
        prepaid: bool,
        options: dict[str, Any] | None,
        old: dict[str, Any],
        gateway_auth: bool,
    ) -> dict[str, Any] | None:
        """The options stored for a provider: what the kind takes, checked."""
        given = dict(options or {})
        local_keys = {"price", "budgeted"}
        if given.keys() - local_keys:
            raise InvalidInput(f"unknown provider options: {sorted(given.keys() - local_keys)}")
        if given and not pkind.local:
            raise InvalidInput(
                "--price-input, --price-output and --budgeted apply to servers on this "
                "machine (ollama, lmstudio, llamacpp) only"
            )
        out: dict[str, Any] = {}
        if prepaid:
            out["prepaid"] = True
        if pkind.local:
            out.update({k: v for k, v in old.items() if k in local_keys})
            out.update(given)
        if pkind.gateway is not None:
            acct, gw = url.rsplit("/", 3)[-3:-1]
            out.update({"account_id": acct, "gateway_id": gw})
            if gateway_auth:
                out["gateway_auth"] = True
        return out or None

    def check_new_provider(
        self,
        name: str,
        *,
        kind: str,
        base_url: str | None,
        replace: bool,
        account_id: str | None = None,
        gateway_id: str | None = None,
    ) -> tuple[ProviderKind, str]:
        """Everything about a provider to add that can be checked before asking for its key.
        A Cloudflare kind's base URL is built from ``account_id`` and ``gateway_id`` (on
        ``replace``, the stored ones when not given), under ``base_url`` as the root."""
        check_provider_name(name)
        pkind = provider_kind(kind)
        exists = self.providers.find(name)
        if exists is not None and not replace:
            raise InvalidInput(f"a provider named {name!r} exists; use --replace to rotate its key")
        if replace and exists is None:
            raise NotFound(f"no provider named {name!r} to replace; add it without --replace")
        if pkind.gateway is None and (account_id or gateway_id):
            raise InvalidInput(
                f"--account-id and --gateway-id are for Cloudflare AI Gateway kinds "
                f"({', '.join(CLOUDFLARE_ENDPOINTS)}), not {pkind.id}"
            )
        if pkind.gateway == "cloudflare":
            old = (exists.options or {}) if exists is not None and exists.kind == kind else {}
            acct = account_id or old.get("account_id")
            gw = gateway_id or old.get("gateway_id")
            if not acct or not gw:
                raise InvalidInput(
                    f"a {pkind.label} provider needs --account-id and --gateway-id (both are "
                    "on the Cloudflare dashboard, AI > AI Gateway)"
                )
            root = check_base_url(base_url) if base_url else None
            return pkind, cloudflare_base_url(pkind.id, str(acct), str(gw), root)
        url = base_url or pkind.default_base_url
        if url is None:
            raise InvalidInput(f"a {pkind.label} provider needs --base-url")
        return pkind, check_base_url(url)

    def set_local_pricing(
        self,
        name: str,
        *,
        price: tuple[int, int] | Literal[False] | None = False,
        budgeted: bool | None = None,
    ) -> ProviderInfo:
        """Price a server on this machine (``(input, output)`` nano-dollars per 1M tokens;
        None: free again; False: unchanged) and count it against budgets or not (None:
        unchanged). Audited; a running engine picks it up."""
        record = self.providers.get(name)
        if not provider_kind(record.kind).local:
            raise InvalidInput(
                f"provider {name!r} is not a server on this machine; only ollama, lmstudio and "
                "llamacpp providers take prices and --budgeted/--unbudgeted"
            )
        options = local_options(record.options, price=price, budgeted=budgeted)
        if options != (record.options or {}):
            self.providers.set_options(name, options)
            self.notify_engine()
        return ProviderInfo.of(self.providers.get(name))

    def list_providers(self) -> list[ProviderInfo]:
        return [ProviderInfo.of(r) for r in self.providers.list()]

    def remove_provider(self, name: str) -> None:
        record = self.providers.get(name)
        if (record.options or {}).get("subkeys"):
            # its per-app keys are deleted at the provider first (none stays usable there)
            self.provider_keys.disable(name)
        # The key goes first: if the vault cannot be opened, nothing is removed.
        if record.secret_ref:
            self.vault.delete(record.secret_ref)
        if provider_kind(record.kind).gateway is not None:
            self.vault.delete(gateway_secret_name(name))
        self.providers.remove(name)
        self.notify_engine()

    async def test_provider(self, name: str, *, timeout_s: float = 10.0) -> ProbeResult:
        record = self.providers.get(name)
        kind = provider_kind(record.kind)
        secret = await self.vault.aget(record.secret_ref) if record.secret_ref else None
        token = None
        if kind.gateway is not None:
            token = await self.vault.aget(gateway_secret_name(name))
            if token is None and (record.options or {}).get("gateway_auth"):
                raise NotFound(
                    f"the gateway token of provider {name!r} is missing from the "
                    f"{self.vault.status.description}; add it again with --replace"
                )
        if kind.needs_key and secret is None and token is None:
            raise NotFound(
                f"the key of provider {name!r} is missing from the "
                f"{self.vault.status.description}; add it again with --replace"
            )
        result = await probe_provider(
            kind, record.base_url, secret.reveal() if secret else None, timeout_s=timeout_s,
            gateway_token=token.reveal() if token else None,
        )  # fmt: skip
        self.providers.record_test(name, result.ok)
        return result

    async def start_connect_openrouter(self, **kw: Any) -> OpenRouterConnect:
        """ "Connect OpenRouter" by its browser sign-in: ``.url`` to open, ``await .wait()``
        for the stored provider, ``.cancel()``; see ``provider_signin``."""
        return await start_connect_openrouter(self, **kw)

    async def provider_balances(self, *, timeout_s: float = 10.0) -> list[Balance]:
        """What each provider that publishes a balance says is left (OpenRouter's key limit
        and, with its management key, the account's credits; Vercel's credits; DeepSeek's
        balance). Providers that publish none are left out."""
        return await read_balances(self.vault, self.providers.list(), timeout_s=timeout_s)

    # -- apps, budgets, pause -------------------------------------------------------------
    def create_app(
        self,
        name: str,
        *,
        budget: BudgetSpec | None,
        models: list[str] | None = None,
        expires_at: datetime | None = None,
        notes: str | None = None,
    ) -> tuple[AppRecord, str]:
        """A new app with a grant (and its budget); returns it and its key, shown only once."""
        issued = issue_app(
            self.db, self.apps, self.budgets, self.consent_rules, name=name, budget=budget,
            models=models, expires_at=expires_at, notes=notes, signing_key=self.signing_key(),
        )  # fmt: skip
        self.notify_engine()
        return issued.app, issued.key

    def revoke_consent_rule(self, rule_id: int) -> None:
        rule = self.consent_rules.revoke(rule_id)
        if rule.decision == "allow" and rule.app_id is not None:
            app = self.apps.by_id(rule.app_id)
            if app is not None and app.revoked_at is None:
                self.apps.revoke(app.name)
        self.notify_engine()

    def revoke_app(self, name: str) -> AppRecord:
        app = self.apps.revoke(name)
        self.notify_engine()
        return app

    def set_app_paused(self, name: str, paused: bool) -> AppRecord:
        app = self.apps.set_paused(name, paused)
        self.notify_engine()
        return app

    def set_app_limits(
        self, name: str, *, rpm: int | None, tpm: int | None, concurrency: int | None
    ) -> AppRecord:
        app = self.apps.set_limits(name, rpm=rpm, tpm=tpm, concurrency=concurrency)
        self.notify_engine()
        return app

    def set_app_downgrade(self, name: str, on: bool) -> AppRecord:
        """Budget-aware downgrade for app ``name`` (off by default): when its budget cannot
        pay for the model asked, the next cheaper model of a route of yours serves it."""
        app = self.apps.set_downgrade(name, on)
        self.notify_engine()
        return app

    # -- routes and prompt templates ------------------------------------------------------
    def set_route(
        self, name: str, targets: str | list[str], *, replace: bool = False
    ) -> RouteRecord:
        """A named fallback chain (``smart`` → ``anthropic/claude-sonnet-4-5``, then
        ``openai/gpt-4.1``): an app calls ``smart``, and each target is tried in order when
        the one before fails before anything reached the app. Each target names a provider
        of this wallet; grants still decide which targets an app may use."""
        check_route_name(name)
        parsed = parse_targets(targets)
        if self.catalog.candidates(name) or self.providers.find(name) is not None:
            raise InvalidInput(
                f"{name!r} is a model or provider name; give the route a name of its own"
            )
        for target in parsed:
            provider = target.partition("/")[0]
            if self.providers.find(provider) is None:
                raise NotFound(
                    f"the route's target {target!r} names no provider of this wallet "
                    f"({provider!r}); see 'aiwallet providers list'"
                )
        self.routes.put(name, parsed, replace=replace)
        self.notify_engine()
        return next(r for r in self.routes.list() if r.name == name)

    def remove_route(self, name: str) -> None:
        self.routes.remove(name)
        self.notify_engine()

    def add_template(self, name: str, text: str) -> TemplateRecord:
        """A new version of prompt template ``name``: JSON messages with ``{{variables}}``,
        or plain text (one user message)."""
        check_template_name(name)
        messages = parse_messages(text)
        return self.templates.add(name, messages, variables_of(messages))

    def set_app_ask_over(self, name: str, nano: int | None) -> AppRecord:
        """Ask before serving any single request of app ``name`` whose worst case is over
        ``nano`` nano-dollars (None: only the wallet-wide ``ask_over_usd`` applies)."""
        app = self.apps.set_ask_over(name, nano)
        self.notify_engine()
        return app

    def set_budget(self, spec: BudgetSpec | None, app_name: str | None = None) -> None:
        app_id = self.apps.get(app_name).id if app_name else None
        self.budgets.set_budget(spec, app_id=app_id)
        self.notify_engine()

    def set_paused(self, paused: bool) -> None:
        """The kill switch: a paused wallet refuses every request with ``wallet_paused``."""
        self.settings.set(PAUSED_SETTING, paused)
        self.notify_engine()

    def allowed_origins(self) -> list[str]:
        return list(self.settings.get(ORIGINS_SETTING, []) or [])

    def allow_origin(self, origin: str) -> None:
        """Let web pages from ``origin`` (``http://localhost:3000``) call the wallet."""
        origin = origin.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+$", origin):
            raise InvalidInput(f"{origin!r} is not an origin; write it like http://localhost:3000")
        origins = sorted({*self.allowed_origins(), origin})
        self.settings.set(ORIGINS_SETTING, origins)
        self.notify_engine()

    def disallow_origin(self, origin: str) -> None:
        origins = [o for o in self.allowed_origins() if o != origin.strip().rstrip("/")]
        self.settings.set(ORIGINS_SETTING, origins)
        self.notify_engine()

    def pref(self, pref: Pref[T]) -> T:
        return read_pref(self.settings.get(pref.key), pref)

    def set_pref(self, pref: Pref[T], value: T) -> T:
        """Validate and store a preference (audited if it changed); a running engine picks
        it up."""
        checked, _ = self._check_pref(pref, value)
        self.set_prefs({pref: checked})
        return checked

    def set_prefs(self, values: dict[Pref[Any], Any]) -> dict[str, Any]:
        """Validate every value, then store the ones that differ from the stored (or default)
        value in ONE transaction with one ``settings.set`` audit entry each; a running engine
        is told once, and only if something changed. Returns the changed ones (key → value as
        ``pref`` reads it). An invalid value writes nothing: InvalidInput names the setting."""
        checked: dict[str, tuple[Pref[Any], Any, Any]] = {}
        for pref, value in values.items():
            if pref.key in checked and checked[pref.key][0] != pref:
                raise InvalidInput(f"two preferences are stored as {pref.key!r}")
            checked[pref.key] = (pref, *self._check_pref(pref, value))

        def effective(key: str, stored: Any) -> Any:  # what ``pref`` reads now
            return read_pref(stored, checked[key][0])

        changed = self.settings.set_changed(
            {key: stored for key, (_, _, stored) in checked.items()},
            effective=effective,
            action="settings.set",
        )
        if changed:
            self.notify_engine()
        return {key: checked[key][1] for key in changed}

    @staticmethod
    def _check_pref(pref: Pref[T], value: Any) -> tuple[T, Any]:
        """``value`` as ``pref`` reads it and as it is stored (JSON), or InvalidInput naming
        the setting."""
        try:
            checked = pref.check(list(value) if isinstance(value, tuple) else value)
        except InvalidInput as exc:
            raise InvalidInput(f"{pref.label}: {exc}") from exc
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{pref.label}: {value!r} is not a valid value") from exc
        return checked, list(checked) if isinstance(checked, tuple) else checked

    @property
    def paused(self) -> bool:
        return bool(self.settings.get(PAUSED_SETTING, False))

    def engine_port(self) -> WalletPort:
        """What the engine may use of this wallet (never the facade itself)."""
        from aiwallet.engine.port import WalletPort

        return WalletPort(
            data_dir=self.data_dir, db=self.db, apps=self.apps, budgets=self.budgets,
            requests=self.requests, consent_rules=self.consent_rules, settings=self.settings,
            providers=self.providers, payments=self.payments, subkeys=self.subkeys,
            routes=self.routes, templates=self.templates,
            vault=self.vault,
            catalog=self.catalog, timezone=lambda: self.timezone, signing_key=self.signing_key,
            openrouter_prices=lambda: load_openrouter_prices(self.data_dir.openrouter_models),
            topup=lambda provider, nano: self.solana.topup(provider, nano).to_json(),
        )  # fmt: skip

    def ledger_kept_elsewhere(self) -> bool:
        """Whether an engine in another process keeps this SQLite ledger's budget counters in
        memory (it holds the ledger's lock): reservations must then be asked of it."""
        engine = self._engine
        if not self.db.is_sqlite or (engine is not None and engine.state.live is not None):
            return False
        from aiwallet.store.writer_lock import engine_running

        return engine_running(self.data_dir.root, self.db.sqlite_file)

    def new_engine(self, **kw: Any) -> Engine:
        """The loopback engine for this wallet (not started). Imported here so that opening a
        wallet (the CLI, the desktop app's first window) does not load aiohttp. Changes made
        through this wallet reach that engine in-process (no HTTP), once it runs."""
        from aiwallet.engine.server import Engine

        engine = Engine(self.engine_port(), **kw)
        self._engine = engine
        return engine

    def engine_call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the admin API of the engine running on this data dir (an error if none)."""
        from aiwallet.engine.client import require_engine

        return require_engine(self.data_dir, method, path, body)

    def provider_health(self) -> list[dict[str, Any]] | None:
        """Each provider's circuit breaker as the running engine sees it (see
        ``Engine.provider_health``): this process's engine directly, another process's over
        its admin API; None when no engine answers."""
        engine = self._engine
        if engine is not None and engine.loop is not None and engine.loop.is_running():
            return engine.provider_health()
        from aiwallet.engine.client import admin_call

        try:
            found = admin_call(self.data_dir, "GET", "/admin/v1/providers/health")
        except WalletError as err:
            log.warning("the running engine did not say how its providers are: %s", err)
            return None
        return found if isinstance(found, list) else None

    def notify_engine(self) -> bool:
        """Tell the engine on this data dir to reload: this process's own engine directly,
        another process's over its admin API; False when none answers."""
        engine = self._engine
        if engine is not None and engine.reload_soon():
            return True
        from aiwallet.engine.client import notify_reload

        return notify_reload(self.data_dir)

    # -- catalog and audit ------------------------------------------------------------------
    def update_catalog(self, source: str | None) -> CatalogUpdateResult:
        result = update_catalog(self.data_dir.catalog, self.catalog, source)
        self.__dict__.pop("_loaded_catalog", None)
        self.audit.append(
            "user",
            "catalog.update",
            "catalog",
            {"source": result.source, "models": result.models, "digest": self.catalog.digest},
        )
        return result

    def refresh_openrouter_prices(
        self, provider: str | None = None, *, timeout_s: float = 30.0
    ) -> PriceListResult:
        """Fetch OpenRouter's own model list (``GET {base}/models``) through provider
        ``provider`` (else the first OpenRouter provider), check it, and cache it in the data
        dir: it then prices OpenRouter's models before the catalog's snapshot of them. A list
        that cannot be read or priced changes nothing (CatalogError)."""
        records = [r for r in self.providers.list() if r.kind == "openrouter"]
        record = next((r for r in records if provider in (None, r.name)), None)
        if record is None:
            raise NotFound(
                f"no OpenRouter provider named {provider!r}"
                if provider
                else "no OpenRouter provider is set up; add one first"
            )
        secret = self.vault.get(record.secret_ref) if record.secret_ref else None
        raw, rows = asyncio.run(
            fetch_price_list(
                record.base_url, secret.reveal() if secret else None, timeout_s=timeout_s
            )
        )
        dest = self.data_dir.openrouter_models
        atomic_write(dest, raw)
        self.audit.append(
            "user", "catalog.openrouter", f"provider:{record.name}", {"models": len(rows)}
        )
        self.notify_engine()
        return PriceListResult(record.name, len(rows), str(dest))

    def verify_audit(self) -> AuditVerification:
        return self.audit.verify()

    def now(self) -> datetime:
        return datetime.now(UTC)
