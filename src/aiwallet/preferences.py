"""The user's preferences: typed, declared once, stored in the settings table by name.

The desktop app's Settings page and the engine read these; nothing is keyed by a widget's
index, and a stored value that no longer validates falls back to the default.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from aiwallet.domain.chains import Network
from aiwallet.domain.chains import network as solana_network
from aiwallet.domain.errors import InvalidInput
from aiwallet.domain.money import parse_usd, usd_string, usd_to_nano

T = TypeVar("T")

# Settings the wallet keeps that are not preferences of the Settings page.
PAUSED_SETTING = "paused"  # the kill switch
ORIGINS_SETTING = "allowed_origins"  # web origins the user let call the wallet


@dataclass(frozen=True, slots=True)
class Pref(Generic[T]):
    key: str
    default: T
    check: Callable[[Any], T]
    label: str


def _int_between(lo: int, hi: int, what: str) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise InvalidInput(f"{what} is a whole number from {lo} to {hi}")
        return value

    return check


def _thresholds(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise InvalidInput("notification thresholds are percentages such as 80, 100")
    out = sorted({int(v) for v in value if isinstance(v, int) and not isinstance(v, bool)})
    if len(out) != len(value) or not all(1 <= v <= 100 for v in out):
        raise InvalidInput("each notification threshold is a whole percentage from 1 to 100")
    return tuple(out)


def _usd_or_none(value: Any) -> str | None:
    """A dollar amount kept as its exact string (``0.500000000``), or None (off)."""
    if value is None or value == "":
        return None
    return _usd_positive(value, ", or leave it empty", " (leave it empty to never ask)")


PORT: Pref[int] = Pref("port", 8402, _int_between(1024, 65535, "the port"), "Loopback port")
PROMPT_TIMEOUT_S: Pref[int] = Pref(
    "prompt_timeout_s",
    60,
    _int_between(10, 600, "the prompt timeout (seconds)"),
    "Consent prompt timeout",
)
NOTIFY_THRESHOLDS: Pref[tuple[int, ...]] = Pref(
    "notify_thresholds", (80, 100), _thresholds, "Budget notifications at"
)
NOTIFY_UPSTREAM: Pref[bool] = Pref(
    "notify_upstream_failures",
    True,
    lambda v: v if isinstance(v, bool) else bool(v),
    "Notify when a provider fails",
)

MIN_CLAMPED_OUTPUT_TOKENS: Pref[int] = Pref(
    # When a request's worst case does not fit the budget, the engine lowers its max output
    # to what is left; below this many tokens the answer would be useless, so it refuses.
    "min_clamped_output_tokens",
    16,
    _int_between(1, 1_000_000, "the smallest clamped answer (tokens)"),
    "Smallest answer worth clamping to (tokens)",
)
ASK_OVER_USD: Pref[str | None] = Pref(
    # Ask before serving any single request whose worst case is over this (None: never).
    "ask_over_usd",
    None,
    _usd_or_none,
    "Ask before a request whose worst case is over ($)",
)


def _network(value: Any) -> str:
    if value not in ("mainnet", "devnet"):
        raise InvalidInput("the Solana network is mainnet or devnet")
    return str(value)


def _rpc_url(value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise InvalidInput("the RPC URL is text like https://host")
    return solana_network("devnet", value).rpc_url


def _usd_positive(value: Any, or_empty: str = "", to_turn_off: str = "") -> str:
    """A dollar amount above $0, kept as its exact string (``1.000000000``)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInput(f"write the amount in dollars, like 0.50{or_empty}")
    nano = parse_usd(str(value))
    if nano <= 0:
        raise InvalidInput(f"the amount must be above $0{to_turn_off}")
    return usd_string(nano)


SOLANA_NETWORK: Pref[str] = Pref("solana_network", "devnet", _network, "Solana network")
SOLANA_RPC_URL: Pref[str] = Pref(
    # "" : the network's public RPC; a custom one may carry an API key (kept in settings,
    # shown by host only)
    "solana_rpc_url",
    "",
    _rpc_url,
    "Solana RPC URL (empty: the public one)",
)
X402_MAX_PAYMENT_USD: Pref[str] = Pref(
    # No single x402 payment above this is signed, whatever the budgets allow.
    "x402_max_payment_usd",
    "1.000000000",
    _usd_positive,
    "Largest single x402 payment ($)",
)

LOW_BALANCE_USD: Pref[str] = Pref(
    # Notify when a provider's published balance falls below this ("": never; stored as
    # such, so that turning it off is remembered over the default).
    "low_balance_usd",
    "5.000000000",
    lambda v: "" if v is None or v == "" else _usd_positive(v, ", or leave it empty"),
    "Notify when a provider balance is below ($; empty: never)",
)
BALANCE_REFRESH_MIN: Pref[int] = Pref(
    "balance_refresh_min",
    15,
    _int_between(1, 1440, "the balance refresh interval (minutes)"),
    "Read provider balances every (minutes)",
)
KEY_ROTATION_DAYS: Pref[int] = Pref(
    # Remind to rotate a provider key older than this (0: never remind).
    "key_rotation_days",
    30,
    _int_between(0, 3650, "the key rotation reminder (days; 0 turns it off)"),
    "Remind to rotate a provider key after (days)",
)

ALL: tuple[Pref[Any], ...] = (
    PORT,
    PROMPT_TIMEOUT_S,
    NOTIFY_THRESHOLDS,
    NOTIFY_UPSTREAM,
    MIN_CLAMPED_OUTPUT_TOKENS,
    ASK_OVER_USD,
    SOLANA_NETWORK,
    SOLANA_RPC_URL,
    X402_MAX_PAYMENT_USD,
    LOW_BALANCE_USD,
    BALANCE_REFRESH_MIN,
    KEY_ROTATION_DAYS,
)


def read(stored: Any, pref: Pref[T]) -> T:
    """The stored value if it still validates, else the default."""
    if stored is None:
        return pref.default
    try:
        return pref.check(stored)
    except (InvalidInput, TypeError, ValueError):
        return pref.default


def paying_network(stored: Callable[[str], Any]) -> Network:
    """The Solana network x402 payments are made on, and the RPC URL it is read through
    (``stored``: a setting's stored value by key)."""
    net = read(stored(SOLANA_NETWORK.key), SOLANA_NETWORK)
    rpc = read(stored(SOLANA_RPC_URL.key), SOLANA_RPC_URL)
    return solana_network(net, rpc or None)


def payment_cap_nano(stored: Callable[[str], Any]) -> int:
    """The largest single x402 payment, in nano-dollars."""
    return usd_to_nano(read(stored(X402_MAX_PAYMENT_USD.key), X402_MAX_PAYMENT_USD))
