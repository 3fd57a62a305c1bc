"""The chain kit is real: payments made by the x402 SDK's own client land on LiteSVM through
the SDK's own facilitator, and every bad-day knob of the router and the RPC does what it says."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from decimal import Decimal

import httpx
import pytest
from solana.rpc.async_api import AsyncClient
from solana.rpc.commitment import Confirmed
from solana.rpc.core import RPCException
from solana.rpc.models import TxOpts
from solders.keypair import Keypair
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.signature import Signature
from solders.system_program import TransferParams, transfer
from solders.transaction import VersionedTransaction
from x402 import x402Client, x402ClientSync
from x402.http.clients.httpx import PaymentError, x402HttpxClient
from x402.http.utils import (
    decode_payment_required_header,
    decode_payment_response_header,
    encode_payment_signature_header,
)
from x402.mechanisms.svm import KeypairSigner
from x402.mechanisms.svm.exact import register_exact_svm_client

from chainkit import ChainKit
from chainkit.router import evm_accept, solana_accept
from chainkit.rpc import LAMPORTS_PER_SIGNATURE

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello there"}]}
MESSAGES = {
    "model": "claude-haiku-4-5",
    "max_tokens": 20,
    "messages": [{"role": "user", "content": "hello there"}],
}
ANTHROPIC_HEADERS = {"anthropic-version": "2023-06-01"}

# solana-py 0.39 marks its sync Client and TxOpts deprecated; the x402 SDK uses both.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Client is deprecated"),
    pytest.mark.filterwarnings("ignore:TxOpts is deprecated"),
]


def sdk_client(kit: ChainKit, payer: Keypair) -> x402Client:
    client = x402Client()
    register_exact_svm_client(client, KeypairSigner(payer), rpc_url=kit.rpc.url)
    return client


def pay(kit: ChainKit, payer: Keypair, path: str = "/v1/chat/completions", **kw) -> httpx.Response:
    """One request through the SDK's own paying httpx client."""

    async def go() -> httpx.Response:
        async with x402HttpxClient(sdk_client(kit, payer), timeout=20) as http:
            return await http.post(kit.router.url + path, **kw)

    return asyncio.run(go())


def balances(kit: ChainKit, *who: object) -> list[int]:
    return [kit.usdc(w) for w in who]


def test_a_v2_payment_moves_exactly_the_price(chain: ChainKit) -> None:
    payer = chain.new_payer(usdc_atomic=1_000_000)
    fee_payer = chain.facilitator.fee_payer_address
    sol_before = chain.sol(payer), chain.sol(fee_payer)

    resp = pay(chain, payer, json=CHAT)

    assert resp.status_code == 200, resp.text
    assert resp.json()["object"] == "chat.completion"
    settled = decode_payment_response_header(resp.headers["PAYMENT-RESPONSE"])
    assert settled.success and settled.payer == str(payer.pubkey())
    assert settled.network == chain.network.caip2
    assert balances(chain, payer, chain.payee) == [1_000_000 - 10_000, 10_000]
    assert chain.router.settled_signatures == [settled.transaction]
    assert chain.rpc.landed_signatures() == [settled.transaction]
    landed = chain.rpc.landed(settled.transaction)
    assert landed is not None and landed.ok
    # the facilitator paid the fee (two signatures), the payer not a lamport
    assert landed.fee == 2 * LAMPORTS_PER_SIGNATURE
    assert chain.sol(payer) == sol_before[0]
    assert chain.sol(fee_payer) == sol_before[1] - landed.fee
    assert chain.router.served == {"402": 1, "paid": 1}
    assert chain.facilitator.verify_calls == 1 and chain.facilitator.settle_calls == 1


def test_the_402_is_a_v2_offer_on_the_network_usdc(chain: ChainKit) -> None:
    resp = httpx.post(chain.router.url + "/v1/chat/completions", json=CHAT)
    assert resp.status_code == 402
    assert resp.json()["error"]["code"] == "payment_required"
    offer = decode_payment_required_header(resp.headers["PAYMENT-REQUIRED"])
    assert offer.x402_version == 2 and offer.resource is not None
    assert offer.resource.url == chain.router.url + "/v1/chat/completions"
    (req,) = offer.accepts
    assert (req.scheme, req.network, req.asset, req.amount, req.pay_to) == (
        "exact",
        "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1",
        "4zMMC9srt5Ri5X14GAgXhaHii3GnPAEERYPJgZJDncDU",
        "10000",
        str(chain.payee.pubkey()),
    )
    assert req.extra["feePayer"] == chain.facilitator.fee_payer_address


