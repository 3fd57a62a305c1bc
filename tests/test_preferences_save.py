"""``Wallet.set_prefs``: one save validates everything first, then writes only the changed
preferences in ONE transaction with one ``settings.set`` audit entry each, and tells a running
engine once, and only when something changed. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Connection, event

from aiwallet.domain.errors import InvalidInput
from aiwallet.paths import DataDir
from aiwallet.preferences import (
    ALL,
    ASK_OVER_USD,
    MIN_CLAMPED_OUTPUT_TOKENS,
    NOTIFY_THRESHOLDS,
    NOTIFY_UPSTREAM,
    PORT,
    PROMPT_TIMEOUT_S,
    SOLANA_NETWORK,
    SOLANA_RPC_URL,
    X402_MAX_PAYMENT_USD,
    Pref,
)
from aiwallet.service import Wallet


def _small_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 99:
        raise InvalidInput("a small whole number from 0 to 99")
    return value


# The wallet declares six preferences; two more (declared here, stored the same way) make
# a save of eight.
EXTRA: tuple[Pref[int], ...] = tuple(
    Pref(f"test_extra_{n}", n, _small_int, f"Extra setting {n}") for n in range(8 - len(ALL))
)
EIGHT: tuple[Pref[Any], ...] = (*ALL, *EXTRA)


class Watch:
    """Write transactions on the wallet's engine (reads excluded) and engine pokes."""

    def __init__(self, wallet: Wallet, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writes = 0
        self.notified = 0
        self.engine = wallet.db.engine
        event.listen(self.engine, "begin", self._on_begin)

        def notify() -> bool:
            self.notified += 1
            return False

        monkeypatch.setattr(wallet, "notify_engine", notify)

    def _on_begin(self, conn: Connection) -> None:
        if not conn.get_execution_options().get("aiwallet_read_only", False):
            self.writes += 1

    def reset(self) -> None:
        self.writes = self.notified = 0

    def close(self) -> None:
        event.remove(self.engine, "begin", self._on_begin)


@pytest.fixture
def wallet(db_url, tmp_path) -> Iterator[Wallet]:
    w = Wallet.open(DataDir(tmp_path / "wallet"), url=db_url)
    yield w
    w.close()


@pytest.fixture
def watch(wallet, monkeypatch) -> Iterator[Watch]:
    w = Watch(wallet, monkeypatch)
    yield w
    w.close()


def _new_entries(wallet: Wallet, after: int) -> list[Any]:
    return [e for e in wallet.audit.entries() if e.seq > after]


def _last_seq(wallet: Wallet) -> int:
    entries = wallet.audit.entries(limit=1, newest_first=True)
    return entries[0].seq if entries else 0


def _values(**changes: Any) -> dict[Pref[Any], Any]:
    """All eight at a stored baseline, with ``changes`` (by key) applied."""
    base: dict[Pref[Any], Any] = {
        PORT: 8500,
        PROMPT_TIMEOUT_S: 90,
        NOTIFY_THRESHOLDS: (50, 100),
        NOTIFY_UPSTREAM: False,
        MIN_CLAMPED_OUTPUT_TOKENS: 64,
        ASK_OVER_USD: "0.250000000",
        SOLANA_NETWORK: "mainnet",
        SOLANA_RPC_URL: "http://127.0.0.1:8899",
        X402_MAX_PAYMENT_USD: "2.000000000",
        **{p: 10 + i for i, p in enumerate(EXTRA)},
    }
    by_key = {p.key: p for p in EIGHT}
    for key, value in changes.items():
        base[by_key[key]] = value
    return base


def test_saving_eight_with_two_changed_writes_two_audit_entries_in_one_transaction(wallet, watch):
    assert wallet.set_prefs(_values()) == {
        "port": 8500,
        "prompt_timeout_s": 90,
        "notify_thresholds": (50, 100),
        "notify_upstream_failures": False,
        "min_clamped_output_tokens": 64,
        "ask_over_usd": "0.250000000",
        "solana_network": "mainnet",
        "solana_rpc_url": "http://127.0.0.1:8899",
        "x402_max_payment_usd": "2.000000000",
        **{p.key: 10 + i for i, p in enumerate(EXTRA)},
    }
    assert (watch.writes, watch.notified) == (1, 1)
    watch.reset()
    seq = _last_seq(wallet)

    changed = wallet.set_prefs(_values(prompt_timeout_s=45, x402_max_payment_usd="0.77"))

    assert changed == {"prompt_timeout_s": 45, "x402_max_payment_usd": "0.770000000"}
    new = _new_entries(wallet, seq)
    assert [(e.actor, e.action, e.subject, e.details) for e in new] == [
        ("user", "settings.set", "setting:prompt_timeout_s", {"value": 45}),
        ("user", "settings.set", "setting:x402_max_payment_usd", {"value": "0.770000000"}),
    ]
    assert watch.writes == 1  # both rows, both settings: one transaction
    assert watch.notified == 1
    assert wallet.pref(PROMPT_TIMEOUT_S) == 45
    assert wallet.pref(X402_MAX_PAYMENT_USD) == "0.770000000"
    assert wallet.pref(NOTIFY_THRESHOLDS) == (50, 100)
    assert wallet.verify_audit().ok


def test_saving_unchanged_values_writes_nothing_and_does_not_notify(wallet, watch):
    seq = _last_seq(wallet)
    # Nothing stored yet: the defaults the Settings page shows are what is in effect.
    assert wallet.set_prefs({p: p.default for p in EIGHT}) == {}
    assert _new_entries(wallet, seq) == []
    assert (watch.writes, watch.notified) == (0, 0)

    wallet.set_prefs(_values())
    watch.reset()
    seq = _last_seq(wallet)
    # The same values again (thresholds as a list or a tuple alike): no write, no poke.
    assert wallet.set_prefs(_values(notify_thresholds=[50, 100])) == {}
    assert _new_entries(wallet, seq) == []
    assert (watch.writes, watch.notified) == (0, 0)
    assert wallet.verify_audit().ok


def test_an_invalid_value_among_valid_ones_writes_nothing(wallet, watch):
    wallet.set_prefs(_values())
    watch.reset()
    seq = _last_seq(wallet)
    before = {p.key: wallet.pref(p) for p in EIGHT}

    with pytest.raises(InvalidInput, match=r"^Budget notifications at: .*percentage"):
        wallet.set_prefs(
            _values(port=8600, notify_thresholds=(50, 150), x402_max_payment_usd="0.05")
        )
    with pytest.raises(InvalidInput, match=r"^Loopback port: "):
        wallet.set_prefs(_values(prompt_timeout_s=30, port=80))

    assert {p.key: wallet.pref(p) for p in EIGHT} == before
    assert _new_entries(wallet, seq) == []
    assert (watch.writes, watch.notified) == (0, 0)
    assert wallet.verify_audit().ok


def test_set_pref_is_one_audited_save_of_one_preference(wallet, watch):
    seq = _last_seq(wallet)
    assert wallet.set_pref(NOTIFY_THRESHOLDS, (100, 70)) == (70, 100)
    assert [(e.action, e.subject, e.details) for e in _new_entries(wallet, seq)] == [
        ("settings.set", "setting:notify_thresholds", {"value": [70, 100]}),
    ]
    assert (watch.writes, watch.notified) == (1, 1)
    watch.reset()
    seq = _last_seq(wallet)
    assert wallet.set_pref(NOTIFY_THRESHOLDS, (70, 100)) == (70, 100)  # unchanged
    assert _new_entries(wallet, seq) == []
    assert (watch.writes, watch.notified) == (0, 0)
    with pytest.raises(InvalidInput, match=r"^Consent prompt timeout: "):
        wallet.set_pref(PROMPT_TIMEOUT_S, 5)
    assert wallet.verify_audit().ok
