"""The user's Solana wallet, as the facade offers it to the CLI and the desktop app.

The secret key lives in the vault only (entry ``solana:wallet``); the address is public and
kept in settings, so showing it or reading balances never opens the vault. Balances are read
with solana-py's async client (no blocking call on any loop). A prepaid x402 router is
topped up from here: the amount the user chose, counted against the wallet-wide budget,
paid by x402, recorded before the paid call leaves, and billed once it settled.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from aiwallet.domain.chains import (
    USDC_DECIMALS,
    Network,
    atomic_to_nano,
    nano_to_atomic,
)
from aiwallet.domain.chains import network as solana_network
from aiwallet.domain.errors import BudgetExceeded, InvalidInput, NotFound, WalletError
from aiwallet.domain.money import format_usd
from aiwallet.domain.providers import provider_kind
from aiwallet.payments.balances import WalletBalances, read_balances
from aiwallet.payments.keys import VAULT_NAME, SolanaKey, check_address
from aiwallet.payments.x402pay import (
    HELD_NOTE,
    NO_WORD,
    REFUSED,
    Payer,
    PaymentProblem,
    choose,
    outcome_of,
    parse_payment_required,
    read_settlement,
)
from aiwallet.preferences import (
    SOLANA_NETWORK,
    SOLANA_RPC_URL,
    paying_network,
    payment_cap_nano,
)
from aiwallet.store.budgets import BudgetRefused
from aiwallet.store.payments import PaymentRecord, bill_in, open_reservation_of
from aiwallet.store.providers import ProviderRecord
from aiwallet.store.writer_lock import DataDirInUse
from aiwallet.upstreams.client import upstream_url
from aiwallet.vault import key_hint

if TYPE_CHECKING:
    from aiwallet.service import Wallet

ADDRESS_SETTING = "solana_address"
TOKENS_SETTING = "solana_tokens"  # SPL mints the user added to the Wallet page
TOPUP_TIMEOUT_S = 60.0
MAX_TOKENS = 20


class PaymentError(WalletError):
    code = "payment_failed"


@dataclass(frozen=True, slots=True)
class SolanaStatus:
    address: str | None
    network: Network
    cap_nano: int
    tokens: tuple[str, ...]  # mints shown beside SOL and USDC

    def to_json(self) -> dict[str, Any]:
        n = self.network
        return {
            "address": self.address,
            "network": n.id,
            "network_label": n.describe(),
            "caip2": n.caip2,
            "real_money": n.real_money,
            "rpc_host": n.rpc_host,
            "usdc_mint": n.usdc_mint,
            "max_payment_usd": format_usd(self.cap_nano, places=None),
            "tokens": list(self.tokens),
            "explorer": n.address_url(self.address) if self.address else None,
        }


@dataclass(frozen=True, slots=True)
class TopupResult:
    payment: PaymentRecord
    balance_atomic: int | None  # the router's balance after it, as it said

    def to_json(self) -> dict[str, Any]:
        return {
            "payment": self.payment.to_json(),
            "router_balance_atomic": self.balance_atomic,
        }


class SolanaAccount:
    def __init__(self, wallet: Wallet) -> None:
        self.w = wallet

    # -- the key --------------------------------------------------------------------------
    def status(self) -> SolanaStatus:
        s = self.w.settings
        tokens = tuple(s.get(TOKENS_SETTING, []) or [])
        return SolanaStatus(s.get(ADDRESS_SETTING), self.network(), self.cap_nano(), tokens)

    def network(self) -> Network:
        return paying_network(self.w.settings.get)

    def cap_nano(self) -> int:
        return payment_cap_nano(self.w.settings.get)

    def create(self, *, replace: bool = False) -> str:
        """A new keypair in the vault; its address (blocking: the keyring)."""
        return self._store(SolanaKey.generate(), replace=replace, action="solana.create")

    def import_key(self, text: str, *, replace: bool = False) -> str:
        """A base58 secret or a Solana CLI keypair file's JSON into the vault."""
        return self._store(SolanaKey.from_text(text), replace=replace, action="solana.import")

    def _store(self, key: SolanaKey, *, replace: bool, action: str) -> str:
        existing = self.w.vault.get(VAULT_NAME)
        if existing is not None and not replace:
            raise InvalidInput(
                "this wallet already holds a Solana key; use --replace to replace it (the "
                "old key is then gone from the wallet: keep a copy if it holds funds)"
            )
        self.w.vault.set(VAULT_NAME, key.secret_text())
        self.w.settings.set(ADDRESS_SETTING, key.address)
        self.w.audit.append("user", action, f"solana:{key.address}", {})
        self.w.notify_engine()
        return key.address

    def set_network(self, network_id: str, rpc_url: str | None = None) -> Network:
        net = solana_network(network_id, rpc_url)
        s = self.w.settings
        s.set(SOLANA_NETWORK.key, net.id)
        s.set(SOLANA_RPC_URL.key, net.rpc_url)
        self.w.audit.append(
            "user", "solana.network", f"solana:{net.id}", {"rpc_host": net.rpc_host}
        )
        self.w.notify_engine()
        return net

    def set_tokens(self, mints: Sequence[str]) -> tuple[str, ...]:
        clean = tuple(dict.fromkeys(check_address(m) for m in mints))
        if len(clean) > MAX_TOKENS:
            raise InvalidInput(f"the Wallet page shows at most {MAX_TOKENS} tokens")
        self.w.settings.set(TOKENS_SETTING, list(clean))
        return clean

    # -- reading ----------------------------------------------------------------------------
    async def balances(self, *, timeout_s: float = 10.0) -> WalletBalances | None:
        """SOL, USDC and the added tokens of the wallet's address (None: no key yet). Async:
        call it from a loop (it makes no blocking call)."""
        st = self.status()
        if st.address is None:
            return None
        mints = [st.network.usdc_mint, *st.tokens]
        return await read_balances(st.network, st.address, mints, timeout=timeout_s)

    def balances_blocking(self, *, timeout_s: float = 10.0) -> WalletBalances | None:
        return asyncio.run(self.balances(timeout_s=timeout_s))

    def payments(self, limit: int = 50) -> list[PaymentRecord]:
        return self.w.payments.recent(limit)

    # -- prepaid routers ---------------------------------------------------------------------
    def router_balance(self, provider: str, *, timeout_s: float = 10.0) -> dict[str, Any]:
        """What a prepaid router says its credit is (``GET /v1/balance``)."""
        record, key = self._prepaid(provider)
        if key is None:
            raise NotFound(f"router {provider!r} has no credit yet: top it up first")
        url = upstream_url(provider_kind(record.kind), record.base_url, "/v1/balance")
        with httpx.Client(timeout=timeout_s) as client:
            resp = client.get(url, headers={"Authorization": f"Bearer {key}"})
        if resp.status_code != 200:
            raise PaymentError(f"router {provider!r} answered {resp.status_code} for its balance")
        data = _json_object(resp.content)
        balance = data.get("balance") if isinstance(data.get("balance"), dict) else data
        assert isinstance(balance, dict)
        return {"provider": provider, "amount_atomic": _atomic(balance.get("amount"))}

    def topup(
        self, provider: str, amount_nano: int, *, timeout_s: float = TOPUP_TIMEOUT_S
    ) -> TopupResult:
        """Pay ``amount_nano`` to a prepaid router by x402 (blocking: signing, RPC, HTTP)."""
        w = self.w
        if w.ledger_kept_elsewhere():
            raise DataDirInUse(
                "an engine in another process keeps this wallet's budgets: top up through it "
                "('aiwallet wallet topup' asks it)"
            )
        record, old_key = self._prepaid(provider)
        st = self.status()
        if st.address is None:
            raise NotFound("this wallet holds no Solana key: 'aiwallet wallet create' first")
        atomic = nano_to_atomic(amount_nano, USDC_DECIMALS)
        if atomic <= 0:
            raise InvalidInput("top up by more than $0")
        secret = w.vault.get(VAULT_NAME)
        if secret is None:
            raise NotFound("the vault holds no Solana key: 'aiwallet wallet create' first")
        key = SolanaKey.from_text(secret.reveal())
        url = upstream_url(provider_kind(record.kind), record.base_url, "/v1/topup")
        body = json.dumps({"amount": str(atomic)}).encode()
        headers = {"Content-Type": "application/json"}
        if old_key:
            headers["Authorization"] = f"Bearer {old_key}"
        topup_id = str(uuid.uuid4())
        request_id = f"topup:{topup_id}"
        wallet_budget = w.budgets.wallet_budget()
        try:
            w.budgets.reserve(
                [wallet_budget.id] if wallet_budget else [], amount_nano,
                at=datetime.now(UTC), tz=w.timezone, request_id=request_id,
            )  # fmt: skip
        except BudgetRefused as refused:
            raise BudgetExceeded(f"a top-up of {format_usd(amount_nano)}: {refused}") from None
        try:
            return self._pay_topup(
                record.name, key, st.network, url, body, headers, atomic, amount_nano,
                request_id, timeout_s,
            )  # fmt: skip
        finally:
            with w.db.begin() as conn:  # nothing paid: nothing held
                res_id = open_reservation_of(conn, request_id)
                if res_id is not None and not w.payments.for_request(request_id):
                    w.budgets.release_in(conn, res_id)

    def _pay_topup(
        self,
        provider: str,
        key: SolanaKey,
        net: Network,
        url: str,
        body: bytes,
        headers: dict[str, str],
        atomic: int,
        amount_nano: int,
        request_id: str,
        timeout_s: float,
    ) -> TopupResult:
        w = self.w
        with httpx.Client(timeout=timeout_s) as client:
            first = client.post(url, content=body, headers=headers)
            if first.status_code != 402:
                raise PaymentError(
                    f"router {provider!r} answered {first.status_code} to a top-up instead of "
                    "asking for payment; nothing was paid"
                )
            try:
                offer = parse_payment_required(402, dict(first.headers), first.content)
                chosen = choose(offer, net) if offer is not None else None
            except PaymentProblem as exc:
                raise PaymentError(f"router {provider!r}: {exc}; nothing was paid") from None
            if chosen is None:
                raise PaymentError(
                    f"router {provider!r} accepts no payment this wallet can make on "
                    f"{net.describe()}; nothing was paid"
                )
            if chosen.amount_atomic != atomic:
                raise PaymentError(
                    f"router {provider!r} asked {atomic_to_nano(chosen.amount_atomic)} "
                    f"nano-dollars for a top-up of {amount_nano}; nothing was paid"
                )
            assert offer is not None
            try:
                signed = Payer(key, net).sign(offer, chosen)
            except PaymentProblem as exc:
                raise PaymentError(f"could not sign the top-up: {exc}") from None
            payment = PaymentRecord(
                id=str(uuid.uuid4()), kind="topup", request_id=request_id, app_id=None,
                provider=provider, payee=signed.pay_to, network=signed.network,
                asset=signed.asset, amount_atomic=signed.amount_atomic,
                amount_nano=amount_nano, payer=signed.payer,
                payer_signature=signed.payer_signature, blockhash=signed.blockhash,
                created_at=datetime.now(UTC), resource=url[:500],
            )  # fmt: skip
            w.payments.add(payment)
            try:
                paid = client.post(
                    url, content=body, headers={**headers, signed.header_name: signed.header_value}
                )
            except httpx.HTTPError:
                self._bill(payment, "unconfirmed", None, "no answer to the paid top-up")
                raise PaymentError(
                    f"router {provider!r} did not answer the paid top-up; it is billed until "
                    "the chain tells whether it landed"
                ) from None
        settlement = read_settlement(offer.version, dict(paid.headers))
        outcome = outcome_of(settlement, paid.status_code)
        if outcome == REFUSED:
            # as for a request (engine/payflow.py): the router holds a signed transaction,
            # so the top-up's reservation stays open until the chain tells (the engine's
            # reconciler bills it once if it landed, releases it once it cannot)
            reason = (settlement.error_reason if settlement else None) or "no reason given"
            note = f"the router said it did not settle the top-up ({reason[:100]}); {HELD_NOTE}"
            with w.db.begin() as conn:
                w.payments.finish_in(conn, payment.id, "held", note=note)
            w.notify_engine()
            raise PaymentError(
                f"router {provider!r} did not settle the top-up ({reason[:100]}); not billed "
                "(the amount stays held on the wallet budget until the chain shows it never "
                "landed)"
            )
        if outcome == NO_WORD:
            self._bill(payment, "unconfirmed", None, "the router did not confirm the top-up")
            raise PaymentError(f"router {provider!r} did not confirm the top-up")
        assert settlement is not None and settlement.transaction is not None
        done = self._bill(payment, "settled", settlement.transaction, "prepaid credit")
        data = _json_object(paid.content) if paid.status_code == 200 else {}
        api_key = data.get("api_key")
        if isinstance(api_key, str) and api_key:
            self._store_router_key(provider, api_key)
        balance = data.get("balance")
        amount = balance.get("amount") if isinstance(balance, dict) else None
        return TopupResult(done, _atomic(amount) if amount is not None else None)

    def _bill(self, payment: PaymentRecord, state: str, tx: str | None, note: str) -> PaymentRecord:
        w = self.w
        with w.db.begin() as conn:
            bill_in(conn, w.budgets, w.payments, payment, state=state, tx_signature=tx, note=note)
        w.notify_engine()
        return w.payments.get(payment.id)

    def _store_router_key(self, provider: str, api_key: str) -> None:
        """The key a prepaid router issued for this wallet's credit: in the vault."""
        w = self.w
        record = w.providers.get(provider)
        ref = f"provider:{provider}"
        w.vault.set(ref, api_key)
        w.providers.upsert(
            provider, kind=record.kind, base_url=record.base_url, secret_ref=ref,
            key_hint=key_hint(api_key), replace=True, options=record.options,
        )  # fmt: skip

    def _prepaid(self, provider: str) -> tuple[ProviderRecord, str | None]:
        record = self.w.providers.get(provider)
        if not provider_kind(record.kind).x402 or not record.prepaid:
            raise InvalidInput(
                f"provider {provider!r} is not a prepaid x402 router (add one with "
                "'aiwallet providers add NAME --kind x402 --prepaid --base-url URL')"
            )
        secret = self.w.vault.get(record.secret_ref) if record.secret_ref else None
        return record, secret.reveal() if secret is not None else None


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except ValueError:
        return {}
    return obj if isinstance(obj, dict) else {}


def _atomic(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None