def test_a_v1_payment(chain: ChainKit) -> None:
    chain.router.version = 1
    offer = httpx.post(chain.router.url + "/v1/chat/completions", json=CHAT)
    assert offer.status_code == 402 and "PAYMENT-REQUIRED" not in offer.headers
    body = offer.json()
    assert body["x402Version"] == 1
    assert body["accepts"][0]["network"] == "solana-devnet"
    assert body["accepts"][0]["maxAmountRequired"] == "10000"
    payer = chain.new_payer(usdc_atomic=50_000)

    resp = pay(chain, payer, json=CHAT)

    assert resp.status_code == 200, resp.text
    settled = decode_payment_response_header(resp.headers["X-PAYMENT-RESPONSE"])
    assert settled.success and "PAYMENT-RESPONSE" not in resp.headers
    assert balances(chain, payer, chain.payee) == [40_000, 10_000]


def test_anthropic_messages_and_streams_are_paid_too(chain: ChainKit) -> None:
    payer = chain.new_payer(usdc_atomic=100_000)
    resp = pay(chain, payer, "/v1/messages", json=MESSAGES, headers=ANTHROPIC_HEADERS)
    assert resp.status_code == 200 and resp.json()["type"] == "message"
    stream = pay(chain, payer, json={**CHAT, "stream": True})
    assert stream.status_code == 200
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.text.endswith("data: [DONE]\n\n")
    assert decode_payment_response_header(stream.headers["PAYMENT-RESPONSE"]).success
    assert balances(chain, payer) == [80_000]


def test_the_same_request_direct_and_through_the_router_is_byte_identical(chain: ChainKit) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    direct = httpx.post(
        chain.upstream.base_url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {chain.router.openai_key}"},
    )
    paid = pay(chain, chain.new_payer(usdc_atomic=10_000), json=body)
    assert paid.content == direct.content


def test_prepaid_top_up_and_billing_from_the_balance(chain: ChainKit) -> None:
    payer = chain.new_payer(usdc_atomic=1_000_000)
    unpaid = httpx.post(chain.router.url + "/v1/topup", json={"amount": "200000"})
    assert unpaid.status_code == 402
    offer = decode_payment_required_header(unpaid.headers["PAYMENT-REQUIRED"])
    assert offer.accepts[-1].amount == "200000"

    topped = pay(chain, payer, "/v1/topup", json={"amount": "200000"})

    assert topped.status_code == 200, topped.text
    key = topped.json()["api_key"]
    assert key.startswith("rk_")
    assert topped.json()["balance"] == {
        "amount": "200000",
        "asset": chain.usdc_mint,
        "network": chain.network.caip2,
    }
    assert balances(chain, payer, chain.payee) == [800_000, 200_000]
    again = pay(chain, payer, "/v1/topup", json={"amount": "1000"})
    assert again.json()["api_key"] == key and again.json()["balance"]["amount"] == "201000"

    auth = {"Authorization": f"Bearer {key}"}
    answer = httpx.post(chain.router.url + "/v1/chat/completions", json=CHAT, headers=auth)
    assert answer.status_code == 200
    usage = answer.json()["usage"]
    cost = chain.router.cost_atomic(usage["prompt_tokens"], usage["completion_tokens"])
    assert Decimal(usage["cost"]) == Decimal(cost).scaleb(-6)
    balance = httpx.get(chain.router.url + "/v1/balance", headers=auth).json()
    assert balance["amount"] == str(201_000 - cost)

    msgs = httpx.post(
        chain.router.url + "/v1/messages", json=MESSAGES, headers={**auth, **ANTHROPIC_HEADERS}
    )
    assert msgs.status_code == 200 and "cost" in msgs.json()["usage"]

    # a stream whose client did not ask for usage: billed all the same, bytes as asked
    streamed = httpx.post(
        chain.router.url + "/v1/chat/completions", json={**CHAT, "stream": True}, headers=auth
    )
    direct = httpx.post(
        chain.upstream.base_url + "/v1/chat/completions",
        json={**CHAT, "stream": True},
        headers={"Authorization": f"Bearer {chain.router.openai_key}"},
    )
    assert streamed.content == direct.content
    with_usage = httpx.post(
        chain.router.url + "/v1/chat/completions",
        json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        headers=auth,
    )
    events = [e for e in with_usage.text.split("\n\n") if e.startswith("data: {")]
    final = json.loads(events[-1][6:])
    assert final["choices"] == [] and final["usage"]["cost"] == usage["cost"]
    after = int(httpx.get(chain.router.url + "/v1/balance", headers=auth).json()["amount"])
    assert after == 201_000 - 3 * cost - chain.router.cost_atomic(
        *_anthropic_tokens(msgs.json()["usage"])
    )


