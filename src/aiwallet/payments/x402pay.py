"""The x402 client side: read a 402's offer, choose what to pay, sign it, read the receipt.

* :func:`parse_payment_required`: a 402 answer → :class:`Offer` (v2 ``PAYMENT-REQUIRED`` header
  or v1 JSON body), or ``None`` for a 402 that is not x402;
* :func:`choose`: the offer's requirement the wallet can pay on a :class:`Network` (``exact``
  scheme, that network, its USDC mint);
* :class:`Payer` (**blocking**: it reads the chain and signs; the engine runs it in an
  executor): builds the payment with the x402 SDK, then decodes the transaction the SDK built
  and refuses it unless it transfers exactly the checked amount of the checked asset to the
  checked recipient, and nothing else. What is signed is what was checked.
* :func:`read_settlement`: the ``PAYMENT-RESPONSE`` / ``X-PAYMENT-RESPONSE`` receipt.

Untrusted input (a router's headers and body) never reaches an error message beyond a short,
cleaned excerpt (:func:`aiwallet.payments.rpcfail.clean`).

:class:`PaymentProblem` is a plain exception, not a ``WalletError``: every ``WalletError``
code needs its row in ``engine/errors.CODES``, and its codes have none yet. Its codes are
:data:`PAYMENT_PROBLEM_CODES`.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import ValidationError
from solders.keypair import Keypair
from solders.message import MessageV0, to_bytes_versioned
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction
from x402 import x402ClientSync
from x402.http.utils import (
    decode_payment_required_header,
    decode_payment_response_header,
    detect_payment_required_version,
    encode_payment_signature_header,
)
from x402.mechanisms.svm import KeypairSigner
from x402.mechanisms.svm.exact import register_exact_svm_client
from x402.schemas import (
    NoMatchingRequirementsError,
    PaymentError,
    PaymentPayload,
    PaymentRequired,
    PaymentRequirements,
)
from x402.schemas.v1 import PaymentPayloadV1, PaymentRequiredV1, PaymentRequirementsV1

from aiwallet.domain.chains import USDC_DECIMALS, Network
from aiwallet.payments import rpcfail
from aiwallet.payments.keys import SolanaKey

PAYMENT_PROBLEM_CODES = frozenset(
    {
        "x402_malformed_offer",  # the 402's offer cannot be read
        "x402_bad_amount",  # an amount is not a positive whole number of atomic units
        "x402_bad_requirement",  # the requirement to pay names no valid recipient / fee payer
        "x402_not_offered",  # the requirement given to Payer.sign is not one of the offer's
        "x402_build_failed",  # the SDK could not build the payment (RPC down, no such mint...)
        "x402_unexpected_transaction",  # the SDK built something other than what was checked
        "x402_malformed_settlement",  # the PAYMENT-RESPONSE receipt cannot be read
    }
)

COMPUTE_BUDGET_PROGRAM = Pubkey.from_string("ComputeBudget111111111111111111111111111111")
MEMO_PROGRAM = Pubkey.from_string("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr")
TOKEN_PROGRAM = Pubkey.from_string("TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA")
TOKEN_2022_PROGRAM = Pubkey.from_string("TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb")
_TRANSFER_CHECKED = 12
_MAX_U64 = 2**64 - 1
_ATOMIC = re.compile(r"^[0-9]{1,20}$")
_MAX_HEADER = 64 * 1024
_MAX_REQUIREMENTS = 64

V2_SIGNATURE_HEADER = "PAYMENT-SIGNATURE"
V1_SIGNATURE_HEADER = "X-PAYMENT"


class PaymentProblem(Exception):
    """An x402 exchange that cannot go on. ``code`` is stable (one of
    :data:`PAYMENT_PROBLEM_CODES`); ``str()`` is a short message for people, quoting at most a
    cleaned excerpt of anything the other side sent."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def message(self) -> str:
        return str(self)


