"""Consent receipts: what the user granted an app, signed with the wallet's Ed25519 key.

A receipt is canonical JSON (sorted keys, no whitespace, ASCII) of its fields, signed as is;
the document carries the receipt, the signature and the wallet's public key, so anyone can
verify it offline. Changing any byte of the receipt, or the key it names, breaks the signature.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import nacl.exceptions
import nacl.signing

from aiwallet.domain.audit import canonical_json
from aiwallet.domain.errors import InvalidInput

RECEIPT_VERSION = "aiwallet-receipt/1"
_FIELDS = (
    "version",
    "receipt_id",
    "app",
    "scopes",
    "budget",
    "period",
    "issued_at",
    "expires_at",
    "wallet_public_key",
)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def public_key_text(key: nacl.signing.VerifyKey) -> str:
    return _b64(bytes(key))


def sign_receipt(fields: dict[str, Any], signing_key: nacl.signing.SigningKey) -> dict[str, Any]:
    """The signed receipt document for ``fields`` (the wallet's public key is filled in)."""
    receipt = {
        **fields,
        "version": RECEIPT_VERSION,
        "wallet_public_key": public_key_text(signing_key.verify_key),
    }
    missing = [f for f in _FIELDS if f not in receipt]
    if missing:
        raise InvalidInput(f"a receipt needs {', '.join(missing)}")
    body = canonical_json(receipt).encode("ascii")
    signature = signing_key.sign(body).signature
    return {"receipt": receipt, "alg": "ed25519", "signature": _b64(signature)}


@dataclass(frozen=True, slots=True)
class ReceiptCheck:
    ok: bool
    problem: str | None
    receipt: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "problem": self.problem, "receipt": self.receipt}


def verify_receipt(doc: object, *, trusted_public_key: str | None = None) -> ReceiptCheck:
    """Check a receipt document offline; optionally that it comes from one wallet."""
    if isinstance(doc, str | bytes):
        try:
            doc = json.loads(doc)
        except ValueError:
            return ReceiptCheck(False, "not JSON", None)
    if not isinstance(doc, dict) or not isinstance(doc.get("receipt"), dict):
        return ReceiptCheck(False, "not a receipt document", None)
    receipt = doc["receipt"]
    if doc.get("alg") != "ed25519" or not isinstance(doc.get("signature"), str):
        return ReceiptCheck(False, "no Ed25519 signature", receipt)
    key_text = receipt.get("wallet_public_key")
    if not isinstance(key_text, str):
        return ReceiptCheck(False, "the receipt names no wallet key", receipt)
    if trusted_public_key is not None and key_text != trusted_public_key:
        return ReceiptCheck(False, "signed by a different wallet", receipt)
    try:
        key = nacl.signing.VerifyKey(base64.b64decode(key_text, validate=True))
        signature = base64.b64decode(doc["signature"], validate=True)
        key.verify(canonical_json(receipt).encode("ascii"), signature)
    except (ValueError, nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        return ReceiptCheck(False, "the signature does not match: the receipt was altered", receipt)
    return ReceiptCheck(True, None, receipt)
