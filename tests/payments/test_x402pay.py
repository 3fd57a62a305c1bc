"""Reading offers, choosing, signing with the real SDK and paying the kit's real router (the
transaction lands on LiteSVM), and refusing what was not checked."""

from __future__ import annotations

import base64
import json
import threading
from dataclasses import replace

import httpx
import pytest
from solders.keypair import Keypair
from x402.http.utils import encode_payment_required_header
from x402.mechanisms.svm.exact import client as sdk_svm_client
from x402.schemas import PaymentRequired, PaymentRequirements, ResourceInfo

from aiwallet.domain.chains import DEVNET, MAINNET
from aiwallet.payments.keys import SolanaKey
from aiwallet.payments.x402pay import (
    PAYMENT_PROBLEM_CODES,
    Offer,
    Payer,
    PaymentProblem,
    Requirement,
    choose,
    parse_payment_required,
    read_settlement,
)
from chainkit import ChainKit
from chainkit.router import evm_accept, solana_accept

pytestmark = [
    pytest.mark.filterwarnings("ignore:Client is deprecated"),
    pytest.mark.filterwarnings("ignore:TxOpts is deprecated"),
]

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
PAYEE = str(Keypair().pubkey())
FEE_PAYER = str(Keypair().pubkey())


def ask(kit: ChainKit, path: str = "/v1/chat/completions", **kw) -> httpx.Response:
    return httpx.post(kit.router.url + path, json=kw.pop("json", CHAT), **kw)


def offer_of(resp: httpx.Response) -> Offer:
    offer = parse_payment_required(resp.status_code, resp.headers, resp.content)
    assert offer is not None
    return offer


def header_offer(*accepts: PaymentRequirements, error: str | None = None) -> Offer | None:
    required = PaymentRequired(
        x402_version=2,
        error=error,
        resource=ResourceInfo(url="http://127.0.0.1:1/v1/chat/completions"),
        accepts=list(accepts),
    )
    headers = {"payment-required": encode_payment_required_header(required)}
    return parse_payment_required(402, headers, b"{}")


def usdc(amount: int | str = 10_000, net=DEVNET, **kw) -> PaymentRequirements:
    req = solana_accept(net.caip2, net.usdc_mint, 0, PAYEE, FEE_PAYER)
    return req.model_copy(update={"amount": str(amount), **kw})


# -- parsing ------------------------------------------------------------------------------------
def test_parse_a_v2_offer(chain: ChainKit) -> None:
    offer = offer_of(ask(chain))
    assert offer.version == 2 and offer.error == "payment required"
    (req,) = offer.requirements
    assert req == Requirement(
        scheme="exact",
        network=DEVNET.caip2,
        asset=DEVNET.usdc_mint,
        amount="10000",
        pay_to=str(chain.payee.pubkey()),
        max_timeout_s=60,
        resource_url=chain.router.url + "/v1/chat/completions",
        description="OpenAI chat completion",
        fee_payer=chain.facilitator.fee_payer_address,
        sdk=req.sdk,
    )
    assert req.amount_atomic == 10_000


def test_parse_a_v1_offer(chain: ChainKit) -> None:
    chain.router.version = 1
    offer = offer_of(ask(chain))
    assert offer.version == 1
    (req,) = offer.requirements
    assert (req.network, req.amount, req.resource_url) == (
        "solana-devnet",
        "10000",
        chain.router.url + "/v1/chat/completions",
    )
    assert choose(offer, chain.network) is req


def test_what_is_not_an_x402_402_is_none(chain: ChainKit) -> None:
    assert parse_payment_required(200, {}, b"{}") is None
    assert parse_payment_required(402, {}, b"") is None
    assert parse_payment_required(402, {}, b"<html>pay me</html>") is None
    assert parse_payment_required(402, {}, b"[1, 2]") is None
    assert (
        parse_payment_required(402, {"content-type": "application/json"}, b'{"error": {}}') is None
    )
    # the prepaid router's own 402 (balance too low) is not an x402 offer
    payer = chain.new_payer(usdc_atomic=10_000)
    key = _topup(chain, SolanaKey(payer), 1)
    poor = ask(chain, headers={"Authorization": f"Bearer {key}"})
    assert (
        poor.status_code == 402 and parse_payment_required(402, poor.headers, poor.content) is None
    )


