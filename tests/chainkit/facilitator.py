"""An x402 facilitator over HTTP on 127.0.0.1, backed by the SDK's own facilitator.

It serves what ``x402.http.HTTPFacilitatorClient`` calls: ``GET /supported``, ``POST /verify``
and ``POST /settle`` with ``{"x402Version", "paymentPayload", "paymentRequirements"}`` bodies,
answering the SDK's ``SupportedResponse``/``VerifyResponse``/``SettleResponse`` JSON. Behind it is
``x402.x402FacilitatorSync`` with the SDK's exact-SVM scheme (v2 and v1) and a
``FacilitatorKeypairSigner`` on the kit's RPC server: verification simulates the transaction on
LiteSVM, settlement co-signs it as fee payer and sends it there.

The SDK's facilitator is synchronous and blocking (its signer polls the RPC), so this is a
threaded ``http.server``: one thread per request, several payments settle at once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from solders.keypair import Keypair
from x402 import x402FacilitatorSync
from x402.mechanisms.svm import FacilitatorKeypairSigner
from x402.mechanisms.svm.exact import register_exact_svm_facilitator
from x402.schemas import SettleResponse
from x402.schemas.helpers import parse_payment_payload, parse_payment_requirements

from aiwallet.domain.chains import DEVNET, MAINNET
from chainkit.rpc import QuietServer


class FacilitatorServer:
    """``FacilitatorServer(rpc_url).start()``; ``.url`` is what an ``HTTPFacilitatorClient``
    takes. Its fee payer must hold SOL on the RPC's chain (the kit funds it)."""

    def __init__(
        self,
        rpc_url: str,
        fee_payer: Keypair | None = None,
        networks: Sequence[str] = (DEVNET.caip2, MAINNET.caip2),
    ) -> None:
        self.fee_payer = fee_payer or Keypair()
        self.signer = FacilitatorKeypairSigner([self.fee_payer], rpc_url=rpc_url)
        self.facilitator = x402FacilitatorSync()
        register_exact_svm_facilitator(self.facilitator, self.signer, list(networks))
        self.lock = threading.Lock()
        self.verify_calls = 0
        self.settle_calls = 0
        self.settled: list[SettleResponse] = []  # every settle answer, failures included
        self._fail_settle = 0
        self._fail_reason = "transaction_failed"
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def fee_payer_address(self) -> str:
        return str(self.fee_payer.pubkey())

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the facilitator is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- knobs --------------------------------------------------------------------------------
    def fail_settle_next(self, n: int = 1, reason: str = "transaction_failed") -> None:
        """The next ``n`` settlements answer ``success: false`` with ``reason`` and send
        nothing to the chain (a facilitator whose RPC or fee payer is having a bad day)."""
        with self.lock:
            self._fail_settle += n
            self._fail_reason = reason

    # -- running ------------------------------------------------------------------------------
    def start(self) -> FacilitatorServer:
        httpd = QuietServer(("127.0.0.1", 0), _Handler)
        httpd.facilitator = self  # type: ignore[attr-defined]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="x402-facilitator"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> FacilitatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the API ------------------------------------------------------------------------------
    def supported(self) -> dict[str, Any]:
        return self.facilitator.get_supported().model_dump(by_alias=True, exclude_none=True)

    def verify(self, body: dict[str, Any]) -> dict[str, Any]:
        payload, requirements = _parse(body)
        with self.lock:
            self.verify_calls += 1
        result = self.facilitator.verify(payload, requirements)
        return result.model_dump(by_alias=True, exclude_none=True)

    def settle(self, body: dict[str, Any]) -> dict[str, Any]:
        payload, requirements = _parse(body)
        with self.lock:
            self.settle_calls += 1
            fail = self._fail_settle > 0
            if fail:
                self._fail_settle -= 1
        if fail:
            result = SettleResponse(
                success=False,
                error_reason=self._fail_reason,
                error_message="the test facilitator was told to fail this settlement",
                transaction="",
                network=requirements.network,
                payer="",
            )
        else:
            result = self.facilitator.settle(payload, requirements)
        with self.lock:
            self.settled.append(result)
        return result.model_dump(by_alias=True, exclude_none=True)


def _parse(body: dict[str, Any]) -> tuple[Any, Any]:
    payload = parse_payment_payload(body["paymentPayload"])
    requirements = parse_payment_requirements(payload.x402_version, body["paymentRequirements"])
    return payload, requirements


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out as two writes: without this, Nagle's algorithm and the
    # client's delayed ACK hold every answer ~40 ms
    disable_nagle_algorithm = True

    @property
    def _fac(self) -> FacilitatorServer:
        return self.server.facilitator  # type: ignore[attr-defined,no-any-return]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/supported":
            self._json(200, self._fac.supported())
        else:
            self._json(404, {"error": "not found"})

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        route = {"/verify": self._fac.verify, "/settle": self._fac.settle}.get(
            self.path.rstrip("/")
        )
        if route is None:
            self._json(404, {"error": "not found"})
            return
        try:
            body = json.loads(raw)
            answer = route(body)
        except (ValueError, KeyError, TypeError) as e:  # pydantic's errors are ValueErrors
            self._json(400, {"error": "invalid_request", "message": str(e)[:500]})
            return
        except Exception as e:  # the SDK refused (no scheme for that network, ...)
            self._json(500, {"error": type(e).__name__, "message": str(e)[:500]})
            return
        self._json(200, answer)

    def _json(self, status: int, obj: Any) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
