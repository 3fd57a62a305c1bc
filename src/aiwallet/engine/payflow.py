"""Paying an x402 router for one request, from the user's Solana wallet, within the budgets.

The router answered the forwarded request with 402 and its payment requirements. Before
anything is signed: a requirement the wallet can pay (Solana ``exact``, the network it is
on, that network's USDC), the per-payment cap, the kill switch, the user's word about this
payee (asked once; "always" and "never" are remembered), and the request's reservation,
grown atomically when the router asks more than the request's worst case (all budgets or
none: ``budget_exceeded``). The payment is signed with the x402 SDK off the event loop and
written (``signed``) before the paid retry leaves, so that a crash at any later moment
leaves a record the next start looks for on chain. The router's settlement answer decides:

- settled (``PAYMENT-RESPONSE`` success with a transaction): billed, exactly its amount;
- refused (a settlement failure, or 402 again): not billed, but its amount stays held on the
  budgets until the chain shows it can no longer land (then ``failed``, released), since the
  router still holds a signed transaction it could send;
- no word (no settlement header, or the connection broke): billed at its amount as
  ``unconfirmed`` until the chain tells (engine/reconcile.py settles or refunds it).

The app never sees the router's 402: it gets the paid answer, or a wallet error.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp

from aiwallet.domain.chains import USDC_DECIMALS, atomic_to_nano, format_atomic
from aiwallet.domain.money import format_usd, usd_string
from aiwallet.engine.call import Call
from aiwallet.engine.errors import ProxyError
from aiwallet.engine.state import EngineState, SolanaSetup
from aiwallet.payments.x402pay import (
    HELD_NOTE,
    REFUSED,
    SETTLED,
    Offer,
    Payer,
    PaymentProblem,
    Requirement,
    SignedPayment,
    choose,
    outcome_of,
    parse_payment_required,
    read_settlement,
)
from aiwallet.store.budgets import BudgetRefused
from aiwallet.store.payments import PaymentRecord

if TYPE_CHECKING:
    from aiwallet.engine.consent import ConsentManager
    from aiwallet.engine.events import EventBus

log = logging.getLogger(__name__)

MAX_402_BODY = 64 * 1024  # a payment-required answer larger than this is not read


@dataclass
class PaidCall:
    """The payment made for one call, and what became of it."""

    record: PaymentRecord
    outcome: str = "signed"  # signed | settled | held | unconfirmed
    tx_signature: str | None = None

    @property
    def billable(self) -> bool:
        """The user paid (or may have): the request is billed the payment's amount."""
        return self.outcome in ("settled", "unconfirmed")


Resend = Callable[[dict[str, str]], Awaitable[aiohttp.ClientResponse]]


def payee_id(network: str, pay_to: str) -> str:
    """How a payee is remembered: the network's CAIP-2 id and the address."""
    return f"{network}:{pay_to}"