@pytest.mark.parametrize(
    "header",
    [
        "!!! not base64 !!!",
        base64.b64encode(b"\xff\xfe not utf-8").decode(),
        base64.b64encode(b"not json at all").decode(),
        base64.b64encode(b"[1, 2, 3]").decode(),
        base64.b64encode(json.dumps({"x402Version": 2, "error": "X" * 5000}).encode()).decode(),
        base64.b64encode(
            json.dumps({"x402Version": 2, "accepts": [{"scheme": "exact" + "Y" * 5000}]}).encode()
        ).decode(),
    ],
)
def test_a_malformed_offer_is_a_payment_problem_that_quotes_nothing(header: str) -> None:
    with pytest.raises(PaymentProblem) as err:
        parse_payment_required(402, {"PAYMENT-REQUIRED": header}, b"")
    assert err.value.code == "x402_malformed_offer" and err.value.code in PAYMENT_PROBLEM_CODES
    assert len(str(err.value)) < 200
    assert "XXXXXXXX" not in str(err.value) and "YYYYYYYY" not in str(err.value)


def test_a_malformed_v1_body_is_a_payment_problem() -> None:
    body = json.dumps({"x402Version": 1, "accepts": [{"scheme": "exact"}], "error": "Z" * 999})
    with pytest.raises(PaymentProblem, match="402 body") as err:
        parse_payment_required(402, {}, body.encode())
    assert "ZZZZ" not in str(err.value)


# -- choosing -----------------------------------------------------------------------------------
def test_choose_skips_evm_other_mints_other_networks_and_other_schemes() -> None:
    ours = usdc(7)
    offer = header_offer(
        evm_accept(1),
        usdc(2, asset=str(Keypair().pubkey())),  # another mint on devnet
        usdc(3, net=MAINNET),  # mainnet USDC, on mainnet
        usdc(4, network=MAINNET.caip2),  # devnet's mint named on mainnet
        usdc(5, scheme="upto"),
        ours,
    )
    assert offer is not None
    chosen = choose(offer, DEVNET)
    assert chosen is not None and chosen.amount == "7" and chosen.sdk == ours
    assert choose(offer, MAINNET).amount == "3"  # type: ignore[union-attr]
    only_evm = header_offer(evm_accept(1))
    assert only_evm is not None and choose(only_evm, DEVNET) is None


@pytest.mark.parametrize("amount", ["1.5", "-5", "0", "abc", "1e6", " 5", str(2**64), "9" * 40])
def test_an_amount_that_is_not_a_positive_integer_is_refused(amount: str) -> None:
    offer = header_offer(usdc(amount))
    assert offer is not None
    with pytest.raises(PaymentProblem) as err:
        choose(offer, DEVNET)
    assert err.value.code == "x402_bad_amount"
    assert "9" * 25 not in str(err.value) and len(str(err.value)) < 200


def test_a_requirement_without_a_valid_recipient_or_fee_payer_is_refused() -> None:
    for bad in (usdc(pay_to="nobody"), usdc(extra={}), usdc(extra={"feePayer": "0OIl"})):
        offer = header_offer(bad)
        assert offer is not None
        with pytest.raises(PaymentProblem) as err:
            choose(offer, DEVNET)
        assert err.value.code == "x402_bad_requirement"


# -- signing and paying -------------------------------------------------------------------------
def test_sign_then_the_router_accepts_it_and_balances_move_exactly(chain: ChainKit) -> None:
    kp = chain.new_payer(usdc_atomic=1_000_000)
    key = SolanaKey(kp)
    fee_payer = chain.facilitator.fee_payer_address
    sol_before = chain.sol(kp), chain.sol(fee_payer)
    offer = offer_of(ask(chain))
    req = choose(offer, chain.network)
    assert req is not None

    signed = Payer(key, chain.network).sign(offer, req)

    assert (signed.version, signed.header_name) == (2, "PAYMENT-SIGNATURE")
    assert (signed.amount_atomic, signed.pay_to, signed.payer) == (
        10_000,
        str(chain.payee.pubkey()),
        key.address,
    )
    assert (signed.network, signed.asset) == (chain.network.caip2, chain.usdc_mint)
    assert chain.usdc(kp) == 1_000_000  # signing alone moves nothing
    resp = ask(chain, headers={signed.header_name: signed.header_value})
    assert resp.status_code == 200, resp.text
    settled = read_settlement(2, resp.headers)
    assert settled is not None and settled.success and settled.payer == key.address
    assert [chain.usdc(kp), chain.usdc(chain.payee)] == [990_000, 10_000]
    landed = chain.rpc.landed(settled.transaction)
    assert landed is not None and landed.ok
    assert signed.payer_signature in [str(s) for s in landed.tx.signatures]
    assert str(landed.tx.message.recent_blockhash) == signed.blockhash
    assert chain.sol(kp) == sol_before[0]  # the facilitator paid the fee
    assert chain.sol(fee_payer) == sol_before[1] - landed.fee


