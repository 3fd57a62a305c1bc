"""Errors in the wire shape of the API that was called, with the blueprint's stable codes.

OpenAI shape: ``{"error": {"message", "type", "param", "code"}}``.
Anthropic shape: ``{"type": "error", "error": {"type", "message", "code"}}`` (``code`` is an
extra field the SDKs ignore; the stable code is also in the ``x-aiwallet-error-code`` header).
"""

from __future__ import annotations

import json
from enum import StrEnum

from aiohttp import web

from aiwallet.domain.errors import WalletError


class Api(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    WALLET = "wallet"


# code → (HTTP status, OpenAI error type, Anthropic error type)
CODES: dict[str, tuple[int, str, str]] = {
    "consent_required": (403, "permission_error", "permission_error"),
    "invalid_api_key": (401, "authentication_error", "authentication_error"),
    "budget_exceeded": (402, "insufficient_quota", "permission_error"),
    "rate_limited": (429, "rate_limit_error", "rate_limit_error"),
    "model_not_allowed": (403, "permission_error", "permission_error"),
    "unknown_model": (404, "invalid_request_error", "not_found_error"),
    "invalid_request": (400, "invalid_request_error", "invalid_request_error"),
    "not_found": (404, "invalid_request_error", "not_found_error"),
    "method_not_allowed": (405, "invalid_request_error", "invalid_request_error"),
    "payload_too_large": (413, "invalid_request_error", "request_too_large"),
    "unsupported_media_type": (415, "invalid_request_error", "invalid_request_error"),
    "upstream_unavailable": (502, "server_error", "api_error"),
    "upstream_timeout": (504, "server_error", "api_error"),
    "no_provider": (503, "server_error", "api_error"),
    "wallet_paused": (423, "permission_error", "permission_error"),
    "forbidden_host": (403, "permission_error", "permission_error"),
    "forbidden_origin": (403, "permission_error", "permission_error"),
    "internal_error": (500, "server_error", "api_error"),
}


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
        self.status = status or CODES[code][0]
        self.retry_after = retry_after
        self.param = param


def error_body(api: Api, code: str, message: str, param: str | None = None) -> dict[str, object]:
    _, oa_type, an_type = CODES.get(code, CODES["internal_error"])
    if api is Api.ANTHROPIC:
        return {"type": "error", "error": {"type": an_type, "message": message, "code": code}}
    return {"error": {"message": message, "type": oa_type, "param": param, "code": code}}


def error_response(api: Api, err: ProxyError, request_id: str | None = None) -> web.Response:
    headers = {"x-aiwallet-error-code": err.code}
    if request_id:
        headers["x-aiwallet-request-id"] = request_id
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    body = json.dumps(error_body(api, err.code, err.message, err.param))
    return web.Response(
        status=err.status, text=body, content_type="application/json", headers=headers
    )
