"""What the wallet holds on Solana: SOL (lamports) and tokens (atomic units), read over RPC.

Async, on solana-py's ``AsyncClient``, bounded by one timeout for the whole read. A failed read
is not an exception: :class:`WalletBalances` says what it could not read in ``problem`` (a
short reason naming the RPC by host only), so a screen shows "balance unknown: ..." rather
than a traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.models import TokenAccountOpts
from solders.pubkey import Pubkey
from solders.token.state import TokenAccount

from aiwallet.domain.chains import USDC_DECIMALS, Network
from aiwallet.domain.errors import InvalidInput
from aiwallet.payments import rpcfail

_TOKEN_ACCOUNT_LEN = 165  # the SPL token account layout (Token-2022 extensions follow it)
_MINT_DECIMALS_OFFSET = 44


@dataclass(frozen=True, slots=True)
class TokenBalance:
    mint: str
    amount_atomic: int
    decimals: int


@dataclass(frozen=True, slots=True)
class WalletBalances:
    sol_lamports: int
    tokens: dict[str, TokenBalance] = field(default_factory=dict)
    problem: str | None = None  # set when the RPC could not be read; the numbers are then 0

    @property
    def ok(self) -> bool:
        return self.problem is None


async def read_balances(
    net: Network, owner: str, mints: Sequence[str], timeout: float = 10
) -> WalletBalances:
    """SOL and each mint's balance of ``owner`` (every token account of that mint, summed;
    0 when the owner has none). Never raises for an RPC failure: see ``problem``."""
    owner_pk = _pubkey(owner, "wallet address")
    mint_pks = [_pubkey(m, "token mint") for m in mints]
    try:
        async with asyncio.timeout(timeout):
            async with AsyncClient(net.rpc, commitment=Confirmed, timeout=timeout) as rpc:
                return await _read(rpc, net, owner_pk, mint_pks)
    except BaseException as exc:
        if not rpcfail.is_failure(exc):
            raise
        return WalletBalances(0, {}, rpcfail.describe(exc, net, timeout))


async def _read(
    rpc: AsyncClient, net: Network, owner: Pubkey, mints: list[Pubkey]
) -> WalletBalances:
    lamports = (await rpc.get_balance(owner)).value
    tokens: dict[str, TokenBalance] = {}
    if mints:
        infos = (await rpc.get_multiple_accounts(mints)).value
        for mint, info in zip(mints, infos, strict=True):
            if info is not None and len(info.data) > _MINT_DECIMALS_OFFSET:
                decimals = info.data[_MINT_DECIMALS_OFFSET]
            else:  # no such mint on this cluster: nothing can be held of it
                decimals = USDC_DECIMALS if str(mint) == net.usdc_mint else 0
            accounts = (
                await rpc.get_token_accounts_by_owner(owner, TokenAccountOpts(mint=mint))
            ).value
            amount = 0
            for keyed in accounts:
                data = bytes(keyed.account.data)
                if len(data) >= _TOKEN_ACCOUNT_LEN:
                    state = TokenAccount.from_bytes(data[:_TOKEN_ACCOUNT_LEN])
                    if state.owner == owner and state.mint == mint:
                        amount += state.amount
            tokens[str(mint)] = TokenBalance(str(mint), amount, decimals)
    return WalletBalances(lamports, tokens)


def _pubkey(text: str, what: str) -> Pubkey:
    try:
        return Pubkey.from_string(text)
    except (ValueError, TypeError):
        raise InvalidInput(f"not a Solana {what} (a base58 public key)") from None