def test_sign_v1(chain: ChainKit) -> None:
    chain.router.version = 1
    kp = chain.new_payer(usdc_atomic=20_000)
    offer = offer_of(ask(chain))
    req = choose(offer, chain.network)
    assert req is not None
    signed = Payer(SolanaKey(kp), chain.network).sign(offer, req)
    assert (signed.version, signed.header_name) == (1, "X-PAYMENT")
    resp = ask(chain, headers={signed.header_name: signed.header_value})
    assert resp.status_code == 200
    assert read_settlement(2, resp.headers) == read_settlement(1, resp.headers)
    settled = read_settlement(1, resp.headers)
    assert settled is not None and settled.success
    assert chain.usdc(kp) == 10_000


def test_amounts_above_the_sdks_own_one_dollar_cap_are_signed(chain: ChainKit) -> None:
    chain.router.price_atomic = 5_000_000  # $5: the SDK's default spend controls refuse this
    kp = chain.new_payer(usdc_atomic=6_000_000)
    offer = offer_of(ask(chain))
    req = choose(offer, chain.network)
    assert req is not None
    signed = Payer(SolanaKey(kp), chain.network).sign(offer, req)
    assert ask(chain, headers={signed.header_name: signed.header_value}).status_code == 200
    assert chain.usdc(kp) == 1_000_000


def test_the_requirement_is_paid_even_after_other_accepts(chain: ChainKit) -> None:
    chain.router.extra_accepts = [
        evm_accept(1),
        usdc(1, network=chain.network.caip2, pay_to=str(chain.payee.pubkey()), scheme="upto"),
    ]
    kp = chain.new_payer(usdc_atomic=10_000)
    offer = offer_of(ask(chain))
    req = choose(offer, chain.network)
    assert req is not None and req is offer.requirements[-1]
    signed = Payer(SolanaKey(kp), chain.network).sign(offer, req)
    assert ask(chain, headers={signed.header_name: signed.header_value}).status_code == 200


@pytest.mark.parametrize(
    "tamper",
    [
        {"amount": lambda r: str(int(r.amount) + 1)},
        {"pay_to": lambda r: str(Keypair().pubkey())},
    ],
    ids=["amount", "recipient"],
)
def test_a_transaction_other_than_the_checked_one_is_refused(
    chain: ChainKit, monkeypatch: pytest.MonkeyPatch, tamper: dict
) -> None:
    """The SDK (compromised, or buggy) builds a transfer other than the requirement's."""
    kp = chain.new_payer(usdc_atomic=100_000)
    original = sdk_svm_client.ExactSvmScheme.create_payment_payload

    def evil(self, requirements):
        changed = {k: f(requirements) for k, f in tamper.items()}
        return original(self, requirements.model_copy(update=changed))

    monkeypatch.setattr(sdk_svm_client.ExactSvmScheme, "create_payment_payload", evil)
    offer = offer_of(ask(chain))
    req = choose(offer, chain.network)
    assert req is not None
    with pytest.raises(PaymentProblem, match="refused to sign") as err:
        Payer(SolanaKey(kp), chain.network).sign(offer, req)
    assert err.value.code == "x402_unexpected_transaction"
    assert chain.usdc(kp) == 100_000 and chain.rpc.landed_signatures() == []


def test_a_tampered_requirement_is_refused(chain: ChainKit) -> None:
    """The requirement checked says 1 unit; the offer (what the SDK builds from) says more."""
    kp = chain.new_payer(usdc_atomic=100_000)
    offer = offer_of(ask(chain))
    req = choose(offer, chain.network)
    assert req is not None
    with pytest.raises(PaymentProblem) as err:
        Payer(SolanaKey(kp), chain.network).sign(offer, replace(req, amount="1"))
    assert err.value.code == "x402_unexpected_transaction"
    other = header_offer(usdc(10_000))
    assert other is not None
    with pytest.raises(PaymentProblem) as err:
        Payer(SolanaKey(kp), chain.network).sign(other, req)  # not that offer's
    assert err.value.code == "x402_not_offered"
    with pytest.raises(PaymentProblem) as err:
        Payer(SolanaKey(kp), MAINNET).sign(offer, req)  # another network than the payer's
    assert err.value.code == "x402_not_offered"


