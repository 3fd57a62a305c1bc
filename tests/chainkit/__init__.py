"""A real offline Solana + x402 test kit.

* :class:`~chainkit.rpc.SolanaRpcServer`: a Solana JSON-RPC server in front of a real LiteSVM;
* :class:`~chainkit.facilitator.FacilitatorServer`: the x402 SDK's own facilitator over HTTP;
* :class:`~chainkit.router.X402Router`: an x402 AI router (OpenAI/Anthropic wire formats from
  :mod:`fakeupstream`) paid per request or from a prepaid balance;
* :class:`ChainKit`: all of them wired together, with devnet's and mainnet's real USDC mint
  addresses, a funded fee payer and a payee.

``with ChainKit() as kit: payer = kit.new_payer(usdc_atomic=1_000_000)``; the pytest fixture
``chain`` (:mod:`chainkit.fixtures`) gives one per test.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from solders.keypair import Keypair

from aiwallet.domain.chains import DEVNET, LAMPORTS_PER_SOL, MAINNET, Network
from chainkit.facilitator import FacilitatorServer
from chainkit.router import X402Router
from chainkit.rpc import SolanaRpcServer
from fakeupstream import FakeUpstream


class ChainKit:
    """RPC (LiteSVM) + facilitator + router + fake upstream, on 127.0.0.1 ports of their own."""

    def __init__(
        self,
        *,
        network: Network = DEVNET,
        per_request: bool = True,
        prepaid: bool = True,
        price_atomic: int = 10_000,
        version: int = 2,
        input_price_atomic: Decimal = Decimal("0.5"),
        output_price_atomic: Decimal = Decimal("2"),
        fee_payer_sol: int = 10,
    ) -> None:
        self._base_network = network
        self._options = {
            "per_request": per_request,
            "prepaid": prepaid,
            "price_atomic": price_atomic,
            "version": version,
            "input_price_atomic": input_price_atomic,
            "output_price_atomic": output_price_atomic,
        }
        self._fee_payer_sol = fee_payer_sol
        self.rpc = SolanaRpcServer()
        self.upstream = FakeUpstream()
        self.payee = Keypair()
        self.facilitator: FacilitatorServer
        self.router: X402Router
        self.network: Network = network
        self._started: list[object] = []

    def start(self) -> ChainKit:
        try:
            self.rpc.start()
            self._started.append(self.rpc)
            for mint in (DEVNET.usdc_mint, MAINNET.usdc_mint):
                self.rpc.create_mint(mint, decimals=6)
            self.network = replace(self._base_network, rpc_url=self.rpc.url)
            self.facilitator = FacilitatorServer(self.rpc.url)
            self.rpc.fund_sol(
                self.facilitator.fee_payer.pubkey(), self._fee_payer_sol * LAMPORTS_PER_SOL
            )
            self.facilitator.start()
            self._started.append(self.facilitator)
            self.rpc.fund_sol(self.payee.pubkey(), LAMPORTS_PER_SOL // 100)
            self.rpc.create_token_account(self.payee.pubkey(), self.network.usdc_mint)
            self.upstream.start_in_thread()
            self._started.append(self.upstream)
            self.router = X402Router(
                facilitator_url=self.facilitator.url,
                payee=str(self.payee.pubkey()),
                network=self.network,
                upstream_url=self.upstream.base_url,
                **self._options,  # type: ignore[arg-type]
            )
            self.router.start()
            self._started.append(self.router)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        while self._started:
            self._started.pop().stop()  # type: ignore[attr-defined]

    def __enter__(self) -> ChainKit:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers --------------------------------------------------------------------------------
    @property
    def usdc_mint(self) -> str:
        return self.network.usdc_mint

    def new_payer(self, sol: int = LAMPORTS_PER_SOL // 100, usdc_atomic: int = 0) -> Keypair:
        """A fresh keypair with ``sol`` lamports and ``usdc_atomic`` units of the network's
        USDC (its associated token account created either way)."""
        payer = Keypair()
        if sol:
            self.rpc.fund_sol(payer.pubkey(), sol)
        self.rpc.mint_to(payer.pubkey(), self.usdc_mint, usdc_atomic)
        return payer

    def usdc(self, owner: object) -> int:
        """``owner``'s USDC balance in atomic units (owner: a Keypair, Pubkey or address)."""
        return self.rpc.token_balance(_address(owner), self.usdc_mint)

    def sol(self, owner: object) -> int:
        return self.rpc.sol_balance(_address(owner))


def _address(owner: object) -> str:
    if isinstance(owner, Keypair):
        return str(owner.pubkey())
    return str(owner)


__all__ = ["ChainKit", "FacilitatorServer", "SolanaRpcServer", "X402Router"]
