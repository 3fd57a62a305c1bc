"""How the Solana wallet and its x402 payments read on screen: balances, router credit,
payments, explorer links, and the one blocking read of all of it (run on a worker thread).

Addresses, signatures and mints come from the chain or from a router: they are shown in
display form (``widgets.shown``) and put in links only percent-encoded (``Network.tx_url``).
An RPC URL may carry an API key in its path or query, so a screen names only its host.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from aiwallet.domain.chains import (
    USDC_DECIMALS,
    Network,
    atomic_to_nano,
    format_atomic,
    network_named,
    url_host,
)
from aiwallet.domain.errors import NotFound, WalletError
from aiwallet.domain.money import format_usd
from aiwallet.gui import texts

if TYPE_CHECKING:
    from aiwallet.service import ProviderInfo, Wallet
    from aiwallet.store.payments import PaymentRecord

X402_SOURCE = "x402"  # a request log row's token_source when its cost is an x402 payment
PAYMENTS_SHOWN = 50
STATES = {
    "signed": "signed, sending",
    "held": "held (not billed; the chain will tell)",  # the router said it failed: see its note
    "settled": "settled",
    "failed": "failed (not billed)",
    "unconfirmed": "unconfirmed (billed until the chain tells)",
}
READ_TIMEOUT_S = 10.0
UNIT = atomic_to_nano(1)  # nano-dollars in one atomic unit of USDC


def network_line(net: Network) -> str:
    """``Network.describe()``: the cluster, a custom RPC by its host only, and whether it is
    real money."""
    return net.describe()


def short(text: str, keep: int = 6) -> str:
    """``5Hx9abQ…z12kfW``: the two ends of a long signature or address."""
    return text if len(text) <= 2 * keep + 1 else f"{text[:keep]}…{text[-keep:]}"


def usdc(atomic: int) -> str:
    return f"{format_atomic(atomic, USDC_DECIMALS)} USDC"


def state_text(p: PaymentRecord) -> str:
    text = STATES.get(p.state, p.state)
    return text + (" · answer failed" if p.flagged else "")


def kind_text(p: PaymentRecord) -> str:
    return "top-up" if p.kind == "topup" else "request"


def explorer_network(name: str) -> Network | None:
    """The cluster a payment was made on (its CAIP-2 or v1 name), for its explorer link.
    Links name the public cluster, never a custom RPC URL: the explorer would be handed the
    URL (``customUrl=``), and an RPC URL may carry an API key."""
    return network_named(name)


def public(net: Network) -> Network:
    """``net`` without its custom RPC (see :func:`explorer_network`)."""
    return replace(net, rpc_url="")


def tx_link(p: PaymentRecord) -> str | None:
    net = explorer_network(p.network)
    if net is None or not p.tx_signature:
        return None
    return net.tx_url(p.tx_signature)


@dataclass(frozen=True, slots=True)
class TokenLine:
    mint: str
    name: str  # "USDC", or the mint's two ends
    amount_atomic: int
    decimals: int

    @property
    def amount(self) -> str:
        return format_atomic(self.amount_atomic, self.decimals)


@dataclass(frozen=True, slots=True)
class RouterCredit:
    provider: str
    amount_atomic: int | None  # None: not known (problem says why)
    problem: str | None = None

    @property
    def text(self) -> str:
        if self.amount_atomic is not None:
            return usdc(self.amount_atomic)
        return self.problem or "unknown"


@dataclass(frozen=True, slots=True)
class SolanaReading:
    """What the chain (and each prepaid router) said, at ``at`` (monotonic seconds)."""

    address: str | None
    network: Network
    sol_lamports: int | None
    tokens: tuple[TokenLine, ...]
    problem: str | None  # "could not read: <host>"; None when the read worked
    detail: str | None  # the RPC client's words, for a tooltip
    credits: dict[str, RouterCredit] = field(default_factory=dict)
    at: float = 0.0

    @property
    def usdc(self) -> TokenLine | None:
        return next((t for t in self.tokens if t.mint == self.network.usdc_mint), None)


def read_solana(wallet: Wallet, *, timeout_s: float = READ_TIMEOUT_S) -> SolanaReading:
    """The wallet's SOL, USDC and added tokens, and each prepaid router's credit (blocking:
    RPC and HTTP; run it on a worker thread)."""
    solana = wallet.solana
    st = solana.status()
    net = st.network
    sol: int | None = None
    tokens: tuple[TokenLine, ...] = ()
    problem = detail = None
    if st.address is not None:
        try:
            found = solana.balances_blocking(timeout_s=timeout_s)
        except Exception as exc:  # the RPC client's own failure: said, never raised into Qt
            found, detail = None, type(exc).__name__
            problem = f"could not read: {net.rpc_host}"
        if found is not None and found.problem:
            problem, detail = f"could not read: {net.rpc_host}", str(found.problem)
        elif found is not None:
            sol = int(found.sol_lamports)
            tokens = tuple(
                TokenLine(
                    mint,
                    "USDC" if mint == net.usdc_mint else short(mint, 4),
                    int(tb.amount_atomic),
                    int(tb.decimals),
                )
                for mint, tb in found.tokens.items()
            )
    credits = {p.name: router_credit(wallet, p, timeout_s) for p in prepaid(wallet)}
    return SolanaReading(
        st.address, net, sol, tokens, problem, detail, credits, at=time.monotonic()
    )


def prepaid(wallet: Wallet) -> list[ProviderInfo]:
    return [p for p in wallet.list_providers() if p.prepaid]


def router_credit(wallet: Wallet, p: ProviderInfo, timeout_s: float) -> RouterCredit:
    """What a prepaid router says is left (blocking: HTTP)."""
    try:
        found = wallet.solana.router_balance(p.name, timeout_s=timeout_s)
    except NotFound:
        return RouterCredit(p.name, None, "no credit yet")
    except WalletError:
        return RouterCredit(p.name, None, f"could not read: {url_host(p.base_url)}")
    except Exception:  # httpx's: the router did not answer
        return RouterCredit(p.name, None, f"could not read: {url_host(p.base_url)}")
    atomic = found.get("amount_atomic")
    if not isinstance(atomic, int):
        return RouterCredit(p.name, None, "the router did not say")
    return RouterCredit(p.name, atomic)


def payment_notice(name: str, payload: dict[str, object]) -> tuple[str, str, str] | None:
    """The notification (kind, title, text) of a ``payment.*`` engine event."""
    provider = str(payload.get("provider") or "a router")
    nano = payload.get("amount_nano")
    amount = format_usd(nano, places=None) if isinstance(nano, int) else "A payment"
    net = network_named(str(payload.get("network") or ""))
    where = net.describe() if net is not None else "Solana"
    if name == "payment.settled":
        tx = payload.get("tx_signature")
        paid = usdc(nano // UNIT) if isinstance(nano, int) and nano % UNIT == 0 else amount
        return (
            "payment_settled",
            texts.NOTIFY_PAID.format(amount=amount, provider=provider),
            texts.NOTIFY_PAID_TEXT.format(
                usdc=paid, network=where, tx=short(str(tx)) if tx else "not yet known"
            ),
        )
    if name in ("payment.failed", "payment.held"):
        reason = str(payload.get("reason") or "it never landed on chain")
        return (
            "payment_failed",
            texts.NOTIFY_PAY_FAILED.format(provider=provider),
            texts.NOTIFY_PAY_FAILED_TEXT.format(amount=amount, reason=reason),
        )
    if name == "payment.unconfirmed":
        return (
            "payment_unconfirmed",
            texts.NOTIFY_UNCONFIRMED.format(provider=provider),
            texts.NOTIFY_UNCONFIRMED_TEXT.format(amount=amount),
        )
    return None


@dataclass(frozen=True, slots=True)
class WalletFacts:
    """What the Wallet page shows from the database (no network): the key's address, the
    network, the per-payment cap, the added tokens, recent payments, the prepaid routers."""

    address: str | None
    network: Network
    cap_nano: int
    tokens: tuple[str, ...]
    payments: list[PaymentRecord]
    routers: list[ProviderInfo]


def read_facts(wallet: Wallet, limit: int = PAYMENTS_SHOWN) -> WalletFacts:
    """Blocking (SQL): run it on a worker thread."""
    solana = wallet.solana
    st = solana.status()
    return WalletFacts(
        st.address, st.network, st.cap_nano, st.tokens, solana.payments(limit), prepaid(wallet)
    )
