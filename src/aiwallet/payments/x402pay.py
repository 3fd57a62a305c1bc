"""The x402 client side: reading a router's 402, choosing what to pay, signing it with the
x402 SDK, and reading the settlement.

v2 carries the requirements in the ``PAYMENT-REQUIRED`` header (base64 JSON) and takes the
payment in ``PAYMENT-SIGNATURE``; v1 has them in the JSON body and takes ``X-PAYMENT``. The
settlement comes back in ``PAYMENT-RESPONSE`` (v1: ``X-PAYMENT-RESPONSE``).

The SDK's own spend controls are off: the wallet's checks (its budgets, its per-payment cap,
the user's word about the payee) come before signing, and the transaction the SDK built is
decoded and checked against the chosen requirement, so what is signed is what was checked.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from solders.transaction import VersionedTransaction
from x402 import x402ClientSync
from x402.http.utils import (
    decode_payment_required_header,
    decode_payment_response_header,
    encode_payment_signature_header,
)
from x402.mechanisms.svm import KeypairSigner
from x402.mechanisms.svm.exact import register_exact_svm_client
from x402.mechanisms.svm.utils import derive_ata
from x402.schemas import PaymentRequired, PaymentRequiredV1

from aiwallet.domain.chains import Network
from aiwallet.payments.keys import SolanaKey

MAX_SHOWN = 100  # characters of untrusted text an error may quote
TRANSFER_CHECKED = 12  # the SPL Token instruction the exact scheme uses


class PaymentProblem(Exception):
    """A payment that cannot be read, chosen or signed as it stands; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Requirement:
    scheme: str
    network: str
    asset: str
    amount_atomic: int
    pay_to: str
    max_timeout_s: int
    resource: str | None
    raw: Any  # the SDK's requirement object


@dataclass(frozen=True, slots=True)
class Offer:
    version: int
    requirements: tuple[Requirement, ...]
    raw: Any  # the SDK's PaymentRequired (v2) or PaymentRequiredV1


@dataclass(frozen=True, slots=True)
class SignedPayment:
    header_name: str
    header_value: str
    payer_signature: str  # the payer's own signature inside the transaction (base58)
    blockhash: str
    amount_atomic: int
    pay_to: str
    network: str
    asset: str
    payer: str


@dataclass(frozen=True, slots=True)
class Settlement:
    success: bool
    transaction: str | None
    network: str | None
    payer: str | None
    error_reason: str | None


def _short(text: object) -> str:
    s = str(text)
    return s if len(s) <= MAX_SHOWN else s[:MAX_SHOWN] + "…"


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lower = name.lower()
    for key, value in headers.items():
        if key.lower() == lower:
            return value
    return None


def parse_payment_required(status: int, headers: Mapping[str, str], body: bytes) -> Offer | None:
    """The x402 offer of a 402 answer; None when it is no x402 payment request."""
    if status != 402:
        return None
    header = _header(headers, "PAYMENT-REQUIRED")
    try:
        if header:
            raw: Any = decode_payment_required_header(header)
        else:
            try:
                data = json.loads(body) if body else None
            except ValueError:
                return None
            if not isinstance(data, dict) or data.get("x402Version") != 1:
                return None
            raw = PaymentRequiredV1.model_validate(data)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise PaymentProblem(
            "malformed_requirements", f"the payment requirements cannot be read: {_short(exc)}"
        ) from None
    return _offer(raw)


def _offer(raw: Any) -> Offer:
    version = int(raw.x402_version)
    reqs: list[Requirement] = []
    resource = None
    if isinstance(raw, PaymentRequired) and raw.resource is not None:
        resource = raw.resource.url
    for r in raw.accepts:
        amount_text = str(r.amount if version == 2 else r.max_amount_required)
        reqs.append(
            Requirement(
                scheme=str(r.scheme),
                network=str(r.network),
                asset=str(r.asset),
                amount_atomic=_amount(amount_text),
                pay_to=str(r.pay_to),
                max_timeout_s=int(r.max_timeout_seconds or 0),
                resource=resource if version == 2 else str(r.resource or "") or None,
                raw=r,
            )
        )
    return Offer(version, tuple(reqs), raw)


def _amount(text: str) -> int:
    """An amount in atomic units: a positive integer, written as one; -1 when it is not
    (such a requirement is never chosen: :func:`choose` refuses it)."""
    if not text.isdigit() or len(text) > 30:
        return -1
    return int(text)


def choose(offer: Offer, net: Network) -> Requirement | None:
    """The first requirement the wallet can pay: ``exact`` on ``net`` in ``net``'s USDC.
    A usable one whose amount is not a positive whole number of atomic units is refused."""
    for r in offer.requirements:
        if r.scheme != "exact" or r.network not in net.names or r.asset != net.usdc_mint:
            continue
        if r.amount_atomic <= 0:
            raise PaymentProblem(
                "bad_amount", "the router asks for an amount that is not a positive integer"
            )
        return r
    return None