def _anthropic_tokens(usage: dict) -> tuple[int, int]:
    return usage["input_tokens"], usage["output_tokens"]


def test_prepaid_refusals(chain: ChainKit) -> None:
    payer = chain.new_payer(usdc_atomic=10_000)
    key = pay(chain, payer, "/v1/topup", json={"amount": "10"}).json()["api_key"]
    auth = {"Authorization": f"Bearer {key}"}
    poor = httpx.post(chain.router.url + "/v1/chat/completions", json=CHAT, headers=auth)
    assert poor.status_code == 402
    assert poor.json()["error"]["code"] == "insufficient_balance"
    assert "PAYMENT-REQUIRED" not in poor.headers
    unknown = {"Authorization": "Bearer rk_unknown"}
    assert (
        httpx.post(
            chain.router.url + "/v1/chat/completions", json=CHAT, headers=unknown
        ).status_code
        == 401
    )
    assert httpx.get(chain.router.url + "/v1/balance", headers=unknown).status_code == 401
    assert httpx.post(chain.router.url + "/v1/topup", json={"amount": "-5"}).status_code == 400
    assert httpx.post(chain.router.url + "/v1/topup", json={"amount": 5}).status_code == 400


@pytest.mark.parametrize("where", ["facilitator", "router"])
def test_a_failed_settlement_leaves_balances_unchanged(chain: ChainKit, where: str) -> None:
    payer = chain.new_payer(usdc_atomic=100_000)
    if where == "facilitator":
        chain.facilitator.fail_settle_next(1)
    else:
        chain.router.settle_fails = True

    resp = pay(chain, payer, json=CHAT)

    assert resp.status_code == 402
    settled = decode_payment_response_header(resp.headers["PAYMENT-RESPONSE"])
    assert not settled.success and settled.error_reason
    assert balances(chain, payer, chain.payee) == [100_000, 0]
    assert chain.rpc.landed_signatures() == []
    assert chain.router.served["settle_failed"] == 1


def test_signatures_for_address_find_the_landed_payment(chain: ChainKit) -> None:
    payer = chain.new_payer(usdc_atomic=100_000)
    tx = decode_payment_response_header(pay(chain, payer, json=CHAT).headers["PAYMENT-RESPONSE"])

    async def look() -> tuple[list[str], list[str], int]:
        async with AsyncClient(chain.rpc.url, commitment=Confirmed, timeout=5) as rpc:
            sigs = (await rpc.get_signatures_for_address(payer.pubkey(), limit=10)).value
            page2 = (
                await rpc.get_signatures_for_address(payer.pubkey(), before=sigs[0].signature)
            ).value
            got = await rpc.get_transaction(
                Signature.from_string(tx.transaction), max_supported_transaction_version=0
            )
            assert got.value is not None and got.value.transaction.meta is not None
            return (
                [str(s.signature) for s in sigs],
                [str(s.signature) for s in page2],
                got.value.transaction.meta.fee,
            )

    newest_first, older, fee = asyncio.run(look())
    assert newest_first[0] == tx.transaction  # newest first
    assert len(newest_first) == 3  # the payment, the kit's mint_to, the kit's SOL funding
    assert older == newest_first[1:]
    assert fee == 2 * LAMPORTS_PER_SIGNATURE
    memo = chain.rpc.landed(tx.transaction)
    assert memo is not None and memo.memo is not None and memo.memo.startswith("[32] ")


def test_an_expired_blockhash_makes_a_signed_payment_fail_to_land(chain: ChainKit) -> None:
    payer = chain.new_payer(usdc_atomic=100_000)
    offer = decode_payment_required_header(
        httpx.post(chain.router.url + "/v1/chat/completions", json=CHAT).headers["PAYMENT-REQUIRED"]
    )
    client = x402ClientSync()
    register_exact_svm_client(client, KeypairSigner(payer), rpc_url=chain.rpc.url)
    payload = client.create_payment_payload(offer)  # signed now, sent after the expiry

    chain.rpc.expire_blockhash()

    resp = httpx.post(
        chain.router.url + "/v1/chat/completions",
        json=CHAT,
        headers={"PAYMENT-SIGNATURE": encode_payment_signature_header(payload)},
    )
    assert resp.status_code == 402
    again = decode_payment_required_header(resp.headers["PAYMENT-REQUIRED"])
    assert again.error == "transaction_simulation_failed"
    assert balances(chain, payer, chain.payee) == [100_000, 0]
    assert chain.rpc.landed_signatures() == []


