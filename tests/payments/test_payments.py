"""The payments package against the real offline chain and the SDK: keys in every form, the
402 read and the requirement chosen, what is signed checked against what was chosen, balances,
and finding a payment on chain afterwards."""

import asyncio
import base64
import json
from dataclasses import replace

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from solders.keypair import Keypair

from aiwallet.domain.chains import DEVNET, MAINNET, network
from aiwallet.domain.errors import InvalidInput
from aiwallet.payments.balances import read_balances
from aiwallet.payments.chainlookup import find_payment
from aiwallet.payments.keys import SolanaKey, check_address
from aiwallet.payments.x402pay import (
    Payer,
    PaymentProblem,
    choose,
    parse_payment_required,
    read_settlement,
)

CHAT = {"model": "router-model", "messages": [{"role": "user", "content": "hi"}]}


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_every_form_of_a_key_reads_back_the_same_key(seed):
    kp = Keypair.from_seed(seed)
    key = SolanaKey(kp)
    forms = [key.secret_text(), json.dumps(list(bytes(kp))), f"  {key.secret_text()}\n"]
    assert {SolanaKey.from_text(f).address for f in forms} == {str(kp.pubkey())}
    import base58

    assert SolanaKey.from_text(base58.b58encode(seed).decode()).address == key.address


def test_a_damaged_keypair_and_non_keys_are_refused_without_quoting_them():
    good = list(bytes(Keypair()))
    other = list(bytes(Keypair()))
    with pytest.raises(InvalidInput, match="public half"):
        SolanaKey.from_text(json.dumps(good[:32] + other[32:]))
    for text in ("", "[1,2,3]", "not-base58-0OIl", "[" + ",".join(["300"] * 64) + "]"):
        with pytest.raises(InvalidInput) as refused:
            SolanaKey.from_text(text)
        assert text not in str(refused.value) or not text
    key = SolanaKey.generate()
    assert key.secret_text() not in repr(key) and key.secret_text() not in str(key)
    with pytest.raises(TypeError):
        __import__("pickle").dumps(key)
    assert check_address(key.address) == key.address
    with pytest.raises(InvalidInput):
        check_address("nope")


def _first_402(kit, path="/v1/chat/completions"):
    resp = httpx.post(kit.router.url + path, json=CHAT, timeout=10)
    assert resp.status_code == 402
    return resp


def test_the_402_is_read_and_usable_requirements_chosen(chain):
    resp = _first_402(chain)
    offer = parse_payment_required(402, dict(resp.headers), resp.content)
    assert offer is not None and offer.version == 2
    chosen = choose(offer, chain.network)
    assert chosen is not None and chosen.amount_atomic == 10_000
    assert chosen.pay_to == str(chain.payee.pubkey()) and chosen.asset == DEVNET.usdc_mint
    assert choose(offer, MAINNET) is None  # another network's USDC: nothing to pay with
    assert parse_payment_required(200, dict(resp.headers), resp.content) is None
    assert parse_payment_required(402, {}, b'{"error": "plain 402"}') is None
    with pytest.raises(PaymentProblem) as bad:
        parse_payment_required(402, {"PAYMENT-REQUIRED": "%%%not-base64"}, b"")
    assert bad.value.code == "malformed_requirements"


def test_v1_offers_in_the_body_are_read(chain):
    chain.router.version = 1
    resp = _first_402(chain)
    offer = parse_payment_required(402, dict(resp.headers), resp.content)
    assert offer is not None and offer.version == 1
    assert choose(offer, chain.network) is not None