class Payer:
    """Signs x402 payments from one key on one network (BLOCKING: the SDK reads the mint
    and a recent blockhash over RPC; call :meth:`sign` off any event loop).

    One SDK client serves every payment (its RPC connection pool and mint cache are reused:
    building one per payment cost ~2x the SDK's own paying client, docs/benchmarks.md), from
    any number of threads: the requirement each thread chose is thread-local."""

    def __init__(self, key: SolanaKey, net: Network) -> None:
        self.key = key
        self.net = net
        self._chosen = threading.local()
        self._client = x402ClientSync(payment_requirements_selector=self._select)
        self._client.set_spend_controls(False)  # the wallet's own checks come first
        register_exact_svm_client(
            self._client, KeypairSigner(key.keypair), networks=[net.caip2], rpc_url=net.rpc
        )

    def _select(self, _version: int, views: list[Any]) -> Any:
        return _pick(views, self._chosen.requirement)

    def sign(self, offer: Offer, requirement: Requirement) -> SignedPayment:
        if requirement not in offer.requirements:
            raise PaymentProblem("not_offered", "the requirement is not one of the offer's")
        self._chosen.requirement = requirement.raw
        try:
            payload = self._client.create_payment_payload(offer.raw)
        except PaymentProblem:
            raise
        except Exception as exc:
            raise PaymentProblem(
                "sign_failed", f"the SDK could not build the payment: {_short(exc)}"
            ) from None
        finally:
            self._chosen.requirement = None
        tx_b64 = (payload.payload or {}).get("transaction")
        if not isinstance(tx_b64, str):
            raise PaymentProblem("sign_failed", "the SDK built no Solana transaction")
        tx = VersionedTransaction.from_bytes(base64.b64decode(tx_b64))
        signature = self._check(tx, requirement)
        name = "PAYMENT-SIGNATURE" if offer.version == 2 else "X-PAYMENT"
        return SignedPayment(
            header_name=name,
            header_value=encode_payment_signature_header(payload),
            payer_signature=signature,
            blockhash=str(tx.message.recent_blockhash),
            amount_atomic=requirement.amount_atomic,
            pay_to=requirement.pay_to,
            network=self.net.caip2 if offer.version == 2 else requirement.network,
            asset=requirement.asset,
            payer=self.key.address,
        )

    def _check(self, tx: VersionedTransaction, req: Requirement) -> str:
        """The transaction moves exactly the requirement's amount of its asset to its payee
        and nothing else from the payer; the payer's signature in it (base58)."""
        msg = tx.message
        keys = [str(k) for k in msg.account_keys]
        payer = self.key.address
        if payer not in keys:
            raise PaymentProblem("tampered", "the payment transaction is not signed by this wallet")
        transfers = []
        for ix in msg.instructions:
            program = keys[ix.program_id_index]
            data = bytes(ix.data)
            accounts = [keys[i] for i in bytes(ix.accounts)]
            if payer in accounts and data[:1] == bytes([TRANSFER_CHECKED]):
                transfers.append((program, data, accounts))
            elif payer in accounts:
                raise PaymentProblem(
                    "tampered", "the payment transaction does more than a transfer"
                )
        if len(transfers) != 1:
            raise PaymentProblem("tampered", "the payment transaction does not hold one transfer")
        program, data, accounts = transfers[0]
        amount = int.from_bytes(data[1:9], "little")
        source, mint, dest, owner = accounts[:4]
        expected_dest = derive_ata(req.pay_to, req.asset, program)
        expected_source = derive_ata(payer, req.asset, program)
        if (amount, mint, dest, owner, source) != (
            req.amount_atomic, req.asset, expected_dest, payer, expected_source,
        ):  # fmt: skip
            raise PaymentProblem(
                "tampered", "the payment transaction does not pay what the wallet checked"
            )
        index = keys.index(payer)
        return str(tx.signatures[index])


def _pick(views: list[Any], chosen: Any) -> Any:
    for view in views:
        if view == chosen:
            return view
    raise PaymentProblem("not_offered", "the chosen requirement was not offered to the SDK")


SETTLED, REFUSED, NO_WORD = "settled", "refused", "no_word"
HELD_NOTE = "held until the chain shows it can no longer land"


def outcome_of(settlement: Settlement | None, status: int) -> str:
    """What the router said of a paid request: :data:`SETTLED` (success with a transaction),
    :data:`REFUSED` (a settlement failure, or 402 again: it still holds a signed transaction
    it could send, so the amount stays held until the chain tells) or :data:`NO_WORD`."""
    if settlement is not None and settlement.success and settlement.transaction:
        return SETTLED
    if (settlement is not None and not settlement.success) or status == 402:
        return REFUSED
    return NO_WORD


def read_settlement(version: int, headers: Mapping[str, str]) -> Settlement | None:
    """The router's word on the settlement (None: it said nothing, or nothing readable)."""
    value = _header(headers, "PAYMENT-RESPONSE") or _header(headers, "X-PAYMENT-RESPONSE")
    if not value:
        return None
    try:
        resp = decode_payment_response_header(value)
    except (ValueError, TypeError, binascii.Error):
        return None
    return Settlement(
        success=bool(resp.success),
        transaction=str(resp.transaction) if resp.transaction else None,
        network=str(resp.network) if resp.network else None,
        payer=str(resp.payer) if resp.payer else None,
        error_reason=_short(resp.error_reason) if resp.error_reason else None,
    )