def test_an_expired_blockhash_at_the_rpc(chain: ChainKit) -> None:
    """A node refuses it at preflight, and with skipPreflight takes it and drops it."""
    payer = chain.new_payer(sol=10**9)

    async def go() -> None:
        async with AsyncClient(chain.rpc.url, timeout=5) as rpc:
            latest = (await rpc.get_latest_blockhash()).value
            ix = transfer(
                TransferParams(from_pubkey=payer.pubkey(), to_pubkey=Pubkey.default(), lamports=1)
            )
            msg = MessageV0.try_compile(payer.pubkey(), [ix], [], latest.blockhash)
            tx = VersionedTransaction(msg, [payer])
            chain.rpc.expire_blockhash()
            assert (await rpc.get_block_height()).value > latest.last_valid_block_height
            with pytest.raises(RPCException, match="simulation failed"):
                await rpc.send_raw_transaction(bytes(tx))
            sig = (await rpc.send_raw_transaction(bytes(tx), TxOpts(skip_preflight=True))).value
            assert (await rpc.get_signature_statuses([sig])).value == [None]
            assert chain.rpc.dropped_signatures() == [str(sig)]

    asyncio.run(go())
    assert chain.rpc.landed_signatures() == []


def test_price_changes_at_runtime_and_ask_more(chain: ChainKit) -> None:
    payer = chain.new_payer(usdc_atomic=100_000)
    chain.router.price_atomic = 2_500
    assert pay(chain, payer, json=CHAT).status_code == 200
    chain.router.ask_more = 500
    offer = decode_payment_required_header(
        httpx.post(chain.router.url + "/v1/chat/completions", json=CHAT).headers["PAYMENT-REQUIRED"]
    )
    assert offer.accepts[0].amount == "3000"
    assert pay(chain, payer, json=CHAT).status_code == 200
    assert balances(chain, payer, chain.payee) == [100_000 - 5_500, 5_500]


def test_extra_accepts_are_listed_first_and_the_sdk_pays_the_usdc_one(chain: ChainKit) -> None:
    other_mint = chain.rpc.create_mint(Keypair().pubkey())
    chain.router.extra_accepts = [
        evm_accept(10_000),
        solana_accept(
            chain.network.caip2,
            str(other_mint),
            10_000,
            str(chain.payee.pubkey()),
            chain.facilitator.fee_payer_address,
        ),
    ]
    offer = decode_payment_required_header(
        httpx.post(chain.router.url + "/v1/chat/completions", json=CHAT).headers["PAYMENT-REQUIRED"]
    )
    assert [a.network for a in offer.accepts] == ["eip155:8453", *[chain.network.caip2] * 2]
    payer = chain.new_payer(usdc_atomic=20_000)
    assert pay(chain, payer, json=CHAT).status_code == 200  # spend controls skip the other mint
    assert balances(chain, payer) == [10_000]


def test_stall_after_settle_holds_the_answer_once_the_money_moved(chain: ChainKit) -> None:
    payer = chain.new_payer(usdc_atomic=100_000)
    chain.router.stall_after_settle = True
    result: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: result.append(pay(chain, payer, json=CHAT)))
    worker.start()
    assert chain.router.after_settle_reached.wait(10)
    assert balances(chain, payer, chain.payee) == [90_000, 10_000]  # settled, no answer yet
    assert result == []
    chain.router.release_after_settle.set()
    worker.join(10)
    assert result[0].status_code == 200


def test_stall_before_settle_holds_the_payment_unsettled(chain: ChainKit) -> None:
    payer = chain.new_payer(usdc_atomic=100_000)
    chain.router.stall_before_settle = True
    result: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: result.append(pay(chain, payer, json=CHAT)))
    worker.start()
    assert chain.router.before_settle_reached.wait(10)
    assert balances(chain, payer, chain.payee) == [100_000, 0]
    assert chain.facilitator.verify_calls == 1 and chain.facilitator.settle_calls == 0
    chain.router.release_before_settle.set()
    worker.join(10)
    assert result[0].status_code == 200 and balances(chain, payer) == [90_000]


def test_cut_stream_after_payment(chain: ChainKit) -> None:
    payer = chain.new_payer(usdc_atomic=100_000)
    chain.router.cut_stream_after_payment = True

    async def go() -> tuple[int, bytes, str]:
        got = b""
        url = chain.router.url + "/v1/chat/completions"
        async with (
            x402HttpxClient(sdk_client(chain, payer), timeout=20) as http,
            http.stream("POST", url, json={**CHAT, "stream": True}) as resp,
        ):
            with pytest.raises(httpx.RemoteProtocolError):
                async for chunk in resp.aiter_raw():
                    got += chunk
            return resp.status_code, got, resp.headers["PAYMENT-RESPONSE"]

    status, got, header = asyncio.run(go())
    assert status == 200 and decode_payment_response_header(header).success
    assert got.count(b"\n\n") == 1 and b"[DONE]" not in got  # headers and the first event
    assert balances(chain, payer) == [90_000]


