"""The Solana networks the wallet pays on, their USDC mints, and amounts in atomic units.

Pure data and arithmetic. A network is a cluster (mainnet or devnet, each with its CAIP-2 id
as x402 v2 names it, its v1 name and its USDC mint) and the RPC URL the wallet reads and
signs against; a custom RPC URL keeps the cluster's identity (its mint and its id). Mainnet
is real money, and everything that shows a network says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal
from urllib.parse import quote, urlsplit

from aiwallet.domain.errors import InvalidInput

USDC_DECIMALS = 6
LAMPORTS_PER_SOL = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Network:
    id: str  # "mainnet" | "devnet"
    label: str
    caip2: str  # x402 v2 network id
    v1_name: str  # x402 v1 network name
    usdc_mint: str
    default_rpc_url: str
    real_money: bool
    rpc_url: str = ""  # the one in use ("" : the default)

    @property
    def rpc(self) -> str:
        return self.rpc_url or self.default_rpc_url

    @property
    def custom_rpc(self) -> bool:
        return bool(self.rpc_url) and self.rpc_url != self.default_rpc_url

    @property
    def rpc_host(self) -> str:
        """The RPC's host (and port): all of its URL that may be shown or logged."""
        return url_host(self.rpc)

    @property
    def names(self) -> frozenset[str]:
        """Every name an x402 requirement may use for this network."""
        return frozenset({self.caip2, self.v1_name})

    def describe(self) -> str:
        """One line for a screen or a terminal: which network, and whether it is real money."""
        where = f" via {self.rpc_host}" if self.custom_rpc else ""
        money = "REAL MONEY" if self.real_money else "test money"
        return f"Solana {self.label}{where} ({money})"

    def tx_url(self, signature: str) -> str:
        return self._explorer(f"tx/{quote(signature, safe='')}")

    def address_url(self, address: str) -> str:
        return self._explorer(f"address/{quote(address, safe='')}")

    def _explorer(self, path: str) -> str:
        """The public explorer's page on this cluster. A custom RPC URL is never put in the
        link (it may carry an API key, and the page would send it to the explorer)."""
        base = f"https://explorer.solana.com/{path}"
        return base if self.id == "mainnet" else f"{base}?cluster={self.id}"


MAINNET = Network(
    "mainnet",
    "mainnet",
    "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp",
    "solana",
    "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v",
    "https://api.mainnet-beta.solana.com",
    real_money=True,
)
DEVNET = Network(
    "devnet",
    "devnet",
    "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
    "solana-devnet",
    "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
    "https://api.devnet.solana.com",
    real_money=False,
)
NETWORKS = {n.id: n for n in (MAINNET, DEVNET)}
DEFAULT_NETWORK = "devnet"


def url_host(url: str) -> str:
    """A URL's host (and port): all of it that may be shown or logged. An RPC or router URL
    can carry an API key in its path, query string or userinfo."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "unknown host"
        port = parts.port
    except ValueError:
        return "unknown host"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}" if port else host


_RPC_RE = re.compile(r"^https?://[^/\s]+(/\S*)?$")


def network(network_id: str, rpc_url: str | None = None) -> Network:
    """The network ``network_id`` (mainnet or devnet), read through ``rpc_url`` if given."""
    try:
        base = NETWORKS[network_id]
    except KeyError:
        raise InvalidInput(
            f"unknown Solana network {network_id!r}; choose mainnet or devnet (a custom RPC "
            "URL is given with --rpc-url)"
        ) from None
    if not rpc_url:
        return base
    if not _RPC_RE.match(rpc_url):
        raise InvalidInput(f"{rpc_url!r} is not an RPC URL; it should look like https://host")
    return replace(base, rpc_url=rpc_url.rstrip("/"))


def network_named(name: str) -> Network | None:
    """The cluster an x402 requirement's network name (CAIP-2 or v1) means, if known."""
    for n in NETWORKS.values():
        if name in n.names:
            return n
    return None


def atomic_to_nano(atomic: int, decimals: int = USDC_DECIMALS) -> int:
    """A USD stablecoin amount in atomic units → nano-dollars, exactly (decimals ≤ 9)."""
    if atomic < 0:
        raise InvalidInput("an amount cannot be negative")
    return atomic * _nano_step(decimals)


def nano_to_atomic(nano: int, decimals: int = USDC_DECIMALS) -> int:
    """Nano-dollars → atomic units of a USD stablecoin; refused when not a whole unit."""
    step = _nano_step(decimals)
    if nano < 0 or nano % step:
        raise InvalidInput(
            f"{Decimal(nano).scaleb(-9)} USD is not a whole number of the token's smallest "
            f"unit ({Decimal(1).scaleb(-decimals)})"
        )
    return int(nano // step)


def _nano_step(decimals: int) -> int:
    """Nano-dollars in one atomic unit of a token with ``decimals`` (0 to 9)."""
    if not 0 <= decimals <= 9:
        raise InvalidInput(f"a token with {decimals} decimals cannot be counted in nano-dollars")
    return int(10 ** (9 - decimals))


def format_atomic(atomic: int, decimals: int) -> str:
    """``1234567`` with 6 decimals → ``1.234567`` (no float, trailing zeros kept short)."""
    text = format(Decimal(atomic).scaleb(-decimals), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def format_sol(lamports: int) -> str:
    return f"{format_atomic(lamports, 9)} SOL"
