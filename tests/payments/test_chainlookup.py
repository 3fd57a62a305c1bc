"""Finding a signed payment on a real (LiteSVM) chain: landed (and whether it succeeded),
pending, never, unknown."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from dataclasses import replace

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.models import TxOpts
from solders.keypair import Keypair

from aiwallet.domain.errors import InvalidInput
from aiwallet.payments import chainlookup
from aiwallet.payments.chainlookup import Lookup, find_payment
from aiwallet.payments.keys import SolanaKey
from aiwallet.payments.x402pay import Payer, SignedPayment, choose, parse_payment_required
from chainkit import ChainKit

pytestmark = [
    pytest.mark.filterwarnings("ignore:Client is deprecated"),
    pytest.mark.filterwarnings("ignore:TxOpts is deprecated"),
]

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def sign(kit: ChainKit, kp: Keypair) -> SignedPayment:
    resp = httpx.post(kit.router.url + "/v1/chat/completions", json=CHAT)
    offer = parse_payment_required(resp.status_code, resp.headers, resp.content)
    assert offer is not None
    req = choose(offer, kit.network)
    assert req is not None
    return Payer(SolanaKey(kp), kit.network).sign(offer, req)


def send(kit: ChainKit, signed: SignedPayment) -> httpx.Response:
    return httpx.post(
        kit.router.url + "/v1/chat/completions",
        json=CHAT,
        headers={signed.header_name: signed.header_value},
    )


def look(kit: ChainKit, signed: SignedPayment, timeout: float = 5, net=None) -> Lookup:
    return asyncio.run(
        find_payment(
            net or kit.network, signed.payer, signed.payer_signature, signed.blockhash, timeout
        )
    )


def test_landed(chain: ChainKit) -> None:
    kp = chain.new_payer(usdc_atomic=100_000)
    signed = sign(chain, kp)
    assert send(chain, signed).status_code == 200
    (tx,) = chain.router.settled_signatures
    assert look(chain, signed) == Lookup("landed", tx_signature=tx, succeeded=True)


def test_pending_then_landed(chain: ChainKit) -> None:
    kp = chain.new_payer(usdc_atomic=100_000)
    signed = sign(chain, kp)
    assert look(chain, signed) == Lookup("pending")
    send(chain, signed)
    assert look(chain, signed).state == "landed"


def test_never_once_the_blockhash_expired(chain: ChainKit) -> None:
    kp = chain.new_payer(usdc_atomic=100_000)
    signed = sign(chain, kp)
    chain.rpc.expire_blockhash()
    assert look(chain, signed) == Lookup("never")
    # and it is true: the router cannot land it any more
    assert send(chain, signed).status_code == 402
    assert chain.usdc(kp) == 100_000


def test_landed_but_failed(chain: ChainKit) -> None:
    """The payment's transaction landed with an error (its fee paid, no token moved): the
    payer's USDC went elsewhere between signing and sending."""
    kp = chain.new_payer(usdc_atomic=10_000)
    first, second = sign(chain, kp), sign(chain, kp)  # two payments of all it has
    assert send(chain, first).status_code == 200
    # a facilitator that skips verification sends the second one anyway
    payload = _payload_tx(second)
    full = chain.facilitator.signer.sign_transaction(
        payload, chain.facilitator.fee_payer_address, chain.network.caip2
    )

    async def broadcast() -> None:
        async with AsyncClient(chain.rpc.url, timeout=5) as rpc:
            await rpc.send_raw_transaction(base64.b64decode(full), TxOpts(skip_preflight=True))

    asyncio.run(broadcast())
    found = look(chain, second)
    assert found.state == "landed" and found.succeeded is False
    landed = chain.rpc.landed(found.tx_signature or "")
    assert landed is not None and not landed.ok
    assert chain.usdc(kp) == 0 and chain.usdc(chain.payee) == 10_000


def _payload_tx(signed: SignedPayment) -> str:
    return json.loads(base64.b64decode(signed.header_value))["payload"]["transaction"]


def test_found_on_a_later_page(chain: ChainKit) -> None:
    kp = chain.new_payer(usdc_atomic=100_000)
    signed = sign(chain, kp)
    send(chain, signed)
    for _ in range(chainlookup.PAGE_SIZE + 3):  # newer transactions touching the payer
        chain.rpc.fund_sol(kp.pubkey(), 1_000_000)
    assert look(chain, signed).state == "landed"


def test_the_search_is_bounded(chain: ChainKit, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chainlookup, "MAX_PAGES", 1)
    kp = chain.new_payer(usdc_atomic=100_000)
    signed = sign(chain, kp)
    send(chain, signed)
    for _ in range(chainlookup.PAGE_SIZE):
        chain.rpc.fund_sol(kp.pubkey(), 1_000_000)
    before = chain.rpc.calls["getTransaction"]
    assert look(chain, signed) == Lookup("pending")  # beyond the pages it reads
    assert chain.rpc.calls["getTransaction"] - before == chainlookup.PAGE_SIZE


def test_unknown_when_the_rpc_fails(chain: ChainKit) -> None:
    kp = chain.new_payer(usdc_atomic=100_000)
    signed = sign(chain, kp)
    chain.rpc.fail_next("getSignaturesForAddress")
    got = look(chain, signed)
    assert got == Lookup(
        "unknown",
        problem=f"the Solana RPC at {chain.network.rpc_host} answered an error: Node is unhealthy",
    )
    chain.rpc.fail_next("isBlockhashValid", http_status=503, message="busy")
    assert look(chain, signed).problem == (
        f"the Solana RPC at {chain.network.rpc_host} answered HTTP 503"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = replace(chain.network, rpc_url=f"http://127.0.0.1:{port}/?api-key=SECRET")
    got = look(chain, signed, net=dead)
    assert got.state == "unknown" and "SECRET" not in (got.problem or "")
    assert got.problem == f"could not reach the Solana RPC at 127.0.0.1:{port}"


def test_bad_arguments_are_invalid_input(chain: ChainKit) -> None:
    kp = chain.new_payer(usdc_atomic=100_000)
    signed = sign(chain, kp)
    for bad in (
        replace(signed, payer="nobody"),
        replace(signed, payer_signature="0OIl"),
        replace(signed, blockhash="x"),
    ):
        with pytest.raises(InvalidInput):
            look(chain, bad)