def test_error_after_payment_and_echoing_the_payment_header(chain: ChainKit) -> None:
    payer = chain.new_payer(usdc_atomic=100_000)
    chain.router.error_after_payment = True
    chain.router.echo_payment_header_in_error = True
    resp = pay(chain, payer, json=CHAT)
    assert resp.status_code == 500
    assert decode_payment_response_header(resp.headers["PAYMENT-RESPONSE"]).success
    echoed = resp.json()["error"]["message"].split("payment header: ")[1].rstrip(")")
    assert json.loads(base64.b64decode(echoed))["x402Version"] == 2
    assert balances(chain, payer) == [90_000]


def test_concurrent_payers(chain: ChainKit) -> None:
    payers = [chain.new_payer(usdc_atomic=50_000) for _ in range(4)]
    results: list[int] = []
    lock = threading.Lock()

    def one(p: Keypair) -> None:
        status = pay(chain, p, json=CHAT).status_code
        with lock:
            results.append(status)

    workers = [threading.Thread(target=one, args=(p,)) for p in payers]
    for w in workers:
        w.start()
    for w in workers:
        w.join(20)
    assert results == [200] * 4
    assert balances(chain, *payers, chain.payee) == [40_000] * 4 + [40_000]
    assert len(set(chain.rpc.landed_signatures())) == 4


def test_rpc_fail_next_and_delay(chain: ChainKit) -> None:
    payer = chain.new_payer(usdc_atomic=100_000)
    chain.rpc.fail_next("getLatestBlockhash")
    with pytest.raises(PaymentError, match="Node is unhealthy"):
        pay(chain, payer, json=CHAT)  # the SDK could not build the payment: nothing sent
    assert chain.router.served == {"402": 1}
    release = threading.Event()
    chain.rpc.delay("sendTransaction", release)
    result: list[httpx.Response] = []
    worker = threading.Thread(target=lambda: result.append(pay(chain, payer, json=CHAT)))
    worker.start()
    _wait(lambda: chain.rpc.waiting("sendTransaction") == 1)
    assert balances(chain, payer) == [100_000]
    release.set()
    worker.join(10)
    assert result[0].status_code == 200 and balances(chain, payer) == [90_000]


def _wait(predicate) -> None:
    from waiting import wait_until

    wait_until(predicate, timeout_s=10, what="the condition")


def test_the_rpc_answers_the_other_methods_solana_py_asks(chain: ChainKit) -> None:
    payer = chain.new_payer(sol=10**9, usdc_atomic=7)

    async def go() -> None:
        async with AsyncClient(chain.rpc.url, timeout=5) as rpc:
            assert await rpc.is_connected()
            assert (await rpc.get_version()).value.solana_core.endswith("litesvm")
            assert (await rpc.get_slot()).value == (await rpc.get_block_height()).value == 0
            rent = (await rpc.get_minimum_balance_for_rent_exemption(165)).value
            assert rent == chain.rpc.svm.minimum_balance_for_rent_exemption(165)
            fresh = Keypair().pubkey()
            sig = (await rpc.request_airdrop(fresh, 5 * 10**9)).value
            assert (await rpc.get_signature_statuses([sig])).value[0] is not None
            accounts = (await rpc.get_multiple_accounts([fresh, Pubkey.default()])).value
            assert accounts[0] is not None and accounts[0].lamports == 5 * 10**9
            latest = (await rpc.get_latest_blockhash()).value
            msg = MessageV0.try_compile(payer.pubkey(), [], [], latest.blockhash)
            assert (await rpc.get_fee_for_message(msg)).value == LAMPORTS_PER_SIGNATURE

    asyncio.run(go())
    unknown = httpx.post(chain.rpc.url, json={"jsonrpc": "2.0", "id": 7, "method": "getFoo"})
    assert unknown.json() == {
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": "Method not found"},
        "id": 7,
    }
    batch = httpx.post(
        chain.rpc.url,
        json=[
            {"jsonrpc": "2.0", "id": 1, "method": "getBalance", "params": [str(payer.pubkey())]},
            {"jsonrpc": "2.0", "id": 2, "method": "getSlot"},
        ],
    ).json()
    assert [r["id"] for r in batch] == [1, 2] and batch[0]["result"]["value"] == 10**9
