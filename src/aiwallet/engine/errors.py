"""Errors in the wire shape of the API that was called, with the blueprint's stable codes.

OpenAI shape: ``{"error": {"message", "type", "param", "code"}}``.
Anthropic shape: ``{"type": "error", "error": {"type", "message", "code"}}`` (``code`` is an
extra field the SDKs ignore; the stable code is also in the ``x-aiwallet-error-code`` header).

``CODES`` is the one table of codes: each stable code with its HTTP status, the error type
OpenAI's and Anthropic's APIs give it, and the line that describes it in the OpenAPI document
(openapi.py builds its error schemas from it). Every ``WalletError`` carries one of these codes
(``code`` on its class, or given when raised) and ``describe`` turns it into its ``ErrorKind``,
so a deliberate error is never a 500; tests/engine/test_error_table.py checks that every
error class and every ``ProxyError("...")`` in the source names a code in the table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

from aiohttp import web

from aiwallet.domain.errors import WalletError


class Api(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    WALLET = "wallet"


class ErrorKind(NamedTuple):
    """How one stable code is answered. (``status`` comes first: ``CODES[code][0]``.)"""

    status: int
    openai_type: str
    anthropic_type: str
    description: str
    code: str


# Anthropic's own error types and the status each goes with
# (https://docs.anthropic.com/en/api/errors).
ANTHROPIC_TYPES: Mapping[str, int] = MappingProxyType(
    {
        "invalid_request_error": 400,
        "authentication_error": 401,
        "billing_error": 402,
        "permission_error": 403,
        "not_found_error": 404,
        "request_too_large": 413,
        "rate_limit_error": 429,
        "api_error": 500,
        "timeout_error": 504,
        "overloaded_error": 529,
    }
)

# The code of a deliberate error whose own code is not in the table.
FALLBACK = "wallet_error"
# The code of an exception that is not a WalletError (a bug): the only 500.
INTERNAL = "internal_error"
# Codes recorded in the request log only; never in an answer.
LOG_ONLY: frozenset[str] = frozenset({"client_closed"})

_BAD = "invalid_request_error"
_AUTH = "authentication_error"
_DENIED = "permission_error"
_SERVER = "server_error"


def _kinds(*rows: tuple[str, int, str, str, str]) -> Mapping[str, ErrorKind]:
    table = {code: ErrorKind(status, oa, an, text, code) for code, status, oa, an, text in rows}
    assert len(table) == len(rows), "a code is in the table twice"
    return MappingProxyType(table)


# code → ErrorKind(HTTP status, OpenAI error type, Anthropic error type, description, code)
CODES: Mapping[str, ErrorKind] = _kinds(
    # code, status, OpenAI type, Anthropic type, description
    (
        "invalid_request",
        400,
        _BAD,
        _BAD,
        "The body or a parameter is not acceptable, or the action does not apply (a consent "
        "request that is already answered)",
    ),
    (
        FALLBACK,
        400,
        _BAD,
        _BAD,
        "The wallet refused the request for a reason that has no more specific code",
    ),
    (
        "signin_cancelled",
        400,
        _BAD,
        _BAD,
        "A provider's browser sign-in was cancelled; nothing was stored",
    ),
    (
        "invalid_app_key",
        401,
        _AUTH,
        _AUTH,
        "A key in the wallet's format that it never issued, or an invalid or expired session token",
    ),
    (
        "admin_token_required",
        401,
        _AUTH,
        _AUTH,
        "An admin request is unsigned, or its nonce is unknown, used or expired, or its "
        "signature (keyed by the data dir's 0600 admin.token) is wrong",
    ),
    (
        "budget_exceeded",
        402,
        "insufficient_quota",
        "billing_error",
        "The request could cost more than a budget has left",
    ),
    (
        "payment_over_cap",
        402,
        "insufficient_quota",
        "billing_error",
        "An x402 router asked for a single payment above the wallet's per-payment cap; "
        "nothing was signed",
    ),
    (
        "provider_limit_reached",
        402,
        "insufficient_quota",
        "billing_error",
        "The provider refused the request: the app's own capped provider key (the second "
        "budget layer, e.g. its OpenRouter key) reached its limit for the period",
    ),
    (
        "data_dir_in_use",
        409,
        _BAD,
        _BAD,
        "Another engine already runs on this data dir or SQLite ledger (one writer per "
        "SQLite ledger, enforced by a lock); use that one or stop it",
    ),
    (
        "provider_key_unavailable",
        503,
        _SERVER,
        "api_error",
        "The app's own capped provider key could not be made or read, and the request is "
        "not sent with the uncapped one",
    ),
    (
        "payment_denied",
        403,
        _DENIED,
        _DENIED,
        "The wallet's owner did not allow paying this x402 payee (now, or for good)",
    ),
    (
        "payment_failed",
        502,
        _SERVER,
        "api_error",
        "An x402 payment could not be made or settled (no usable requirement, the router "
        "refused it, or its settlement failed); a failed payment is not billed",
    ),
    (
        "no_solana_wallet",
        503,
        _SERVER,
        "api_error",
        "An x402 router asks for payment and the wallet holds no Solana key (or its RPC "
        "cannot be reached)",
    ),
    (
        "consent_required",
        403,
        _DENIED,
        _DENIED,
        "No valid app key or token, or the app's grant was revoked or has expired",
    ),
    (
        "consent_denied",
        403,
        _DENIED,
        _DENIED,
        "The wallet's owner declined this program (once, or always); the message says how to "
        "ask again",
    ),
    ("model_not_allowed", 403, _DENIED, _DENIED, "The app's grant does not cover this model"),
    (
        "signin_refused",
        403,
        _DENIED,
        _DENIED,
        "A provider's browser sign-in was refused (its code used, expired or not matching, or "
        "no code came back); nothing was stored",
    ),
    (
        "expensive_request_denied",
        403,
        _DENIED,
        _DENIED,
        "The wallet's owner declined (or did not answer) a request whose worst case is over "
        "their ask-before threshold",
    ),
    (
        "forbidden_host",
        403,
        _DENIED,
        _DENIED,
        "The Host header is not the wallet's loopback address (DNS rebinding)",
    ),
    (
        "forbidden_origin",
        403,
        _DENIED,
        _DENIED,
        "A browser Origin the wallet's owner did not allow",
    ),
    (
        "unknown_model",
        404,
        _BAD,
        "not_found_error",
        "The model is not in the wallet's pricing catalog",
    ),
    ("not_found", 404, _BAD, "not_found_error", "No such route, consent request or record"),
    ("method_not_allowed", 405, _BAD, _BAD, "The route does not take this method"),
    (
        "payload_too_large",
        413,
        _BAD,
        "request_too_large",
        "The body is larger than the wallet's limit",
    ),
    ("unsupported_media_type", 415, _BAD, _BAD, "The body is not JSON"),
    (
        "wallet_paused",
        423,
        _DENIED,
        _DENIED,
        "The wallet's owner paused the wallet or this app",
    ),
    (
        "rate_limited",
        429,
        "rate_limit_error",
        "rate_limit_error",
        "Too many requests; Retry-After says when to try again",
    ),
    (
        "too_many_pending",
        429,
        "rate_limit_error",
        "rate_limit_error",
        "Too many consent requests are already waiting for the wallet's owner (per program, per "
        "OS user or in total); wait for an answer, or retry after Retry-After",
    ),
    (
        "client_closed",
        499,
        _BAD,
        _BAD,
        "The client went away before the answer (request log only; never sent)",
    ),
    (INTERNAL, 500, _SERVER, "api_error", "The wallet failed on this request; see its log"),
    (
        "upstream_unavailable",
        502,
        _SERVER,
        "api_error",
        "The provider could not be reached, refused the wallet's key or failed",
    ),
    (
        "signin_failed",
        502,
        _SERVER,
        "api_error",
        "A provider's browser sign-in could not finish (the provider unreachable or its answer "
        "unusable, or no loopback port for the callback); nothing was stored",
    ),
    (
        "no_provider",
        503,
        _SERVER,
        "api_error",
        "No configured provider (or no usable key) serves this model",
    ),
    (
        "vault_locked",
        503,
        _SERVER,
        "api_error",
        "The wallet's secret store is locked; its owner must unlock it",
    ),
    (
        "vault_passphrase_wrong",
        503,
        _SERVER,
        "api_error",
        "The passphrase does not open the wallet's sealed secret store (or the file was altered)",
    ),
    (
        "vault_error",
        503,
        _SERVER,
        "api_error",
        "The wallet's secret store cannot be used (missing, unreadable or damaged)",
    ),
    (
        "catalog_invalid",
        503,
        _SERVER,
        "api_error",
        "The pricing catalog is broken, so the wallet cannot price requests",
    ),
    ("store_error", 503, _SERVER, "api_error", "The wallet's database cannot be used"),
    (
        "upstream_timeout",
        504,
        _SERVER,
        "timeout_error",
        "The provider did not answer in time",
    ),
    (
        "signin_timeout",
        504,
        _SERVER,
        "timeout_error",
        "No browser sign-in came back in time; nothing was stored",
    ),
)


def kind_of(code: str) -> ErrorKind:
    """The table's row for ``code``; a code not in the table is answered as ``wallet_error``."""
    return CODES.get(code) or CODES[FALLBACK]