def test_when_the_payment_cannot_be_built(chain: ChainKit) -> None:
    kp = chain.new_payer(usdc_atomic=100_000)
    offer = offer_of(ask(chain))
    req = choose(offer, chain.network)
    assert req is not None
    chain.rpc.fail_next("getLatestBlockhash")
    with pytest.raises(PaymentProblem) as err:
        Payer(SolanaKey(kp), chain.network).sign(offer, req)
    assert err.value.code == "x402_build_failed"
    assert str(err.value) == (
        "the payment could not be built: the Solana RPC at "
        f"{chain.network.rpc_host} answered an error: Node is unhealthy"
    )
    # a network whose USDC mint is not on this chain: the SDK cannot read it
    ghost = replace(chain.network, usdc_mint=str(Keypair().pubkey()))
    ghost_offer = header_offer(usdc(10, net=ghost))
    assert ghost_offer is not None
    ghost_req = choose(ghost_offer, ghost)
    assert ghost_req is not None
    with pytest.raises(PaymentProblem, match="Token mint not found") as err:
        Payer(SolanaKey(kp), ghost).sign(ghost_offer, ghost_req)
    assert err.value.code == "x402_build_failed"


# -- the receipt --------------------------------------------------------------------------------
def test_read_settlement(chain: ChainKit) -> None:
    assert read_settlement(2, {}) is None
    assert read_settlement(1, {"PAYMENT-RESPONSE": "x"}) is None  # v1 reads only its own
    for bad in ("%%%", base64.b64encode(b"{}").decode(), base64.b64encode(b"[]").decode()):
        with pytest.raises(PaymentProblem) as err:
            read_settlement(2, {"payment-response": bad})
        assert err.value.code == "x402_malformed_settlement"
    forged = {"success": True, "transaction": "not-a-signature", "network": DEVNET.caip2}
    with pytest.raises(PaymentProblem, match="no valid Solana transaction"):
        read_settlement(
            2, {"PAYMENT-RESPONSE": base64.b64encode(json.dumps(forged).encode()).decode()}
        )
    # a failed settlement, as the router reports it
    chain.router.settle_fails = True
    kp = chain.new_payer(usdc_atomic=10_000)
    offer = offer_of(ask(chain))
    req = choose(offer, chain.network)
    assert req is not None
    signed = Payer(SolanaKey(kp), chain.network).sign(offer, req)
    resp = ask(chain, headers={signed.header_name: signed.header_value})
    assert resp.status_code == 402
    failed = read_settlement(2, resp.headers)
    assert failed is not None and not failed.success
    assert failed.error_reason == "settlement_failed" and failed.transaction == ""


def _topup(kit: ChainKit, key: SolanaKey, amount: int) -> str:
    resp = ask(kit, "/v1/topup", json={"amount": str(amount)})
    offer = offer_of(resp)
    req = choose(offer, kit.network)
    assert req is not None
    signed = Payer(key, kit.network).sign(offer, req)
    paid = ask(
        kit,
        "/v1/topup",
        json={"amount": str(amount)},
        headers={signed.header_name: signed.header_value},
    )
    assert paid.status_code == 200, paid.text
    return paid.json()["api_key"]


def test_a_prepaid_top_up_signed_by_the_wallet(chain: ChainKit) -> None:
    kp = chain.new_payer(usdc_atomic=500_000)
    key = _topup(chain, SolanaKey(kp), 300_000)
    assert chain.router.account_for(str(kp.pubkey())).balance_atomic == 300_000  # type: ignore[union-attr]
    assert chain.usdc(kp) == 200_000
    assert ask(chain, headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_one_payer_signs_from_several_threads(chain: ChainKit) -> None:
    kp = chain.new_payer(usdc_atomic=100_000)
    payer = Payer(SolanaKey(kp), chain.network)
    offers = []
    for price in (1_000, 2_000, 3_000, 4_000):
        chain.router.price_atomic = price
        offers.append(offer_of(ask(chain)))
    results: dict[int, int] = {}
    lock = threading.Lock()

    def one(offer: Offer) -> None:
        req = choose(offer, chain.network)
        assert req is not None
        signed = payer.sign(offer, req)
        sent = json.loads(base64.b64decode(signed.header_value))["accepted"]["amount"]
        with lock:
            results[req.amount_atomic] = signed.amount_atomic if sent == req.amount else -1

    workers = [threading.Thread(target=one, args=(o,)) for o in offers]
    for w in workers:
        w.start()
    for w in workers:
        w.join(20)
    assert results == {1_000: 1_000, 2_000: 2_000, 3_000: 3_000, 4_000: 4_000}