@dataclass(frozen=True, slots=True)
class Requirement:
    """One way an offer accepts to be paid."""

    scheme: str
    network: str
    asset: str
    amount: str  # as offered; see amount_atomic
    pay_to: str
    max_timeout_s: int
    resource_url: str | None
    description: str | None
    fee_payer: str | None  # extra.feePayer: who pays the network fee (Solana exact scheme)
    sdk: PaymentRequirements | PaymentRequirementsV1 = field(repr=False, compare=False)

    @property
    def amount_atomic(self) -> int:
        """The amount in atomic units; :class:`PaymentProblem` unless a positive integer that
        a token transfer can carry (u64)."""
        if not _ATOMIC.match(self.amount) or not 0 < int(self.amount) <= _MAX_U64:
            raise PaymentProblem(
                "x402_bad_amount",
                f"the router asks an amount that is not a positive whole number of atomic "
                f"units: {rpcfail.clean(self.amount, 24)!r}",
            )
        return int(self.amount)


@dataclass(frozen=True, slots=True)
class Offer:
    """What a 402 answer offers: its x402 version and its requirements, in the router's order."""

    version: int
    requirements: tuple[Requirement, ...]
    sdk: PaymentRequired | PaymentRequiredV1 = field(repr=False, compare=False)
    error: str | None = None  # the router's own word on why it asks (cleaned)


@dataclass(frozen=True, slots=True)
class SignedPayment:
    """A payment ready to send: put ``header_name: header_value`` on the retried request.

    ``payer_signature`` is the wallet's own signature inside the (partially signed)
    transaction: Ed25519 is deterministic, and the transaction id is the fee payer's
    signature, which only the facilitator makes; this one is how the wallet finds the
    transaction on chain later (:func:`aiwallet.payments.chainlookup.find_payment`)."""

    version: int
    header_name: str
    header_value: str = field(repr=False)
    payer_signature: str
    blockhash: str
    amount_atomic: int
    pay_to: str
    network: str
    asset: str
    payer: str


@dataclass(frozen=True, slots=True)
class Settlement:
    """The router's receipt (``PAYMENT-RESPONSE``): did the payment settle, in which
    transaction."""

    success: bool
    transaction: str
    network: str
    payer: str | None
    error_reason: str | None


# -- reading an offer ---------------------------------------------------------------------------
def parse_payment_required(status: int, headers: Mapping[str, str], body: bytes) -> Offer | None:
    """The x402 offer of a 402 answer; ``None`` when the answer is not an x402 402 (another
    status, or a 402 with neither a ``PAYMENT-REQUIRED`` header nor a v1 body).
    :class:`PaymentProblem` ``x402_malformed_offer`` when it claims to be one and is broken."""
    if status != 402:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        version = detect_payment_required_version(lowered, body)
    except Exception:
        return None  # not an x402 402 (the SDK's own test: v2 header, or x402Version in body)
    header = lowered.get("payment-required")
    sdk: PaymentRequired | PaymentRequiredV1
    if header:
        if len(header) > _MAX_HEADER:
            raise PaymentProblem("x402_malformed_offer", "the PAYMENT-REQUIRED header is too large")
        try:
            sdk = decode_payment_required_header(header)
        except (ValueError, TypeError, AttributeError) as exc:
            raise PaymentProblem(
                "x402_malformed_offer",
                f"the PAYMENT-REQUIRED header is not an x402 offer: {_why(exc)}",
            ) from None
    else:
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise ValueError("the body is not a JSON object")
            sdk = (
                PaymentRequiredV1.model_validate(data)
                if version == 1
                else PaymentRequired.model_validate(data)
            )
        except (ValueError, TypeError) as exc:
            raise PaymentProblem(
                "x402_malformed_offer", f"the 402 body is not an x402 offer: {_why(exc)}"
            ) from None
    if len(sdk.accepts) > _MAX_REQUIREMENTS:
        raise PaymentProblem("x402_malformed_offer", "the offer lists too many requirements")
    return Offer(
        version=sdk.x402_version,
        requirements=tuple(_requirement(sdk, r) for r in sdk.accepts),
        sdk=sdk,
        error=rpcfail.clean(sdk.error) if sdk.error else None,
    )


