"""SOL and SPL token balances of an address, read with solana-py's async client."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from solana.rpc.async_api import AsyncClient
from solana.rpc.models import TokenAccountOpts
from solders.pubkey import Pubkey

from aiwallet.domain.chains import Network

# SPL token account layout: mint (32) | owner (32) | amount (u64 LE) | ...
_AMOUNT_AT = 64
_MINT_DECIMALS_AT = 44  # in a mint account: authority option (4+32) | supply (8) | decimals


@dataclass(frozen=True, slots=True)
class TokenBalance:
    mint: str
    amount_atomic: int
    decimals: int


@dataclass(frozen=True, slots=True)
class WalletBalances:
    sol_lamports: int
    tokens: dict[str, TokenBalance] = field(default_factory=dict)
    problem: str | None = None  # why they could not be read (the RPC's host, never its URL)

    def to_json(self) -> dict[str, Any]:
        return {
            "sol_lamports": self.sol_lamports,
            "tokens": {
                m: {"amount_atomic": t.amount_atomic, "decimals": t.decimals}
                for m, t in self.tokens.items()
            },
            "problem": self.problem,
        }


async def read_balances(
    net: Network, owner: str, mints: Sequence[str], timeout: float = 10
) -> WalletBalances:
    """The balances of ``owner`` (a mint it holds no account for counts 0)."""
    try:
        return await asyncio.wait_for(_read(net, owner, mints, timeout), timeout)
    except BaseException as exc:  # solders panics (a BaseException) on some RPC errors
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
            raise
        what = "did not answer in time" if isinstance(exc, TimeoutError) else type(exc).__name__
        return WalletBalances(0, {}, f"the Solana RPC at {net.rpc_host} failed ({what})")


async def _read(net: Network, owner: str, mints: Sequence[str], timeout: float) -> WalletBalances:
    pub = Pubkey.from_string(owner)
    async with AsyncClient(net.rpc, timeout=timeout) as client:
        sol = (await client.get_balance(pub)).value
        tokens: dict[str, TokenBalance] = {}
        for mint in dict.fromkeys(mints):
            mint_pub = Pubkey.from_string(mint)
            accounts = await client.get_token_accounts_by_owner(
                pub, TokenAccountOpts(mint=mint_pub)
            )
            amount = 0
            for acc in accounts.value:
                data = bytes(acc.account.data)
                amount += int.from_bytes(data[_AMOUNT_AT : _AMOUNT_AT + 8], "little")
            info = (await client.get_account_info(mint_pub)).value
            decimals = bytes(info.data)[_MINT_DECIMALS_AT] if info is not None else 0
            tokens[mint] = TokenBalance(mint, amount, decimals)
    return WalletBalances(int(sol), tokens)
