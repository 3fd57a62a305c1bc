"""Did a signed x402 payment land? Asked of the chain, not of the router.

After a crash, a cut connection or a router that answered 402 after settling, the wallet
holds a :class:`~aiwallet.payments.x402pay.SignedPayment` and needs to know whether its money
moved. The transaction's id is the facilitator's fee-payer signature, which the wallet never
sees; the wallet's own signature is in the transaction too (Ed25519 is deterministic), so
:func:`find_payment` walks the payer's recent transactions (``getSignaturesForAddress``,
newest first, a bounded number of pages) and reads each (``getTransaction``) until one
carries that signature.

The answer (:class:`Lookup`):

* ``landed``: found; ``tx_signature`` is its id, ``succeeded`` whether it ran without error
  (a failed one landed too: its fee was paid, no token moved);
* ``pending``: not found, and its blockhash is still valid: it may still land;
* ``never``: not found, and its blockhash is no longer valid: it can never land. The blockhash
  is asked about *before* the history is read, so a transaction landing between the two
  questions is never called ``never``;
* ``unknown``: the RPC failed; ``problem`` says how (naming it by host only).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, Literal, cast

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solana.rpc.providers.async_http import AsyncHTTPProvider
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.rpc.responses import IsBlockhashValidResp
from solders.signature import Signature

from aiwallet.domain.chains import Network
from aiwallet.domain.errors import InvalidInput
from aiwallet.payments import rpcfail

PAGE_SIZE = 25  # signatures per getSignaturesForAddress page
MAX_PAGES = 4  # at most this many pages (100 transactions) are searched
PARALLEL_READS = 5  # getTransaction calls in flight at once

State = Literal["landed", "pending", "never", "unknown"]


@dataclass(frozen=True, slots=True)
class Lookup:
    state: State
    tx_signature: str | None = None  # landed: the transaction id
    succeeded: bool | None = None  # landed: whether it ran without error
    problem: str | None = None  # unknown: what failed


class _IsBlockhashValid:
    """The JSON-RPC request ``isBlockhashValid``: solana-py 0.39 has no method for it (and
    solders no request class), so it goes through solana-py's own HTTP provider."""

    def __init__(self, blockhash: Hash) -> None:
        self.blockhash = blockhash

    def to_json(self) -> str:
        params = [str(self.blockhash), {"commitment": "confirmed"}]
        return json.dumps(
            {"jsonrpc": "2.0", "id": 1, "method": "isBlockhashValid", "params": params}
        )


async def find_payment(
    net: Network, payer_address: str, payer_signature: str, blockhash: str, timeout: float = 10
) -> Lookup:
    """Where the payment signed by ``payer_address`` (its signature ``payer_signature``, made
    over a transaction with ``blockhash``) stands on ``net``. Never raises for an RPC failure
    (``unknown``); :class:`InvalidInput` for arguments that are not Solana values."""
    payer = _parse(Pubkey.from_string, payer_address, "address")
    wanted = _parse(Signature.from_string, payer_signature, "signature")
    recent = _parse(Hash.from_string, blockhash, "blockhash")
    try:
        async with asyncio.timeout(timeout):
            valid = await _blockhash_valid(net, recent, timeout)
            async with AsyncClient(net.rpc, commitment=Confirmed, timeout=timeout) as rpc:
                found = await _search(rpc, payer, wanted)
    except BaseException as exc:
        if not rpcfail.is_failure(exc):
            raise
        return Lookup("unknown", problem=rpcfail.describe(exc, net, timeout))
    if found is not None:
        tx_id, ok = found
        return Lookup("landed", tx_signature=tx_id, succeeded=ok)
    return Lookup("pending") if valid else Lookup("never")


async def _blockhash_valid(net: Network, blockhash: Hash, timeout: float) -> bool:
    provider = AsyncHTTPProvider(net.rpc, timeout=timeout)
    try:
        raw = await provider.make_request_unparsed(cast(Any, _IsBlockhashValid(blockhash)))
    finally:
        await provider.close()
    parsed = IsBlockhashValidResp.from_json(raw)
    if not isinstance(parsed, IsBlockhashValidResp):
        raise RPCException(parsed)
    return bool(parsed.value)


async def _search(rpc: AsyncClient, payer: Pubkey, wanted: Signature) -> tuple[str, bool] | None:
    before: Signature | None = None
    for _page in range(MAX_PAGES):
        page = (await rpc.get_signatures_for_address(payer, before=before, limit=PAGE_SIZE)).value
        ids = [entry.signature for entry in page]
        for start in range(0, len(ids), PARALLEL_READS):
            chunk = ids[start : start + PARALLEL_READS]
            reads = await asyncio.gather(*(_signatures_of(rpc, s) for s in chunk))
            for tx_id, (signatures, ok) in zip(chunk, reads, strict=True):
                if wanted in signatures:
                    return str(tx_id), ok
        if len(ids) < PAGE_SIZE:
            return None
        before = ids[-1]
    return None


async def _signatures_of(rpc: AsyncClient, tx_id: Signature) -> tuple[list[Signature], bool]:
    got = await rpc.get_transaction(tx_id, encoding="base64", max_supported_transaction_version=0)
    if got.value is None:
        return [], False
    encoded = got.value.transaction
    tx = encoded.transaction
    signatures = list(tx.signatures)
    ok = encoded.meta is not None and encoded.meta.err is None
    return signatures, ok


def _parse(parse: Any, text: str, what: str) -> Any:
    try:
        return parse(text)
    except Exception:  # ValueError, or solders' own ParseHashError (not a ValueError)
        raise InvalidInput(f"not a Solana {what}") from None