def _requirement(
    sdk: PaymentRequired | PaymentRequiredV1, req: PaymentRequirements | PaymentRequirementsV1
) -> Requirement:
    extra = req.extra or {}
    fee_payer = extra.get("feePayer")
    url: str | None
    description: str | None
    if isinstance(req, PaymentRequirementsV1):
        amount, url, description = req.max_amount_required, req.resource, req.description
    else:
        resource = sdk.resource if isinstance(sdk, PaymentRequired) else None
        amount = req.amount
        url = resource.url if resource else None
        description = resource.description if resource else None
    return Requirement(
        scheme=req.scheme,
        network=req.network,
        asset=req.asset,
        amount=amount,
        pay_to=req.pay_to,
        max_timeout_s=req.max_timeout_seconds,
        resource_url=url,
        description=rpcfail.clean(description) if description else None,
        fee_payer=fee_payer if isinstance(fee_payer, str) else None,
        sdk=req,
    )


def choose(offer: Offer, net: Network) -> Requirement | None:
    """The first ``exact`` requirement on ``net`` (CAIP-2 or v1 name) in ``net``'s USDC;
    ``None`` when the offer has none. :class:`PaymentProblem` when that requirement's amount,
    recipient or fee payer is not valid."""
    for req in offer.requirements:
        if req.scheme == "exact" and req.network in net.names and req.asset == net.usdc_mint:
            req.amount_atomic  # noqa: B018 (validates: raises PaymentProblem)
            for what, value in (("recipient", req.pay_to), ("fee payer", req.fee_payer)):
                if value is None or _pubkey_or_none(value) is None:
                    raise PaymentProblem(
                        "x402_bad_requirement", f"the offer names no valid Solana {what}"
                    )
            return req
    return None


# -- paying -------------------------------------------------------------------------------------
class Payer:
    """Signs x402 payments with the wallet's key on one network. **Blocking**: :meth:`sign`
    reads the chain (the mint once, then a recent blockhash each time) with solana-py's
    synchronous client, which the SDK builds (10 s timeout a call). One ``Payer`` may sign
    from several threads at once."""

    def __init__(self, key: SolanaKey, net: Network) -> None:
        self._key = key
        self._net = net
        self._target = threading.local()  # the requirement this thread's sign() pays
        self._client = self._make_client()

    def sign(self, offer: Offer, requirement: Requirement) -> SignedPayment:
        """Build and sign the payment of exactly ``requirement`` (one of ``offer``'s, as
        :func:`choose` returned it). Blocking. :class:`PaymentProblem` when it cannot be built
        or when the transaction built is not exactly that payment."""
        amount = requirement.amount_atomic
        if not any(r.sdk is requirement.sdk for r in offer.requirements):
            raise PaymentProblem("x402_not_offered", "that requirement is not one of the offer's")
        if (
            requirement.scheme != "exact"
            or requirement.network not in self._net.names
            or requirement.asset != self._net.usdc_mint
        ):
            raise PaymentProblem(
                "x402_not_offered", f"this wallet pays only USDC on {self._net.describe()}"
            )
        self._target.requirement = requirement.sdk
        try:
            payload = self._client.create_payment_payload(offer.sdk)
        except BaseException as exc:
            if not rpcfail.is_failure(exc):
                raise
            raise PaymentProblem(
                "x402_build_failed", f"the payment could not be built: {self._why_build(exc)}"
            ) from None
        finally:
            self._target.requirement = None
        tx = _transaction_of(payload)
        self._check_payload(payload, requirement)
        signature = _check_transaction(tx, requirement, amount, self._key.keypair)
        v2 = payload.x402_version == 2
        return SignedPayment(
            version=payload.x402_version,
            header_name=V2_SIGNATURE_HEADER if v2 else V1_SIGNATURE_HEADER,
            header_value=encode_payment_signature_header(payload),
            payer_signature=str(signature),
            blockhash=str(tx.message.recent_blockhash),
            amount_atomic=amount,
            pay_to=requirement.pay_to,
            network=requirement.network,
            asset=requirement.asset,
            payer=self._key.address,
        )

    def _make_client(self) -> x402ClientSync:
        def exactly_the_checked_one(
            version: int, reqs: list[PaymentRequirements | PaymentRequirementsV1]
        ) -> PaymentRequirements | PaymentRequirementsV1:
            target = id(getattr(self._target, "requirement", None))
            for req in reqs:
                if id(req) == target:  # that very object, not an equal one
                    return req
            raise NoMatchingRequirementsError("the checked requirement is not payable here")

        client = x402ClientSync(payment_requirements_selector=exactly_the_checked_one)
        # The SDK's own spend controls (default: known assets only, at most $1 a payment)
        # would silently refuse what the wallet's own budget and consent already allowed.
        client.set_spend_controls(False)
        register_exact_svm_client(
            client,
            KeypairSigner(self._key.keypair),
            networks=sorted(self._net.names),
            rpc_url=self._net.rpc,
        )
        return client

    def _why_build(self, exc: BaseException) -> str:
        if isinstance(exc, PaymentError):  # the SDK's own refusal (no matching scheme, ...)
            return rpcfail.clean(str(exc)) or type(exc).__name__
        if isinstance(exc, ValueError) and not _from_rpc(exc):
            return rpcfail.clean(str(exc))  # the SDK's own words: "Token mint not found: ..."
        return rpcfail.describe(exc, self._net)

    @staticmethod
    def _check_payload(payload: PaymentPayload | PaymentPayloadV1, req: Requirement) -> None:
        if isinstance(payload, PaymentPayloadV1):
            ok = payload.scheme == req.scheme and payload.network == req.network
        else:
            acc = payload.accepted
            ok = (acc.scheme, acc.network, acc.asset, acc.amount, acc.pay_to) == (
                req.scheme,
                req.network,
                req.asset,
                req.amount,
                req.pay_to,
            )
        if not ok:
            raise PaymentProblem(
                "x402_unexpected_transaction",
                "the SDK accepted another requirement than the one checked",
            )