class ProxyError(WalletError):
    """Raised anywhere in the pipeline; rendered once, in the caller's wire format."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: int | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message, code=code)
        self.status = status or kind_of(code).status
        self.retry_after = retry_after
        self.param = param


def describe(err: WalletError) -> ErrorKind:
    """How ``err`` is answered: its code's row of the table (``wallet_error`` for a code the
    table lacks), with a ProxyError's own status where it was given one."""
    kind = kind_of(err.code)
    if isinstance(err, ProxyError) and err.status != kind.status:
        kind = kind._replace(status=err.status)
    return kind


def _body(api: Api, kind: ErrorKind, message: str, param: str | None) -> dict[str, object]:
    if api is Api.ANTHROPIC:
        return {
            "type": "error",
            "error": {"type": kind.anthropic_type, "message": message, "code": kind.code},
        }
    return {
        "error": {"message": message, "type": kind.openai_type, "param": param, "code": kind.code}
    }


def error_body(api: Api, code: str, message: str, param: str | None = None) -> dict[str, object]:
    """The error's JSON in ``api``'s shape."""
    return _body(api, kind_of(code), message, param)


def error_response(api: Api, err: WalletError, request_id: str | None = None) -> web.Response:
    """Any deliberate error, answered with its own status and code in ``api``'s shape."""
    kind = describe(err)
    headers = {"x-aiwallet-error-code": kind.code}
    if request_id:
        headers["x-aiwallet-request-id"] = request_id
    param: str | None = None
    if isinstance(err, ProxyError):
        param = err.param
        if err.retry_after is not None:
            headers["Retry-After"] = str(err.retry_after)
    body = json.dumps(_body(api, kind, err.message, param))
    return web.Response(
        status=kind.status, text=body, content_type="application/json", headers=headers
    )
