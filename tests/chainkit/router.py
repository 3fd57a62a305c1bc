"""A test x402 AI router: an OpenAI/Anthropic proxy paid in Solana USDC, on 127.0.0.1.

It is what the wallet pays: a resource server in front of the fake upstream
(:mod:`fakeupstream`, whose answers and SSE streams are byte-exact provider formats), that
settles through the kit's facilitator over HTTP (``x402.http.HTTPFacilitatorClient``).

Two ways to pay, on the same server:

* **per request** (``per_request=True``): ``POST /v1/chat/completions`` or ``/v1/messages``
  without payment answers 402 (v2: a ``PAYMENT-REQUIRED`` header; ``version=1``: the v1 JSON
  body). Paid (``PAYMENT-SIGNATURE`` / ``X-PAYMENT``): verify, settle (the transaction lands on
  LiteSVM), then the completion with ``PAYMENT-RESPONSE`` / ``X-PAYMENT-RESPONSE``.
* **prepaid** (``prepaid=True``): ``POST /v1/topup {"amount": "<atomic>"}`` is paid the same way
  and credits the payer's account (an ``rk_`` API key, issued once per payer address);
  completions with ``Authorization: Bearer rk_...`` are billed from that balance, each
  answer's ``usage.cost`` in USD (a decimal string, OpenRouter style); ``GET /v1/balance``.

Knobs for bad days are plain attributes (``price_atomic``, ``ask_more``, ``settle_fails``,
``stall_before_settle``, ``stall_after_settle``, ``cut_stream_after_payment``,
``error_after_payment``, ``echo_payment_header_in_error``, ``extra_accepts``), read per request,
so a test may change them while the router runs.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
from collections import Counter
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from x402.http import FacilitatorConfig, HTTPFacilitatorClient
from x402.http.utils import (
    decode_payment_signature_header,
    encode_payment_required_header,
    encode_payment_response_header,
)
from x402.schemas import (
    PaymentPayload,
    PaymentRequired,
    PaymentRequirements,
    ResourceInfo,
    SettleResponse,
)
from x402.schemas.v1 import PaymentPayloadV1, PaymentRequiredV1, PaymentRequirementsV1

from aiwallet.domain.chains import USDC_DECIMALS, Network
from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY, anthropic_api, openai_api, tokens
from fakeupstream.common import dumps

HOLD_LIMIT_S = 30.0  # the longest a stall waits for its release event
BASE_EVM_USDC = "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"
_ATOMIC = re.compile(r"^[1-9][0-9]{0,18}$")
PAY_HEADERS = web.RequestKey("pay_headers", dict)


def evm_accept(amount_atomic: int, pay_to: str = "0x" + "42" * 20) -> PaymentRequirements:
    """A USDC-on-Base requirement (what a router offering several chains lists too)."""
    return PaymentRequirements(
        scheme="exact",
        network="eip155:8453",
        asset=BASE_EVM_USDC,
        amount=str(amount_atomic),
        pay_to=pay_to,
        max_timeout_seconds=60,
        extra={"name": "USD Coin", "version": "2"},
    )


def solana_accept(
    network: str, mint: str, amount_atomic: int, pay_to: str, fee_payer: str, scheme: str = "exact"
) -> PaymentRequirements:
    return PaymentRequirements(
        scheme=scheme,
        network=network,
        asset=mint,
        amount=str(amount_atomic),
        pay_to=pay_to,
        max_timeout_seconds=60,
        extra={"feePayer": fee_payer},
    )


@dataclass
class Account:
    """A prepaid account: one per payer address."""

    payer: str
    api_key: str
    balance_atomic: int = 0


class X402Router:
    def __init__(
        self,
        *,
        facilitator_url: str,
        payee: str,
        network: Network,
        upstream_url: str,
        price_atomic: int = 10_000,
        version: int = 2,
        per_request: bool = True,
        prepaid: bool = True,
        input_price_atomic: Decimal = Decimal("0.5"),  # atomic USDC per input token
        output_price_atomic: Decimal = Decimal("2"),  # atomic USDC per output token
        default_max_output: int = 1024,
        max_timeout_s: int = 60,
        openai_key: str = OPENAI_KEY,
        anthropic_key: str = ANTHROPIC_KEY,
    ) -> None:
        self.facilitator_url = facilitator_url
        self.payee = payee
        self.network = network
        self.upstream_url = upstream_url.rstrip("/")
        self.openai_key, self.anthropic_key = openai_key, anthropic_key
        self.version = version
        self.per_request = per_request
        self.prepaid = prepaid
        self.input_price_atomic = input_price_atomic
        self.output_price_atomic = output_price_atomic
        self.default_max_output = default_max_output
        self.max_timeout_s = max_timeout_s
        # knobs, read per request
        self.price_atomic = price_atomic
        self.ask_more = 0  # the 402 asks this many atomic units more than the price
        self.settle_fails = False  # settlement reports failure; nothing lands
        self.lie_settle_failed = False  # it settles (the payment lands) and says it failed
        self.stall_before_settle = False
        self.stall_after_settle = False
        self.cut_stream_after_payment = False
        self.error_after_payment = False
        self.echo_payment_header_in_error = False
        self.extra_accepts: list[PaymentRequirements] = []  # listed before the solana USDC one
        self.before_settle_reached = threading.Event()
        self.release_before_settle = threading.Event()
        self.after_settle_reached = threading.Event()
        self.release_after_settle = threading.Event()
        # records
        self.lock = threading.Lock()
        self.served: Counter[str] = Counter()
        self.settled_signatures: list[str] = []
        self.settlements: list[SettleResponse] = []
        self.accounts: dict[str, Account] = {}  # payer address -> account
        self.fee_payer = ""
        self.port: int | None = None
        self._facilitator: HTTPFacilitatorClient | None = None
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- running ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> X402Router:
        facilitator = HTTPFacilitatorClient(FacilitatorConfig(url=self.facilitator_url))
        supported = facilitator.get_supported()  # what a real router asks its facilitator
        signers = supported.signers.get("solana:*") or []
        if not signers:
            raise RuntimeError("the facilitator has no Solana fee payer")
        self.fee_payer = signers[0]
        self._facilitator = facilitator
        ready = threading.Event()
        failed: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except BaseException as e:
                failed.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._close())
            loop.close()

        self._thread = threading.Thread(target=run, name="x402-router", daemon=True)
        self._thread.start()
        if not ready.wait(10) or failed:
            raise RuntimeError(f"the router did not start: {failed}")
        return self

    async def _start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completion)
        app.router.add_post("/v1/messages", self._completion)
        app.router.add_post("/v1/topup", self._topup)
        app.router.add_get("/v1/balance", self._balance)
        app.on_response_prepare.append(self._add_pay_headers)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
        if self._facilitator is not None:
            await self._facilitator.aclose()

    def stop(self) -> None:
        for event in (self.release_before_settle, self.release_after_settle):
            event.set()
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> X402Router:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- reading back -------------------------------------------------------------------------
    def account_for(self, payer: str) -> Account | None:
        with self.lock:
            return self.accounts.get(payer)

    def cost_atomic(self, input_tokens: int, output_tokens: int) -> int:
        """What ``input_tokens`` in and ``output_tokens`` out cost, rounded up to an atomic unit."""
        exact = input_tokens * self.input_price_atomic + output_tokens * self.output_price_atomic
        return int(exact.to_integral_value(rounding=ROUND_CEILING))

    # -- requirements -------------------------------------------------------------------------
    def _ours(self, amount: int) -> PaymentRequirements:
        return PaymentRequirements(
            scheme="exact",
            network=self.network.caip2,
            asset=self.network.usdc_mint,
            amount=str(amount),
            pay_to=self.payee,
            max_timeout_seconds=self.max_timeout_s,
            extra={"feePayer": self.fee_payer},
        )

    def _ours_v1(self, amount: int, resource: str) -> PaymentRequirementsV1:
        return _to_v1(self._ours(amount), resource, self.network)

    def _offer(self, amount: int) -> list[PaymentRequirements]:
        return [*self.extra_accepts, self._ours(amount)]

    def _payment_required(
        self, request: web.Request, api: str, amount: int, error: str, *, status: int = 402
    ) -> web.Response:
        resource = str(request.url)
        if self.version == 1:
            accepts_v1 = [_to_v1(r, resource, self.network) for r in self._offer(amount)]
            body_v1 = PaymentRequiredV1(error=error, accepts=accepts_v1)
            return web.Response(
                status=status,
                text=body_v1.model_dump_json(by_alias=True, exclude_none=True),
                content_type="application/json",
            )
        required = PaymentRequired(
            x402_version=2,
            error=error,
            resource=ResourceInfo(url=resource, description=_describe(request.path)),
            accepts=self._offer(amount),
        )
        resp = _provider_error(api, status, error, "payment_required")
        resp.headers["PAYMENT-REQUIRED"] = encode_payment_required_header(required)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    # -- payment ------------------------------------------------------------------------------
    def _payment_header(self, request: web.Request) -> tuple[str, str] | None:
        for name in ("PAYMENT-SIGNATURE", "X-PAYMENT"):
            value = request.headers.get(name)
            if value:
                return name, value
        return None

    def _match(
        self, payload: PaymentPayload | PaymentPayloadV1, amount: int, resource: str
    ) -> PaymentRequirements | PaymentRequirementsV1 | None:
        if isinstance(payload, PaymentPayloadV1):
            ours_v1 = self._ours_v1(amount, resource)
            if payload.scheme == ours_v1.scheme and payload.network == ours_v1.network:
                return ours_v1
            return None
        ours = self._ours(amount)
        accepted = payload.accepted
        same = (
            accepted.scheme == ours.scheme
            and accepted.network == ours.network
            and accepted.asset == ours.asset
            and accepted.amount == ours.amount
            and accepted.pay_to == ours.pay_to
            and accepted.max_timeout_seconds == ours.max_timeout_seconds
            and all((accepted.extra or {}).get(k) == v for k, v in ours.extra.items())
        )
        return ours if same else None

    async def _pay(
        self, request: web.Request, api: str, amount: int
    ) -> tuple[SettleResponse, dict[str, str]] | web.Response:
        """Verify and settle the request's payment for ``amount``: the settlement and the
        headers the answer carries, or the 402 to answer instead."""
        found = self._payment_header(request)
        assert found is not None
        _name, header_value = found
        echo = f" (payment header: {header_value})" if self.echo_payment_header_in_error else ""
        try:
            payload = decode_payment_signature_header(header_value)
        except Exception:
            self._count("invalid_payment")
            return self._payment_required(request, api, amount, "invalid payment header" + echo)
        requirement = self._match(payload, amount, str(request.url))
        if requirement is None:
            self._count("payment_mismatch")
            return self._payment_required(
                request, api, amount, "the payment does not match what is asked" + echo
            )
        assert self._facilitator is not None
        try:
            verified = await self._facilitator.verify(payload, requirement)
        except Exception:  # the facilitator is down or refused the request outright
            self._count("facilitator_failed")
            return _provider_error(api, 502, "the payment facilitator failed", "upstream_error")
        if not verified.is_valid:
            self._count("verify_failed")
            reason = verified.invalid_reason or "invalid payment"
            return self._payment_required(request, api, amount, reason + echo)
        if self.stall_before_settle:
            self.before_settle_reached.set()
            await _wait_for(self.release_before_settle)
        if self.settle_fails:
            settled = SettleResponse(
                success=False,
                error_reason="settlement_failed",
                error_message="the test router was told to fail settlement",
                transaction="",
                network=requirement.network,
                payer=verified.payer,
            )
        else:
            try:
                settled = await self._facilitator.settle(payload, requirement)
            except Exception:
                self._count("facilitator_failed")
                return _provider_error(api, 502, "the payment facilitator failed", "upstream_error")
            if self.lie_settle_failed and settled.success:  # it landed; the router says not
                with self.lock:
                    self.settled_signatures.append(settled.transaction)
                settled = SettleResponse(
                    success=False, error_reason="settlement_failed", transaction="",
                    network=requirement.network, payer=verified.payer,
                )  # fmt: skip
        with self.lock:
            self.settlements.append(settled)
        response_header = "PAYMENT-RESPONSE" if payload.x402_version == 2 else "X-PAYMENT-RESPONSE"
        pay_headers = {response_header: encode_payment_response_header(settled)}
        if not settled.success:
            self._count("settle_failed")
            resp = self._payment_required(
                request, api, amount, (settled.error_reason or "settlement failed") + echo
            )
            resp.headers.update(pay_headers)
            return resp
        with self.lock:
            self.settled_signatures.append(settled.transaction)
        if self.stall_after_settle:
            self.after_settle_reached.set()
            await _wait_for(self.release_after_settle)
        return settled, pay_headers

    @staticmethod
    async def _add_pay_headers(request: web.Request, resp: web.StreamResponse) -> None:
        for name, value in (request.get(PAY_HEADERS) or {}).items():
            resp.headers[name] = value

    def _count(self, what: str) -> None:
        with self.lock:
            self.served[what] += 1

    # -- routes -------------------------------------------------------------------------------
    async def _completion(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        api = "anthropic" if request.path.startswith("/v1/messages") else "openai"
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _provider_error(api, 400, "the body is not a JSON object", "invalid_request")
        key = _api_key(request)
        if key.startswith("rk_") and self.prepaid:
            return await self._prepaid_completion(request, api, body, key)
        if not self.per_request:
            self._count("unauthorized")
            return _provider_error(api, 401, "an rk_ API key is required", "invalid_api_key")
        amount = self.price_atomic + self.ask_more
        if self._payment_header(request) is None:
            self._count("402")
            return self._payment_required(request, api, amount, "payment required")
        paid = await self._pay(request, api, amount)
        if isinstance(paid, web.Response):
            return paid
        _settled, pay_headers = paid
        request[PAY_HEADERS] = pay_headers
        if self.error_after_payment:
            self._count("error_after_payment")
            echo = request.headers.get("PAYMENT-SIGNATURE") or request.headers.get("X-PAYMENT")
            text = "the upstream failed after payment"
            if self.echo_payment_header_in_error and echo:
                text += f" (payment header: {echo})"
            return _provider_error(api, 500, text, "server_error")
        self._count("paid")
        return await self._forward(request, api, body, billing=None)

    async def _prepaid_completion(
        self, request: web.Request, api: str, body: dict[str, Any], key: str
    ) -> web.StreamResponse:
        with self.lock:
            account = next((a for a in self.accounts.values() if a.api_key == key), None)
        if account is None:
            self._count("unauthorized")
            return _provider_error(api, 401, "unknown API key", "invalid_api_key")
        worst = self.cost_atomic(*self._worst_case_tokens(api, body))
        with self.lock:
            if account.balance_atomic < worst:
                self.served["insufficient_balance"] += 1
                return _provider_error(
                    api,
                    402,
                    f"the balance ({account.balance_atomic} atomic units) cannot cover this "
                    f"request (up to {worst}); top up at /v1/topup",
                    "insufficient_balance",
                )
            account.balance_atomic -= worst  # reserved; the unused part comes back below
        billing = _Billing(self, account, worst)
        try:
            self._count("prepaid")
            return await self._forward(request, api, body, billing=billing)
        finally:
            billing.settle()

    def _worst_case_tokens(self, api: str, body: dict[str, Any]) -> tuple[int, int]:
        if api == "anthropic":
            prompt = tokens.anthropic_input(body)
            limit = body.get("max_tokens")
        else:
            prompt = tokens.openai_chat_prompt(body)
            limit = body.get("max_completion_tokens") or body.get("max_tokens")
        out = limit if isinstance(limit, int) and limit > 0 else self.default_max_output
        n = body.get("n") if isinstance(body.get("n"), int) and body["n"] > 0 else 1
        return prompt, out * n

    async def _topup(self, request: web.Request) -> web.StreamResponse:
        if not self.prepaid:
            return web.json_response({"error": {"message": "no prepaid accounts here"}}, status=404)
        try:
            body = await request.json()
        except ValueError:
            body = None
        amount_text = body.get("amount") if isinstance(body, dict) else None
        if not isinstance(amount_text, str) or not _ATOMIC.match(amount_text):
            return _provider_error(
                "openai", 400, 'the body must be {"amount": "<atomic units>"}', "invalid_request"
            )
        amount = int(amount_text)
        if self._payment_header(request) is None:
            self._count("402")
            return self._payment_required(request, "openai", amount, "payment required")
        paid = await self._pay(request, "openai", amount)
        if isinstance(paid, web.Response):
            return paid
        settled, pay_headers = paid
        payer = settled.payer or ""
        with self.lock:
            account = self.accounts.get(payer)
            if account is None:
                account = Account(payer, "rk_" + secrets.token_hex(20))
                self.accounts[payer] = account
            account.balance_atomic += amount
            self.served["topup"] += 1
            answer = {"api_key": account.api_key, "balance": self._balance_json(account)}
        return web.json_response(answer, headers=pay_headers)

    async def _balance(self, request: web.Request) -> web.StreamResponse:
        key = _api_key(request)
        with self.lock:
            account = next((a for a in self.accounts.values() if a.api_key == key), None)
            if account is None:
                return _provider_error("openai", 401, "unknown API key", "invalid_api_key")
            return web.json_response(self._balance_json(account))

    def _balance_json(self, account: Account) -> dict[str, str]:
        return {
            "amount": str(account.balance_atomic),
            "asset": self.network.usdc_mint,
            "network": self.network.caip2,
        }

    # -- the upstream -------------------------------------------------------------------------
    async def _forward(
        self, request: web.Request, api: str, body: dict[str, Any], billing: _Billing | None
    ) -> web.StreamResponse:
        """Forward to the fake upstream; stream back exactly what it sends (plus the cost when
        billing a prepaid account, minus a usage chunk the client did not ask for)."""
        stream = bool(body.get("stream"))
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        upstream_body = body
        if billing is not None and stream and api == "openai" and not wants_usage:
            upstream_body = {**body, "stream_options": {**(body.get("stream_options") or {})}}
            upstream_body["stream_options"]["include_usage"] = True
        if api == "anthropic":
            headers = {"x-api-key": self.anthropic_key, "anthropic-version": "2023-06-01"}
        else:
            headers = {"Authorization": f"Bearer {self.openai_key}"}
        headers["Content-Type"] = "application/json"
        assert self._session is not None
        async with self._session.post(
            self.upstream_url + request.path, data=dumps(upstream_body).encode(), headers=headers
        ) as up:
            ctype = up.headers.get("Content-Type", "application/json")
            if not stream or up.status != 200 or "text/event-stream" not in ctype:
                data = await up.read()
                if billing is not None and up.status == 200:
                    data = billing.bill_json(api, data)
                elif billing is not None:
                    billing.refund_all()
                if self.cut_stream_after_payment and request.get(PAY_HEADERS):
                    return await _cut_after(request, up.status, ctype, data[: len(data) // 2])
                return web.Response(status=up.status, body=data, content_type=ctype.split(";")[0])
            resp = web.StreamResponse(
                status=200,
                headers={"Content-Type": ctype, "Cache-Control": "no-cache"},
            )
            await resp.prepare(request)
            async for event in _sse_events(up.content):
                out = event
                if billing is not None:
                    out = billing.bill_event(
                        api, event, strip_usage=api == "openai" and not wants_usage
                    )
                if out:
                    await resp.write(out)
                if self.cut_stream_after_payment and request.get(PAY_HEADERS):
                    if request.transport is not None:
                        request.transport.abort()  # a real cut: the socket just dies
                    return resp
            await resp.write_eof()
            return resp


class _Billing:
    """One prepaid request: ``worst`` reserved from the account; :meth:`settle` gives back what
    the answer did not cost (nothing, if no usage ever arrived)."""

    def __init__(self, router: X402Router, account: Account, worst: int) -> None:
        self.router, self.account, self.worst = router, account, worst
        self.cost: int | None = None

    def charge(self, input_tokens: int, output_tokens: int) -> str:
        self.cost = min(self.router.cost_atomic(input_tokens, output_tokens), self.worst)
        return _usd(self.cost)

    def refund_all(self) -> None:
        self.cost = 0

    def settle(self) -> None:
        spent = self.worst if self.cost is None else self.cost
        with self.router.lock:
            self.account.balance_atomic += self.worst - spent

    def _cost_of_usage(self, api: str, usage: dict[str, Any]) -> str:
        if api == "anthropic":
            inp = sum(
                int(usage.get(k) or 0)
                for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
            )
            return self.charge(inp, int(usage.get("output_tokens") or 0))
        return self.charge(
            int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        )

    def bill_json(self, api: str, data: bytes) -> bytes:
        obj = json.loads(data)
        usage = obj.get("usage") if isinstance(obj, dict) else None
        if not isinstance(usage, dict):
            return data
        usage["cost"] = self._cost_of_usage(api, usage)
        return dumps(obj).encode()

    def bill_event(self, api: str, event: bytes, *, strip_usage: bool) -> bytes:
        """The event with ``usage.cost`` added where the usage is final; with ``strip_usage``
        (an OpenAI stream whose client did not ask for usage) the usage chunk is dropped and
        the ``"usage": null`` the upstream then adds to every chunk is taken out again."""
        head, sep, data = event.partition(b"data: ")
        payload = data.rstrip(b"\n")
        if not sep or payload == b"[DONE]":
            return event
        try:
            obj = json.loads(payload)
        except ValueError:
            return event
        if not isinstance(obj, dict):
            return event
        usage = obj.get("usage")
        final = None
        if api == "anthropic" and obj.get("type") == "message_delta":
            final = usage if isinstance(usage, dict) else None
        elif api == "openai" and isinstance(usage, dict):
            final = usage
        if final is not None:
            final["cost"] = self._cost_of_usage(api, final)
            if strip_usage:
                return b""
        elif strip_usage and "usage" in obj and usage is None:
            del obj["usage"]
        else:
            return event
        return head + sep + dumps(obj).encode() + b"\n\n"


async def _sse_events(content: aiohttp.StreamReader) -> Any:
    """Each SSE event as the upstream wrote it (its lines and the blank line ending it)."""
    buf = b""
    async for line in content:
        buf += line
        if line in (b"\n", b"\r\n"):
            yield buf
            buf = b""
    if buf:
        yield buf


async def _cut_after(
    request: web.Request, status: int, ctype: str, part: bytes
) -> web.StreamResponse:
    resp = web.StreamResponse(status=status, headers={"Content-Type": ctype})
    resp.content_length = len(part) * 2
    await resp.prepare(request)
    await resp.write(part)
    if request.transport is not None:
        request.transport.abort()
    return resp


async def _wait_for(event: threading.Event) -> None:
    """Poll a thread event from the loop (bounded: HOLD_LIMIT_S)."""
    for _ in range(int(HOLD_LIMIT_S / 0.01)):
        if event.is_set():
            return
        await asyncio.sleep(0.01)


def _api_key(request: web.Request) -> str:
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key", "")


def _provider_error(api: str, status: int, message: str, code: str) -> web.Response:
    if api == "anthropic":
        return anthropic_api.error(status, code, message)
    return openai_api.error(status, message, code, code)


def _describe(path: str) -> str:
    if path == "/v1/topup":
        return "prepaid credit"
    return "Anthropic messages" if path.startswith("/v1/messages") else "OpenAI chat completion"


def _usd(atomic: int) -> str:
    text = format(Decimal(atomic).scaleb(-USDC_DECIMALS), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _to_v1(req: PaymentRequirements, resource: str, network: Network) -> PaymentRequirementsV1:
    name = network.v1_name if req.network == network.caip2 else req.network
    return PaymentRequirementsV1(
        scheme=req.scheme,
        network=name,
        max_amount_required=req.amount,
        resource=resource,
        description=_describe(urlsplit(resource).path),
        mime_type="application/json",
        pay_to=req.pay_to,
        max_timeout_seconds=req.max_timeout_seconds,
        asset=req.asset,
        extra=req.extra or None,
    )