def _transaction_of(payload: PaymentPayload | PaymentPayloadV1) -> VersionedTransaction:
    try:
        raw = base64.b64decode(payload.payload["transaction"], validate=True)
        return VersionedTransaction.from_bytes(raw)
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise PaymentProblem(
            "x402_unexpected_transaction", "the SDK built no readable Solana transaction"
        ) from None


def _check_transaction(
    tx: VersionedTransaction, req: Requirement, amount: int, keypair: Keypair
) -> Signature:
    """Refuse unless ``tx`` moves exactly ``amount`` of ``req.asset`` from this wallet to
    ``req.pay_to`` and nothing else; the wallet's signature in it (verified) otherwise."""

    def refuse(why: str) -> PaymentProblem:
        return PaymentProblem("x402_unexpected_transaction", f"refused to sign: {why}")

    me = keypair.pubkey()
    msg = tx.message
    if isinstance(msg, MessageV0) and msg.address_table_lookups:
        raise refuse("the transaction loads accounts from lookup tables")
    keys = list(msg.account_keys)
    signers = keys[: msg.header.num_required_signatures]
    if not keys or keys[0] == me:
        raise refuse("it makes this wallet pay the network fee")
    if req.fee_payer is not None and str(keys[0]) != req.fee_payer:
        raise refuse("its fee payer is not the one the router named")
    if me not in signers:
        raise refuse("this wallet does not sign it")
    transfers = []
    for ix in msg.instructions:
        program = keys[ix.program_id_index]
        if program in (COMPUTE_BUDGET_PROGRAM, MEMO_PROGRAM):
            continue
        data = bytes(ix.data)
        is_token = program in (TOKEN_PROGRAM, TOKEN_2022_PROGRAM)
        if is_token and len(data) == 10 and data[0] == _TRANSFER_CHECKED:
            transfers.append((program, ix, data))
            continue
        raise refuse(f"it runs an instruction of {program} besides the transfer")
    if len(transfers) != 1:
        raise refuse(f"it holds {len(transfers)} token transfers, not one")
    program, ix, data = transfers[0]
    accounts = [keys[i] for i in bytes(ix.accounts)]
    if len(accounts) != 4:
        raise refuse("its transfer has unexpected accounts")
    source, mint, dest, authority = accounts
    expected = {
        "amount": (int.from_bytes(data[1:9], "little"), amount),
        "decimals": (data[9], USDC_DECIMALS),
        "token": (str(mint), req.asset),
        "recipient": (dest, get_associated_token_address(_pubkey(req.pay_to), mint, program)),
        "source": (source, get_associated_token_address(me, mint, program)),
        "owner": (authority, me),
    }
    for what, (got, want) in expected.items():
        if got != want:
            raise refuse(f"its transfer's {what} is not the one checked")
    signature = tx.signatures[keys.index(me)]
    if not signature.verify(me, to_bytes_versioned(msg)):
        raise refuse("this wallet's signature in it does not verify")
    return signature


