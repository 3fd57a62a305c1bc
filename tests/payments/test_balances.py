"""Balances read from a real (LiteSVM) chain over RPC; a failing RPC is a short problem that
names the RPC by host only."""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import replace

import pytest
from solders.keypair import Keypair

from aiwallet.domain.chains import DEVNET, MAINNET
from aiwallet.domain.errors import InvalidInput
from aiwallet.payments.balances import TokenBalance, read_balances
from chainkit import ChainKit


def read(kit_or_net, owner, mints, timeout=5.0):
    net = kit_or_net.network if isinstance(kit_or_net, ChainKit) else kit_or_net
    return asyncio.run(read_balances(net, str(owner), mints, timeout=timeout))


def test_sol_and_usdc(chain: ChainKit) -> None:
    payer = chain.new_payer(sol=123_456_789, usdc_atomic=4_200_001)
    got = read(chain, payer.pubkey(), [chain.usdc_mint])
    assert got.ok and got.problem is None
    assert got.sol_lamports == 123_456_789
    assert got.tokens == {chain.usdc_mint: TokenBalance(chain.usdc_mint, 4_200_001, 6)}


def test_a_mint_without_an_account_counts_zero(chain: ChainKit) -> None:
    payer = chain.new_payer(usdc_atomic=5)
    nine = chain.rpc.create_mint(Keypair().pubkey(), decimals=9)
    nowhere = str(Keypair().pubkey())  # no such mint on this chain
    got = read(chain, payer.pubkey(), [chain.usdc_mint, MAINNET.usdc_mint, str(nine), nowhere])
    assert got.tokens[chain.usdc_mint].amount_atomic == 5
    assert got.tokens[MAINNET.usdc_mint] == TokenBalance(MAINNET.usdc_mint, 0, 6)
    assert got.tokens[str(nine)] == TokenBalance(str(nine), 0, 9)
    assert got.tokens[nowhere] == TokenBalance(nowhere, 0, 0)


def test_an_unknown_owner_has_nothing(chain: ChainKit) -> None:
    got = read(chain, Keypair().pubkey(), [chain.usdc_mint])
    assert got.ok and got.sol_lamports == 0 and got.tokens[chain.usdc_mint].amount_atomic == 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_dead_rpc_is_a_problem_naming_the_host_only() -> None:
    port = _closed_port()
    url = f"http://user:hunter2@127.0.0.1:{port}/v2/KEY-IN-PATH?api-key=KEY-IN-QUERY"
    net = replace(DEVNET, rpc_url=url)
    got = read(net, Keypair().pubkey(), [DEVNET.usdc_mint])
    assert got.problem == f"could not reach the Solana RPC at 127.0.0.1:{port}"
    assert got.sol_lamports == 0 and got.tokens == {}
    for secret in ("hunter2", "KEY-IN-PATH", "KEY-IN-QUERY", "user"):
        assert secret not in got.problem


@pytest.mark.parametrize(
    ("fault", "said"),
    [
        ({"code": -32005}, "answered an error: Node is unhealthy"),
        ({"http_status": 429, "message": "Too many requests"}, "answered HTTP 429"),
        # a -32005 without its data makes solders panic (a BaseException): still a problem
        ({"code": -32005, "data": None}, "sent an answer this wallet cannot read"),
    ],
)
def test_an_rpc_error_is_a_problem(chain: ChainKit, fault: dict, said: str) -> None:
    payer = chain.new_payer(usdc_atomic=1)
    chain.rpc.fail_next("getBalance", **fault)
    got = read(chain, payer.pubkey(), [chain.usdc_mint])
    assert got.problem == f"the Solana RPC at {chain.network.rpc_host} {said}"


def test_a_slow_rpc_times_out(chain: ChainKit) -> None:
    payer = chain.new_payer(usdc_atomic=1)
    release = threading.Event()
    chain.rpc.delay("getTokenAccountsByOwner", release)
    try:
        got = read(chain, payer.pubkey(), [chain.usdc_mint], timeout=0.3)
    finally:
        release.set()
    assert got.problem == f"the Solana RPC at {chain.network.rpc_host} did not answer within 0.3 s"


def test_a_bad_address_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="wallet address"):
        read(DEVNET, "not-an-address", [])
    with pytest.raises(InvalidInput, match="token mint"):
        read(DEVNET, str(Keypair().pubkey()), ["0OIl"])
