"""Finding a signed x402 payment on chain after the fact, by the payer's own signature.

The payer signs its slot of the transaction with Ed25519 (deterministic), so its signature
is known before the router adds the fee payer's; the payer's recent transactions are read
(``getSignaturesForAddress``) and the one holding that signature is the payment.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from solana.rpc.async_api import AsyncClient
from solders.hash import Hash
from solders.pubkey import Pubkey
from solders.signature import Signature

from aiwallet.domain.chains import Network

PAGE = 100
MAX_PAGES = 5


@dataclass(frozen=True, slots=True)
class Lookup:
    state: str  # "landed" | "pending" | "never" | "unknown"
    tx_signature: str | None = None
    succeeded: bool = False
    problem: str | None = None


async def find_payment(
    net: Network, payer_address: str, payer_signature: str, blockhash: str, timeout: float = 10
) -> Lookup:
    try:
        return await asyncio.wait_for(
            _find(net, payer_address, payer_signature, blockhash, timeout), timeout * 2
        )
    except BaseException as exc:  # solders panics (a BaseException) on some RPC errors
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
            raise
        return Lookup("unknown", problem=type(exc).__name__)


async def _find(
    net: Network, payer_address: str, payer_signature: str, blockhash: str, timeout: float
) -> Lookup:
    payer = Pubkey.from_string(payer_address)
    ours = Signature.from_string(payer_signature)
    async with AsyncClient(net.rpc, timeout=timeout) as client:
        before: Signature | None = None
        for _ in range(MAX_PAGES):
            page = (await client.get_signatures_for_address(payer, before=before, limit=PAGE)).value
            for entry in page:
                tx = (
                    await client.get_transaction(
                        entry.signature, encoding="base64", max_supported_transaction_version=0
                    )
                ).value
                if tx is None:
                    continue
                sent = tx.transaction.transaction
                signatures = list(getattr(sent, "signatures", []))
                if ours in signatures:
                    meta = tx.transaction.meta
                    ok = meta is None or meta.err is None
                    return Lookup("landed", str(entry.signature), ok)
            if len(page) < PAGE:
                break
            before = page[-1].signature
    valid = await _blockhash_valid(net.rpc, blockhash, timeout)
    return Lookup("pending" if valid else "never")


async def _blockhash_valid(rpc: str, blockhash: str, timeout: float) -> bool:
    """``isBlockhashValid`` (solana-py has no call for it): may it still land?"""
    Hash.from_string(blockhash)  # a malformed one is refused before it is sent
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "isBlockhashValid",
        "params": [blockhash, {"commitment": "processed"}],
    }
    async with httpx.AsyncClient(timeout=timeout) as http:
        resp = await http.post(rpc, json=body)
    resp.raise_for_status()
    value = resp.json()["result"]["value"]
    if not isinstance(value, bool):
        raise ValueError("isBlockhashValid answered no boolean")
    return value