# -- reading the receipt ------------------------------------------------------------------------
def read_settlement(version: int, headers: Mapping[str, str]) -> Settlement | None:
    """The receipt on a paid answer (v2 ``PAYMENT-RESPONSE``, v1 ``X-PAYMENT-RESPONSE``);
    ``None`` when the answer has none. :class:`PaymentProblem` ``x402_malformed_settlement``
    when it is there and unreadable."""
    lowered = {k.lower(): v for k, v in headers.items()}
    names = ("payment-response", "x-payment-response") if version == 2 else ("x-payment-response",)
    value = next((lowered[n] for n in names if lowered.get(n)), None)
    if value is None:
        return None
    if len(value) > _MAX_HEADER:
        raise PaymentProblem("x402_malformed_settlement", "the payment receipt is too large")
    try:
        sr = decode_payment_response_header(value)
    except (ValueError, TypeError, AttributeError) as exc:
        raise PaymentProblem(
            "x402_malformed_settlement", f"the payment receipt cannot be read: {_why(exc)}"
        ) from None
    if sr.transaction and _signature_or_none(sr.transaction) is None:
        raise PaymentProblem(
            "x402_malformed_settlement", "the payment receipt names no valid Solana transaction"
        )
    if sr.success and not sr.transaction:
        raise PaymentProblem(
            "x402_malformed_settlement", "the receipt says paid but names no transaction"
        )
    return Settlement(
        success=sr.success,
        transaction=sr.transaction,
        network=rpcfail.clean(sr.network),
        payer=rpcfail.clean(sr.payer) if sr.payer else None,
        error_reason=rpcfail.clean(sr.error_reason) if sr.error_reason else None,
    )


# -- helpers ------------------------------------------------------------------------------------
def _why(exc: BaseException) -> str:
    """A short reason for a parse failure, never the offending input."""
    if isinstance(exc, ValidationError):
        errors = exc.errors(include_url=False, include_input=False)
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first.get("loc", ())) or "value"
            return rpcfail.clean(f"{where}: {first.get('msg', 'invalid')}")
    if isinstance(exc, json.JSONDecodeError):
        return "not JSON"
    if isinstance(exc, binascii.Error | UnicodeDecodeError):
        return "not base64 text"
    return type(exc).__name__


def _from_rpc(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if type(seen).__name__ in ("RPCException", "SolanaRpcException", "PanicException"):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _pubkey(text: str) -> Pubkey:
    found = _pubkey_or_none(text)
    if found is None:
        raise PaymentProblem("x402_bad_requirement", "the offer names no valid Solana recipient")
    return found


def _pubkey_or_none(text: str) -> Pubkey | None:
    try:
        return Pubkey.from_string(text)
    except (ValueError, TypeError):
        return None


def _signature_or_none(text: str) -> Signature | None:
    try:
        return Signature.from_string(text)
    except (ValueError, TypeError):
        return None
