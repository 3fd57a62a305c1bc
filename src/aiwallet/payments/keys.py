"""The wallet's Solana keypair: created here, or imported as a base58 secret (64-byte keypair
or 32-byte seed) or as a Solana CLI keypair file (a JSON list of 64 numbers).

The vault keeps it as base58 of the 64 bytes (entry :data:`VAULT_NAME`). Nothing here ever
puts the secret in a message, ``repr`` or exception.
"""

from __future__ import annotations

import json

import base58
from solders.keypair import Keypair
from solders.pubkey import Pubkey

from aiwallet.domain.errors import InvalidInput

VAULT_NAME = "solana:wallet"


class SolanaKey:
    __slots__ = ("_keypair",)

    def __init__(self, keypair: Keypair) -> None:
        self._keypair = keypair

    @classmethod
    def generate(cls) -> SolanaKey:
        return cls(Keypair())

    @classmethod
    def from_text(cls, text: str) -> SolanaKey:
        """A base58 secret (64-byte keypair or 32-byte seed) or a keypair file's JSON."""
        raw = text.strip()
        if not raw:
            raise InvalidInput("no Solana secret key was given")
        if raw.startswith("["):
            return cls(_from_json(raw))
        try:
            data = base58.b58decode(raw)
        except ValueError:
            raise InvalidInput(
                "this is not a Solana secret key: expected base58 text or a keypair file's "
                "JSON list of 64 numbers"
            ) from None
        return cls(_from_bytes(data))

    @property
    def address(self) -> str:
        return str(self._keypair.pubkey())

    @property
    def keypair(self) -> Keypair:
        return self._keypair

    def secret_text(self) -> str:
        """What the vault stores: base58 of the 64-byte keypair."""
        return base58.b58encode(bytes(self._keypair)).decode()

    def __repr__(self) -> str:
        return f"SolanaKey({self.address})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a SolanaKey cannot be pickled")


def _from_json(raw: str) -> Keypair:
    try:
        values = json.loads(raw)
    except ValueError:
        raise InvalidInput("the keypair file is not valid JSON") from None
    if (
        not isinstance(values, list)
        or len(values) != 64
        or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 256 for v in values)
    ):
        raise InvalidInput("a Solana keypair file holds a JSON list of 64 numbers from 0 to 255")
    return _from_bytes(bytes(values))


def _from_bytes(data: bytes) -> Keypair:
    if len(data) == 32:
        return Keypair.from_seed(data)
    if len(data) != 64:
        raise InvalidInput(
            f"a Solana secret key is 64 bytes (or a 32-byte seed), not {len(data)} bytes"
        )
    seeded = Keypair.from_seed(data[:32])
    if bytes(seeded.pubkey()) != data[32:]:
        raise InvalidInput(
            "this keypair's public half does not belong to its secret half; it is damaged"
        )
    return seeded


def check_address(text: str) -> str:
    """A base58 Solana address (a public key), or a clear error."""
    try:
        return str(Pubkey.from_string(text.strip()))
    except ValueError:
        raise InvalidInput(f"{text[:60]!r} is not a Solana address") from None