def test_a_signed_payment_is_accepted_and_moves_exactly_its_amount(chain):
    payer = chain.new_payer(usdc_atomic=1_000_000)
    resp = _first_402(chain)
    offer = parse_payment_required(402, dict(resp.headers), resp.content)
    req = choose(offer, chain.network)
    signed = Payer(SolanaKey(payer), chain.network).sign(offer, req)
    assert signed.header_name == "PAYMENT-SIGNATURE" and signed.amount_atomic == 10_000
    paid = httpx.post(
        chain.router.url + "/v1/chat/completions", json=CHAT,
        headers={signed.header_name: signed.header_value}, timeout=30,
    )  # fmt: skip
    assert paid.status_code == 200
    settlement = read_settlement(2, dict(paid.headers))
    assert settlement is not None and settlement.success and settlement.transaction
    assert chain.usdc(payer) == 990_000 and chain.usdc(chain.payee) == 10_000
    found = asyncio.run(
        find_payment(chain.network, signed.payer, signed.payer_signature, signed.blockhash)
    )
    assert found.state == "landed" and found.succeeded
    assert found.tx_signature == settlement.transaction


def test_what_is_signed_must_be_what_was_checked(chain):
    payer = chain.new_payer(usdc_atomic=1_000_000)
    resp = _first_402(chain)
    offer = parse_payment_required(402, dict(resp.headers), resp.content)
    req = choose(offer, chain.network)
    other = replace(req, amount_atomic=1)  # not one of the offer's requirements
    with pytest.raises(PaymentProblem) as refused:
        Payer(SolanaKey(payer), chain.network).sign(offer, other)
    assert refused.value.code == "not_offered"
    # the SDK builds the tx from the requirement it is given: a requirement whose parsed
    # amount differs from the SDK's own object is caught by decoding what was built
    tampered = replace(req, amount_atomic=req.amount_atomic + 1)
    offer2 = replace(offer, requirements=(tampered,))
    with pytest.raises(PaymentProblem) as caught:
        Payer(SolanaKey(payer), chain.network).sign(offer2, tampered)
    assert caught.value.code == "tampered"
    assert chain.usdc(payer) == 1_000_000


def test_a_payment_that_never_lands_is_told_apart_from_a_pending_one(chain):
    payer = chain.new_payer(usdc_atomic=1_000_000)
    resp = _first_402(chain)
    offer = parse_payment_required(402, dict(resp.headers), resp.content)
    signed = Payer(SolanaKey(payer), chain.network).sign(offer, choose(offer, chain.network))
    args = (chain.network, signed.payer, signed.payer_signature, signed.blockhash)
    assert asyncio.run(find_payment(*args)).state == "pending"
    chain.rpc.expire_blockhash()
    assert asyncio.run(find_payment(*args)).state == "never"
    dead = network("devnet", "http://127.0.0.1:9")
    assert asyncio.run(find_payment(dead, *args[1:], timeout=2)).state == "unknown"


def test_balances_and_a_dead_rpc_named_by_host_only(chain):
    payer = chain.new_payer(sol=5_000_000, usdc_atomic=123_456)
    other_mint = MAINNET.usdc_mint
    got = asyncio.run(
        read_balances(chain.network, str(payer.pubkey()), [DEVNET.usdc_mint, other_mint])
    )
    assert got.problem is None and got.sol_lamports == 5_000_000
    assert got.tokens[DEVNET.usdc_mint].amount_atomic == 123_456
    assert got.tokens[DEVNET.usdc_mint].decimals == 6
    assert got.tokens[other_mint].amount_atomic == 0
    dead = network("devnet", "http://127.0.0.1:9/api-key-in-path")
    failed = asyncio.run(read_balances(dead, str(payer.pubkey()), [DEVNET.usdc_mint], timeout=2))
    assert failed.problem is not None and "127.0.0.1" in failed.problem
    assert "api-key-in-path" not in failed.problem


def test_a_prepaid_top_up_header_decodes_as_the_sdk_writes_it(chain):
    payer = chain.new_payer(usdc_atomic=1_000_000)
    resp = httpx.post(chain.router.url + "/v1/topup", json={"amount": "50000"}, timeout=10)
    offer = parse_payment_required(402, dict(resp.headers), resp.content)
    signed = Payer(SolanaKey(payer), chain.network).sign(offer, choose(offer, chain.network))
    decoded = json.loads(base64.b64decode(signed.header_value))
    assert decoded["x402Version"] == 2 and decoded["accepted"]["amount"] == "50000"
