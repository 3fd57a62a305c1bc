"""The wallet's Solana key: one Ed25519 keypair, kept in the vault as base58 text.

:meth:`SolanaKey.from_text` reads the forms people have a key in: the base58 64-byte secret
key wallets export (Phantom, Solflare, ``solana-keygen`` ``--outfile`` converted), a base58
32-byte seed, or the content of a Solana CLI keypair file (a JSON array of 64 numbers). A
64-byte form holds the public key too; it must be the one the secret half makes.

The secret never shows itself: not in ``repr``, ``str``, an error message or a pickle.
"""

from __future__ import annotations

import json

from solders.keypair import Keypair

from aiwallet.domain.errors import InvalidInput

VAULT_NAME = "solana:wallet"  # the vault entry that holds SolanaKey.secret_text()

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
_MAX_TEXT = 4096  # a keypair file is under 300 characters; anything far longer is not one

_FORMS = (
    "a Solana secret key is 64 bytes (or a 32-byte seed) written in base58, or the JSON array "
    "of 64 numbers a Solana CLI keypair file holds"
)


class SolanaKey:
    """One Solana keypair. ``address`` is public; ``secret_text()`` is for the vault only."""

    __slots__ = ("_keypair",)

    def __init__(self, keypair: Keypair) -> None:
        self._keypair = keypair

    @classmethod
    def generate(cls) -> SolanaKey:
        return cls(Keypair())

    @classmethod
    def from_text(cls, text: str) -> SolanaKey:
        """Read a key in any of the forms above; :class:`InvalidInput` (which never quotes the
        text) when it is none of them."""
        if not isinstance(text, str):
            raise InvalidInput(f"not a Solana key: {_FORMS}")
        text = text.strip()
        if not text or len(text) > _MAX_TEXT:
            raise InvalidInput(f"not a Solana key: {_FORMS}")
        raw = _from_json_array(text) if text.startswith("[") else _from_base58(text)
        if len(raw) == 32:
            return cls(Keypair.from_seed(raw))
        if len(raw) != 64:
            raise InvalidInput(f"not a Solana key: it is {len(raw)} bytes long; {_FORMS}")
        derived = Keypair.from_seed(raw[:32])
        if bytes(derived.pubkey()) != raw[32:]:
            raise InvalidInput(
                "this Solana key is damaged: its public half is not the public key its secret "
                "half makes (a truncated or edited copy?)"
            )
        return cls(derived)

    @property
    def address(self) -> str:
        """The base58 public key: the wallet's address."""
        return str(self._keypair.pubkey())

    @property
    def keypair(self) -> Keypair:
        """The solders keypair, for signing (the SDK signer takes one)."""
        return self._keypair

    def secret_text(self) -> str:
        """The base58 64-byte secret key: what the vault stores under :data:`VAULT_NAME`."""
        return _b58encode(bytes(self._keypair))

    def __repr__(self) -> str:
        return f"SolanaKey(address={self.address!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SolanaKey) and bytes(other._keypair) == bytes(self._keypair)

    def __hash__(self) -> int:
        return hash(self.address)

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a SolanaKey cannot be pickled")


def _from_json_array(text: str) -> bytes:
    try:
        values = json.loads(text)
    except ValueError:
        raise InvalidInput(f"not a Solana key: the JSON does not parse; {_FORMS}") from None
    if not isinstance(values, list) or not all(type(v) is int and 0 <= v <= 255 for v in values):
        raise InvalidInput(f"not a Solana key: the JSON is not a list of bytes; {_FORMS}")
    return bytes(values)


def _from_base58(text: str) -> bytes:
    n = 0
    for c in text:
        digit = _B58_INDEX.get(c)
        if digit is None:
            raise InvalidInput(f"not a Solana key: it has characters base58 does not use; {_FORMS}")
        n = n * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    return b"\0" * zeros + (n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b"")


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out: list[str] = []
    while n:
        n, r = divmod(n, 58)
        out.append(_B58[r])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))
