"""The wallet's Solana key: every form people hold a key in reads back the same key, a damaged
key is refused, and the secret never shows itself."""

from __future__ import annotations

import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from aiwallet.domain.errors import InvalidInput
from aiwallet.payments.keys import VAULT_NAME, SolanaKey, _b58encode

seeds = st.binary(min_size=32, max_size=32)


def cli_file(kp: Keypair) -> str:
    """What ``solana-keygen new --outfile id.json`` writes."""
    return json.dumps(list(bytes(kp))) + "\n"


@settings(max_examples=60, deadline=None)
@given(seeds)
def test_every_form_reads_back_the_same_key(seed: bytes) -> None:
    kp = Keypair.from_seed(seed)
    key = SolanaKey(kp)
    assert key.address == str(kp.pubkey())
    assert SolanaKey.from_text(key.secret_text()) == key
    assert SolanaKey.from_text(f"  {key.secret_text()}\n") == key
    assert SolanaKey.from_text(str(kp)) == key  # what wallets export: solders' own base58
    assert SolanaKey.from_text(_b58encode(seed)) == key  # a 32-byte seed
    assert SolanaKey.from_text(cli_file(kp)) == key


@settings(max_examples=30, deadline=None)
@given(seeds)
def test_the_secret_text_is_base58_of_64_bytes(seed: bytes) -> None:
    key = SolanaKey(Keypair.from_seed(seed))
    assert Keypair.from_base58_string(key.secret_text()).pubkey() == key.keypair.pubkey()


def test_generate_makes_distinct_valid_keys() -> None:
    a, b = SolanaKey.generate(), SolanaKey.generate()
    assert a != b and a.address != b.address
    assert Pubkey.from_string(a.address) == a.keypair.pubkey()
    assert VAULT_NAME == "solana:wallet"


def test_a_cli_keypair_file_with_mismatched_halves_is_refused() -> None:
    a, b = Keypair(), Keypair()
    forged = list(bytes(a)[:32]) + list(bytes(b.pubkey()))
    with pytest.raises(InvalidInput, match="damaged") as err:
        SolanaKey.from_text(json.dumps(forged))
    assert err.value.code == "invalid_request"
    _says_nothing_of(str(err.value), json.dumps(forged), str(a))
    forged_b58 = _b58encode(bytes(a)[:32] + bytes(b.pubkey()))
    with pytest.raises(InvalidInput, match="damaged") as err:
        SolanaKey.from_text(forged_b58)
    _says_nothing_of(str(err.value), forged_b58)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "0OIl" * 20,  # characters base58 leaves out
        _b58encode(bytes(range(31))),  # 31 bytes
        _b58encode(bytes(range(48))),
        "[1, 2, 3]",
        json.dumps([300] * 64),
        json.dumps([True] * 64),
        json.dumps({"secret": list(range(64))}),
        "[not json",
        "5" * 10_000,
    ],
)
def test_what_is_not_a_key_is_refused_without_being_quoted(text: str) -> None:
    with pytest.raises(InvalidInput) as err:
        SolanaKey.from_text(text)
    _says_nothing_of(str(err.value), text)


def test_the_secret_never_shows_itself() -> None:
    key = SolanaKey.generate()
    secret = key.secret_text()
    for shown in (repr(key), str(key), f"{key}", f"{key!r}", f"{key:>80}", repr([key])):
        assert secret not in shown and secret[:12] not in shown
        assert key.address in shown
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)


def _says_nothing_of(message: str, *secrets: str) -> None:
    for secret in secrets:
        secret = secret.strip()
        for i in range(0, max(len(secret) - 8, 0), 4):
            assert secret[i : i + 8] not in message, (message, secret[i : i + 8])