class PaymentFlow:
    def __init__(self, state: EngineState, events: EventBus) -> None:
        self.state = state
        self.events = events
        self.consent: ConsentManager | None = None
        self._payer: tuple[SolanaSetup, Payer] | None = None
        self._signing = ThreadPoolExecutor(max_workers=4, thread_name_prefix="aiwallet-x402")

    def close(self) -> None:
        self._signing.shutdown(wait=True, cancel_futures=True)

    def _setup(self) -> tuple[SolanaSetup | None, Payer | None]:
        """The key, network and cap as last reloaded, and a payer for them."""
        setup = self.state.solana
        if setup is None or setup.key is None:
            return setup, None
        if self._payer is None or self._payer[0] is not setup:
            self._payer = (setup, Payer(setup.key, setup.network))
        return setup, self._payer[1]

    # -- the flow ------------------------------------------------------------------------------
    async def pay(
        self, call: Call, first: aiohttp.ClientResponse, resend: Resend
    ) -> aiohttp.ClientResponse | None:
        """Pay for ``call`` as ``first`` (a 402) asks, and send it again with the payment:
        the router's new answer; None when ``first`` is no x402 payment request (it is then
        relayed as the router's own error)."""
        assert call.route is not None and call.ctx is not None
        name = call.route.provider.name
        try:
            body = await first.content.read(MAX_402_BODY)
        except (aiohttp.ClientError, ConnectionError, TimeoutError):
            body = b""
        try:
            offer = parse_payment_required(402, dict(first.headers), body)
        except PaymentProblem as exc:
            raise ProxyError(
                "payment_failed",
                f"provider {name!r} asked for payment in a form the wallet cannot read "
                f"({exc.code}); nothing was paid",
            ) from None
        finally:
            first.release()
        if offer is None:
            return None
        setup, payer = self._setup()
        if setup is None or payer is None:
            raise ProxyError(
                "no_solana_wallet",
                f"provider {name!r} is paid in USDC by x402 and this wallet holds no Solana "
                "key; its owner can create one with 'aiwallet wallet create'",
            )
        requirement = self._requirement(name, offer, setup)
        amount_nano = atomic_to_nano(requirement.amount_atomic, USDC_DECIMALS)
        self._check_cap(name, requirement, amount_nano, setup)
        await self._check_payee(call, requirement, amount_nano, setup)
        await self._cover(call, amount_nano)
        if self.state.paused:  # the kill switch, once more: asking may have taken a while
            raise ProxyError(
                "wallet_paused", "the wallet is paused: all AI spending is stopped by its owner"
            )
        signed = await self._sign(name, payer, offer, requirement)
        record = PaymentRecord(
            id=str(uuid.uuid4()),
            kind="request",
            request_id=call.request_id,
            app_id=call.ctx.app.id,
            provider=name,
            payee=signed.pay_to,
            network=signed.network,
            asset=signed.asset,
            amount_atomic=signed.amount_atomic,
            amount_nano=amount_nano,
            payer=signed.payer,
            payer_signature=signed.payer_signature,
            blockhash=signed.blockhash,
            created_at=datetime.now(UTC),
            resource=(requirement.resource or "")[:500] or None,
        )
        payments = self.state.port.payments
        await self.state.write(lambda conn: payments.add_in(conn, record))
        paid = call.payment = PaidCall(record)
        try:
            answer = await resend({signed.header_name: signed.header_value})
        except BaseException:
            paid.outcome = "unconfirmed"  # it left: the router may have settled it
            raise
        settlement = read_settlement(offer.version, dict(answer.headers))
        outcome = outcome_of(settlement, answer.status)
        if outcome == SETTLED:
            assert settlement is not None
            paid.outcome, paid.tx_signature = "settled", settlement.transaction
        elif outcome == REFUSED:
            # It still holds a signed transaction its fee payer could send, so the amount
            # stays held on the budgets (the reservation stays open) until the chain shows
            # it landed (billed) or can no longer land (released, the payment failed): a
            # router that lies about failing cannot spend past the budget.
            paid.outcome = "held"
            reason = (settlement.error_reason if settlement is not None else None) or "no reason"
            answer.release()
            note = f"the router said it did not settle it ({reason[:100]}); {HELD_NOTE}"
            await self.state.write(
                lambda conn: payments.finish_in(conn, record.id, "held", note=note)
            )
            self.events.emit("payment.held", {**_event(record), "reason": note})
            raise ProxyError(
                "payment_failed",
                f"provider {name!r} did not settle the payment of "
                f"{format_usd(amount_nano, places=None)} ({reason[:100]}); it is not billed "
                "(the amount stays held on the budget until the chain shows it never landed); "
                "try again",
            )
        else:
            paid.outcome = "unconfirmed"  # no word: billed at its amount until the chain tells
        return answer

    def _requirement(self, name: str, offer: Offer, setup: SolanaSetup) -> Requirement:
        try:
            chosen = choose(offer, setup.network)
        except PaymentProblem as exc:
            raise ProxyError(
                "payment_failed",
                f"provider {name!r} asked for a payment the wallet cannot check ({exc.code}); "
                "nothing was paid",
            ) from None
        if chosen is None:
            asked = sorted({f"{r.scheme} on {r.network}" for r in offer.requirements})[:5]
            raise ProxyError(
                "payment_failed",
                f"provider {name!r} accepts no payment this wallet can make: it asks for "
                f"{', '.join(asked) or 'nothing usable'}, and the wallet pays USDC on "
                f"{setup.network.describe()}; nothing was paid",
            )
        return chosen

    def _check_cap(self, name: str, req: Requirement, amount_nano: int, setup: SolanaSetup) -> None:
        if amount_nano > setup.cap_nano:
            raise ProxyError(
                "payment_over_cap",
                f"provider {name!r} asked for {format_usd(amount_nano, places=None)} "
                f"({format_atomic(req.amount_atomic, USDC_DECIMALS)} USDC) in one payment, "
                f"over the wallet's per-payment cap of {format_usd(setup.cap_nano, places=None)};"
                " nothing was signed (the wallet's owner can raise it: 'aiwallet prefs set "
                "x402_max_payment_usd AMOUNT')",
            )

    async def _check_payee(
        self, call: Call, req: Requirement, amount_nano: int, setup: SolanaSetup
    ) -> None:
        assert call.route is not None and call.ctx is not None
        payee = payee_id(req.network, req.pay_to)
        consent = self.consent
        decision = await consent.payee_decision(payee) if consent is not None else None
        if decision == "allow":
            return
        if decision == "deny":
            raise ProxyError(
                "payment_denied",
                f"the wallet's owner declined paying {req.pay_to} for good; they can revoke "
                "that decision with 'aiwallet consent list' and 'aiwallet consent revoke ID'",
            )
        if consent is None:
            raise ProxyError(
                "payment_denied",
                f"{req.pay_to} has not been paid before and nobody is there to approve it",
            )
        held: dict[str, Any] = {
            "app": call.ctx.app.name,
            "provider": call.route.provider.name,
            "model": call.route.upstream_model,
            "payee": req.pay_to,
            "payee_id": payee,
            "network": req.network,
            "network_label": setup.network.describe(),
            "real_money": setup.network.real_money,
            "amount_usd": usd_string(amount_nano),
            "amount_atomic": str(req.amount_atomic),
            "asset": req.asset,
            "resource": (req.resource or "")[:300],
            "request_id": call.request_id,
        }
        if not await consent.ask_payment(call.request, held):
            raise ProxyError(
                "payment_denied",
                f"the wallet's owner did not approve paying {req.pay_to} "
                f"{format_usd(amount_nano, places=None)}; nothing was paid",
            )

    async def _cover(self, call: Call, amount_nano: int) -> None:
        """Make the reservation hold at least the payment (all budgets, or refused)."""
        res = call.reservation
        assert res is not None
        extra = amount_nano - res.amount_nano
        if extra <= 0:
            return
        try:
            call.reservation = await self.state.grow(res, extra)
        except BudgetRefused as refused:
            raise ProxyError(
                "budget_exceeded",
                f"the router asks {format_usd(amount_nano, places=None)} for this request: "
                f"{refused}; nothing was paid",
            ) from None

    async def _sign(self, name: str, payer: Payer, offer: Offer, req: Requirement) -> SignedPayment:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._signing, payer.sign, offer, req)
        except PaymentProblem as exc:
            raise ProxyError(
                "payment_failed",
                f"the wallet could not sign the payment to {name!r} ({exc.code}: "
                f"{str(exc)[:120]}); nothing was paid",
            ) from None
        except Exception as exc:  # RPC down, a broken mint account, ...
            log.warning("signing an x402 payment to %r failed: %s", name, type(exc).__name__)
            raise ProxyError(
                "no_solana_wallet",
                f"the wallet could not prepare the payment to {name!r}: its Solana RPC did "
                f"not answer as expected ({type(exc).__name__}); nothing was paid",
            ) from None


def _event(record: PaymentRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "request_id": record.request_id,
        "app_id": record.app_id,
        "provider": record.provider,
        "payee": record.payee,
        "network": record.network,
        "amount_nano": record.amount_nano,
    }


def payment_event(record: PaymentRecord, outcome: str, tx: str | None) -> dict[str, Any]:
    return {**_event(record), "outcome": outcome, "tx_signature": tx}
