"""The OpenAPI 3.1 document of the wallet and admin APIs, served at
``GET /wallet/v1/openapi.json`` (no auth: it describes the routes and holds no data).

Written from the handlers (wallet_api.py, admin.py, consent.py, server.py): what each accepts,
the codes it really answers with and the shape of its errors. A route lists its error codes
only; their statuses, error types and descriptions come from the one table in errors.py
(``CODES``), so the document cannot drift from what the engine sends. The proxied OpenAI and
Anthropic routes are the providers' own APIs and are not described here. tests/fuzz checks
that every route registered under ``/wallet/v1`` and ``/admin/v1`` is in the document and
runs schemathesis against a live engine with it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from aiwallet import __version__
from aiwallet.engine.consent import DURATIONS, MAX_LIFETIME_S, MAX_SERVED_SHOWN, SCOPES
from aiwallet.engine.errors import CODES, LOG_ONLY, ErrorKind

JSON = dict[str, Any]

OPENAPI_PATH = "/wallet/v1/openapi.json"

_STATES = ["pending", "approved", "denied", "expired", "cancelled"]


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra: Any) -> JSON:
    return {"type": [kind, "null"], **extra}


def _json(schema: JSON, description: str) -> JSON:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _types(codes: Iterable[str], pick: Callable[[ErrorKind], str]) -> JSON:
    """The error types (OpenAI's or Anthropic's, as ``pick`` says) that ``codes`` come with."""
    return {"enum": sorted({pick(CODES[code]) for code in codes})}


def _error_schema(codes: tuple[str, ...]) -> JSON:
    """OpenAI's shape, or Anthropic's when the request carried ``anthropic-version``, with the
    code limited to ``codes`` and the type to theirs (from the table in errors.py)."""
    code = {"enum": list(codes)}
    openai_types = _types(codes, lambda kind: kind.openai_type)
    anthropic_types = _types(codes, lambda kind: kind.anthropic_type)
    return {
        "anyOf": [
            {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["message", "type", "param", "code"],
                        "properties": {
                            "message": {"type": "string"},
                            "type": openai_types,
                            "param": _nullable("string"),
                            "code": code,
                        },
                    }
                },
            },
            {
                "type": "object",
                "required": ["type", "error"],
                "properties": {
                    "type": {"const": "error"},
                    "error": {
                        "type": "object",
                        "required": ["type", "message", "code"],
                        "properties": {
                            "type": anthropic_types,
                            "message": {"type": "string"},
                            "code": code,
                        },
                    },
                },
            },
        ]
    }


def _describe(codes: tuple[str, ...]) -> str:
    if len(codes) == 1:
        return CODES[codes[0]].description
    return "\n".join(f"- `{c}`: {CODES[c].description}" for c in codes)


def _error(codes: tuple[str, ...]) -> JSON:
    """An error response with ``codes`` (all of one status); the stable code is also in
    ``x-aiwallet-error-code``."""
    return {
        "description": _describe(codes),
        "headers": {"x-aiwallet-error-code": {"$ref": "#/components/headers/ErrorCode"}},
        "content": {"application/json": {"schema": _error_schema(codes)}},
    }


# server.py's guard refuses these on every route, before any other work.
_GUARD = ("forbidden_host", "forbidden_origin")
# The admin API's refusal (admin.py's ``guarded``) has a body of its own.
_ADMIN = "admin_token_required"


def _admin_401() -> JSON:
    return _json(
        {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {
                        "code": {"const": _ADMIN},
                        "message": {"type": "string"},
                    },
                }
            },
        },
        CODES[_ADMIN].description,
    )


def _errors(*codes: str) -> dict[str, JSON]:
    """The error responses of a route that answers with ``codes`` (and the guard's), one per
    status, each status and type taken from the table in errors.py."""
    by_status: dict[int, list[str]] = {}
    for code in (*_GUARD, *codes):
        if code in LOG_ONLY:
            raise ValueError(f"{code} is never sent")
        codes_of = by_status.setdefault(CODES[code].status, [])
        if code not in codes_of:
            codes_of.append(code)
    out: dict[str, JSON] = {}
    for status, listed in sorted(by_status.items()):
        if _ADMIN in listed:  # its own body: no other code can share its status
            if listed != [_ADMIN]:
                raise ValueError(f"{_ADMIN} shares {status} with {listed}")
            out[str(status)] = _admin_401()
        else:
            out[str(status)] = _error(tuple(listed))
    return out


def _sent_codes() -> list[str]:
    """Every code an answer can carry (the table's, less those only the request log uses)."""
    return sorted(code for code in CODES if code not in LOG_ONLY)


_APP_REQUEST_PROPS: JSON = {
    "id": {"type": "string"},
    "cursor": {"type": "string"},
    "ts": {"type": "string", "format": "date-time"},
    "endpoint": {"type": "string"},
    "model": _nullable("string"),
    "provider": _nullable("string"),
    "status": {"type": "integer"},
    "error_code": _nullable("string"),
    "stream": {"type": "boolean"},
    "input_tokens": {"type": "integer", "minimum": 0},
    "cache_read_tokens": {"type": "integer", "minimum": 0},
    "cache_write_tokens": {"type": "integer", "minimum": 0},
    "output_tokens": {"type": "integer", "minimum": 0},
    "reasoning_tokens": {"type": "integer", "minimum": 0},
    "cost_usd": {"type": "string", "pattern": "^-?[0-9]+\\.[0-9]{9}$"},
    "cost_nano": {"type": "integer"},
    "token_source": _nullable("string"),
    "latency_ms": _nullable("integer"),
}


_SCHEMAS: dict[str, JSON] = {
    "OpenAIError": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "param", "code"],
                "properties": {
                    "message": {"type": "string"},
                    "type": _types(_sent_codes(), lambda kind: kind.openai_type),
                    "param": _nullable("string"),
                    "code": {"enum": _sent_codes()},
                },
            }
        },
    },
    "AnthropicError": {
        "type": "object",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message", "code"],
                "properties": {
                    "type": _types(_sent_codes(), lambda kind: kind.anthropic_type),
                    "message": {"type": "string"},
                    "code": {"enum": _sent_codes()},
                },
            },
        },
    },
    "ConnectRequest": {
        "type": "object",
        "description": "An app asks for access. ``name`` is accepted for ``app_name`` and "
        "``providers`` for ``models``.",
        "anyOf": [{"required": ["app_name"]}, {"required": ["name"]}],
        "properties": {
            "app_name": {"type": "string", "minLength": 1, "maxLength": 100},
            "name": {"type": "string", "minLength": 1, "maxLength": 100},
            "purpose": _nullable("string", maxLength=500),
            "models": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "providers": {"type": "array", "items": {"type": "string", "minLength": 1}},
            "budget": _nullable(
                "string",
                maxLength=64,
                description="an amount and a period: 2.50/day, 10/week, 40/month, 5 total",
                examples=["2/day", "10/week", "5 total"],
            ),
            "lifetime_s": _nullable("integer", minimum=1, maximum=MAX_LIFETIME_S),
        },
    },
    "ConnectAccepted": {
        "type": "object",
        "required": ["id", "status", "poll", "poll_secret"],
        "properties": {
            "id": {"type": "string", "pattern": "^cr_[0-9a-f]{32}$"},
            "status": {"enum": ["pending", "denied"]},
            "poll": {"type": "string", "pattern": "^/wallet/v1/connect/cr_[0-9a-f]{32}$"},
            "poll_secret": {
                "type": "string",
                "pattern": "^aw_poll_[A-Za-z0-9_-]{43}$",
                "description": "Only this answer carries it: send it as "
                "'Authorization: Bearer <poll_secret>' when polling. The id alone (it shows in "
                "'aiwallet consent pending' and in the approve command line) reveals nothing.",
            },
        },
    },
    "ConnectStatus": {
        "type": "object",
        "required": ["id", "status"],
        "description": "Once approved, the answer (app, models, budget, expiry, receipt) and, "
        "on the first poll only (within two minutes of the approval, from the requester's OS "
        "user), the app's key.",
        "properties": {
            "id": {"type": "string"},
            "status": {"enum": _STATES},
            "message": {"type": "string"},
            "key": {"type": "string", "pattern": "^aw_app_"},
            "app": {"type": "string"},
            "receipt": _nullable("object"),
            "budget": _nullable("string"),
            "models": {"type": "array", "items": {"type": "string"}},
            "expires_at": _nullable("string", format="date-time"),
            "once": {"type": "boolean"},
        },
    },
    "Me": {
        "type": "object",
        "required": ["app", "models", "expires_at", "receipt", "budgets", "wallet_paused"],
        "properties": {
            "app": {"type": "string"},
            "models": {"type": "array", "items": {"type": "string"}},
            "expires_at": _nullable("string", format="date-time"),
            "receipt": _nullable("object"),
            "budgets": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": [
                        "scope",
                        "budget",
                        "spent_usd",
                        "reserved_usd",
                        "remaining_usd",
                        "resets_at",
                    ],
                    "properties": {
                        "scope": {"type": "string"},
                        "budget": {"type": "string"},
                        "spent_usd": {"type": "string"},
                        "reserved_usd": {"type": "string"},
                        "remaining_usd": {"type": "string"},
                        "resets_at": _nullable("string", format="date-time"),
                        "amount_nano": {"type": "integer"},
                        "spent_nano": {"type": "integer"},
                        "remaining_nano": {"type": "integer"},
                        "window_start": _nullable("string", format="date-time"),
                    },
                },
            },
            "wallet_paused": {"type": "boolean"},
            "app_paused": {"type": "boolean"},
            "now": {"type": "string", "format": "date-time"},
            "series": {
                "type": "object",
                "description": "with ?series=N: the app's spend in N equal buckets over its "
                "budget window (the last 24 hours without one)",
                "required": ["edges", "spent_nano", "spent_usd"],
                "properties": {
                    "edges": {"type": "array", "items": {"type": "string", "format": "date-time"}},
                    "spent_nano": {"type": "array", "items": {"type": "integer"}},
                    "spent_usd": {"type": "array", "items": {"type": "string"}},
                },
            },
            "last_hour": {
                "type": "object",
                "description": "with ?series=N: the app's spend over the last hour",
                "required": ["seconds", "spent_nano", "spent_usd"],
                "properties": {
                    "seconds": {"type": "integer"},
                    "spent_nano": {"type": "integer"},
                    "spent_usd": {"type": "string"},
                },
            },
        },
    },
    "AppRequest": {
        "type": "object",
        "description": "One of the calling app's requests, with what the ledger billed for it "
        "(cost_usd exact, 9 decimals; cost_nano the same in nano-dollars).",
        "required": list(_APP_REQUEST_PROPS),
        "properties": _APP_REQUEST_PROPS,
    },
    "AppRequests": {
        "type": "object",
        "required": ["requests", "next", "more", "in_flight"],
        "properties": {
            "requests": {"type": "array", "items": _ref("AppRequest")},
            "next": _nullable("string", description="the cursor to pass as `after` next"),
            "more": {"type": "boolean", "description": "the page was full: ask again"},
            "in_flight": {
                "type": "array",
                "description": "the app's requests that went to a provider and whose outcome "
                "is not yet committed; each will appear with a start time at or before "
                "`reserved_at`",
                "items": {
                    "type": "object",
                    "required": ["id", "reserved_at", "at"],
                    "properties": {
                        "id": {"type": "string"},
                        "reserved_at": {"type": "string", "format": "date-time"},
                        "at": {"type": "integer", "description": "microseconds since the epoch"},
                    },
                },
            },
        },
    },
    "SessionToken": {
        "type": "object",
        "required": ["token", "token_type", "expires_in", "expires_at"],
        "properties": {
            "token": {"type": "string", "pattern": "^aw_sess_"},
            "token_type": {"const": "bearer"},
            "expires_in": {"type": "integer", "minimum": 1},
            "expires_at": {"type": "string", "format": "date-time"},
        },
    },
    "EngineStatus": {
        "type": "object",
        "required": ["port", "paused", "generation", "in_flight_settlements"],
        "properties": {
            "port": {"type": "integer"},
            "paused": {"type": "boolean"},
            "generation": {"type": "integer"},
            "in_flight_settlements": {"type": "integer", "minimum": 0},
        },
    },
    "ProviderHealth": {
        "type": "object",
        "required": ["provider", "state", "failures", "health"],
        "properties": {
            "provider": {"type": "string"},
            "state": {"type": "string", "enum": ["closed", "open", "half_open"]},
            "health": {"type": "string", "enum": ["ok", "open", "probing"]},
            "failures": {"type": "integer", "minimum": 0},
            "retry_in_s": {"type": ["number", "null"]},
            "retry_at": {"type": ["string", "null"], "format": "date-time"},
        },
    },
    "Topup": {
        "type": "object",
        "required": ["provider", "amount_nano"],
        "properties": {
            "provider": {"type": "string", "minLength": 1},
            "amount_nano": {"type": "integer", "minimum": 1},
        },
    },
    "TopupResult": {
        "type": "object",
        "required": ["payment", "router_balance_atomic"],
        "properties": {
            "payment": {"type": "object"},
            "router_balance_atomic": {"type": ["integer", "null"]},
        },
    },
    "Reloaded": {
        "type": "object",
        "required": ["ok", "generation"],
        "properties": {"ok": {"const": True}, "generation": {"type": "integer"}},
    },
    "ConsentRequest": {
        "type": "object",
        "required": [
            "id",
            "kind",
            "app_name",
            "purpose",
            "models",
            "budget",
            "lifetime_s",
            "process",
            "process_label",
            "created_at",
            "expires_in_s",
            "state",
            "served_models",
            "served_count",
        ],
        "properties": {
            "id": {"type": "string"},
            "kind": {"enum": ["connect", "keyless", "expensive"]},
            "app_name": {"type": "string"},
            "purpose": _nullable("string"),
            "models": {"type": "array", "items": {"type": "string"}},
            "budget": _nullable("string"),
            "lifetime_s": _nullable("integer"),
            "process": {
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["pid", "exe", "cmdline", "user", "uid"],
                        "properties": {
                            "pid": _nullable("integer"),
                            "exe": _nullable("string"),
                            "cmdline": {"type": "array", "items": {"type": "string"}},
                            "user": _nullable("string"),
                            "uid": _nullable("integer"),
                            "script": {
                                **_nullable("string"),
                                "description": "the script (absolute path), '-m module', "
                                "'run command' or 'inline code' an interpreter runs",
                            },
                            "name": {"type": "string", "description": "what its app is called"},
                        },
                    },
                ]
            },
            "process_label": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "expires_in_s": {"type": "integer", "minimum": 0},
            "state": {"enum": _STATES},
            "held_request": {
                "description": "kinds 'keyless' and 'expensive': the one request held while "
                "the owner is asked (app and threshold: kind 'expensive' only)",
                "type": "object",
                "required": ["model", "worst_case_usd", "max_output_tokens", "request_id"],
                "properties": {
                    "app": {"type": "string"},
                    "model": {"type": "string"},
                    "worst_case_usd": {"type": "string", "pattern": r"^\d+\.\d{9}$"},
                    "max_output_tokens": {"type": "integer", "minimum": 0},
                    "threshold_usd": {"type": "string", "pattern": r"^\d+\.\d{9}$"},
                    "threshold_of": {"enum": ["app", "wallet"]},
                    "request_id": {"type": "string"},
                },
            },
            "served_models": {
                "description": "the models this wallet serves, by name (what 'any model' "
                f"would grant; at most {MAX_SERVED_SHOWN}); empty for kind 'expensive'",
                "type": "array",
                "items": {"type": "string"},
            },
            "served_count": {"type": "integer", "minimum": 0},
        },
    },
    "Approval": {
        "type": "object",
        "description": "Approve, possibly with less than was asked; absent or null fields keep "
        "what the request asked for.",
        "properties": {
            "budget": _nullable("string", maxLength=64, examples=["1/day"]),
            "models": {
                "type": ["array", "null"],
                "items": {"type": "string", "minLength": 1},
            },
            "lifetime_s": _nullable("integer", minimum=1, maximum=MAX_LIFETIME_S),
            "once": {"type": "boolean", "description": "the same as duration once"},
            "duration": {
                "type": ["string", "null"],
                "enum": [*DURATIONS, None],
                "description": "once (this burst: two minutes, nothing remembered), 15m, 1h "
                "(the grant and its rule expire), exit (until the requesting process exits; "
                "nothing remembered), always (until revoked); absent: the lifetime asked",
            },
            "scope": {
                "enum": list(SCOPES),
                "default": "script",
                "description": "what a remembered rule covers: this script (default) or any "
                "script of the same interpreter (program)",
            },
        },
    },
    "Denial": {
        "type": "object",
        "properties": {
            "always": {"type": "boolean"},
            "scope": {"enum": list(SCOPES), "default": "script"},
        },
    },
}

_SECURITY_SCHEMES: JSON = {
    "appKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An app key (aw_app_...) or a session token (aw_sess_...)",
    },
    "appKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "An app key, the Anthropic SDKs' way",
    },
    "pollSecret": {
        "type": "http",
        "scheme": "bearer",
        "description": "A connect request's poll secret (aw_poll_...), from its 202 answer",
    },
    "adminSignature": {
        "type": "http",
        "scheme": "AW-HMAC",
        "description": (
            "Challenge-response keyed by the admin token (the data dir's 0600 admin.token, new "
            "at every engine start), which itself is never sent. 1. GET /admin/v1/challenge"
            "?client_nonce=C (C: 16-128 of A-Z a-z 0-9 - _) answers a single-use nonce N "
            "(valid 30 s; at most 256 outstanding, the oldest dropped first), the engine's "
            "instance id I (as in engine.json) and proof = hex HMAC-SHA256(token, "
            "'aiwallet-admin-v1\\nengine\\n' C '\\n' N '\\n' I); check it before sending "
            'anything else. 2. Send the request with \'Authorization: AW-HMAC nonce="N", '
            "mac=\"M\"', M = hex HMAC-SHA256(token, 'aiwallet-admin-v1\\ncli\\n' N '\\n' "
            "METHOD '\\n' TARGET '\\n' hex SHA-256(body)), TARGET the path and query as sent. "
            "The engine consumes N on first use, whatever the outcome."
        ),
    },
}

_APP_AUTH: list[JSON] = [{"appKey": []}, {"appKeyHeader": []}]
_ADMIN_AUTH: list[JSON] = [{"adminSignature": []}]
_POLL_AUTH: list[JSON] = [{"pollSecret": []}]
_REQUEST_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "a consent request's id (cr_...)",
}


def _body(name: str, *, required: bool) -> JSON:
    return {"required": required, "content": {"application/json": {"schema": _ref(name)}}}


def _paths(max_poll_s: float) -> dict[str, JSON]:
    return {
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "Is the engine up",
                "security": [],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["ok"],
                            "properties": {"ok": {"const": True}},
                        },
                        "Up",
                    ),
                    **_errors(),
                },
            }
        },
        OPENAPI_PATH: {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1"), **_errors()},
            }
        },
        "/wallet/v1/connect": {
            "post": {
                "operationId": "connect",
                "summary": "Ask the wallet's owner for access (answered by long-polling)",
                "security": [],
                "requestBody": _body("ConnectRequest", required=True),
                "responses": {
                    "202": _json(_ref("ConnectAccepted"), "Asked (or denied by a remembered rule)"),
                    **_errors(
                        "invalid_request", "payload_too_large", "rate_limited", "too_many_pending"
                    ),
                },
            }
        },
        "/wallet/v1/connect/{id}": {
            "get": {
                "operationId": "connectStatus",
                "summary": "Wait for the answer to a connect request",
                "description": "Needs the request's poll secret, from the same OS user as the "
                "request; otherwise (or for an unknown id) 404, as if there were no such request.",
                "security": _POLL_AUTH,
                "parameters": [
                    _REQUEST_ID,
                    {
                        "name": "wait",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "number", "default": 30},
                        "description": f"seconds to hold the request while it is pending "
                        f"(more than {max_poll_s:g} counts as {max_poll_s:g})",
                    },
                ],
                "responses": {
                    "200": _json(_ref("ConnectStatus"), "The request's state"),
                    **_errors("invalid_request", "not_found"),
                },
            }
        },
        "/wallet/v1/me": {
            "get": {
                "operationId": "me",
                "summary": "This app: its models, budgets, grant expiry and receipt",
                "security": _APP_AUTH,
                "parameters": [
                    {
                        "name": "series",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 96, "default": 0},
                        "description": "also the spend over the budget window in this many "
                        "buckets, and over the last hour",
                    }
                ],
                "responses": {
                    "200": _json(_ref("Me"), "The calling app"),
                    **_errors("invalid_request", "invalid_app_key", "consent_required"),
                },
            }
        },
        "/wallet/v1/me/requests": {
            "get": {
                "operationId": "meRequests",
                "summary": "This app's own requests after a cursor, with their ledger cost",
                "description": "Ordered by (start time, id). Before answering, the settlements "
                "already under way are waited for, so every request whose answer the app has "
                "seen is either listed or in `in_flight`. A request is logged with its start "
                "time, so one in flight may later appear before `next`: to be exact over a "
                "span of time, ask again from its start once `in_flight` has none of it.",
                "security": _APP_AUTH,
                "parameters": [
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^[0-9]{1,17}(:.{0,64})?$"},
                        "description": "a `next` from an earlier page, or microseconds since "
                        "the Unix epoch (the requests started at or after it)",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 0,
                            "maximum": 1000,
                            "default": 100,
                        },
                    },
                    {
                        "name": "wait",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "number", "minimum": 0, "default": 0},
                        "description": f"when the page is empty (or, with `settling`, while "
                        f"those requests are in flight), hold it up to this many seconds (at "
                        f"most {max_poll_s:g}) until one of the app's requests is logged or the "
                        "wallet's settings change",
                    },
                    {
                        "name": "settling",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 640},  # 40 × MAX_SETTLING
                        "description": "request ids (comma-separated, at most 16) from "
                        "`in_flight`: `wait` holds while any of them is still in flight",
                    },
                ],
                "responses": {
                    "200": _json(_ref("AppRequests"), "A page of the app's requests"),
                    **_errors("invalid_request", "invalid_app_key", "consent_required"),
                },
            }
        },
        "/wallet/v1/token": {
            "post": {
                "operationId": "token",
                "summary": "Trade an app key for a short-lived session token",
                "security": _APP_AUTH,
                "responses": {
                    "200": _json(_ref("SessionToken"), "A token bound to the app's grant"),
                    **_errors("consent_required"),
                },
            }
        },
        "/admin/v1/challenge": {
            "get": {
                "operationId": "adminChallenge",
                "summary": "A single-use nonce for one signed admin request, and the engine's "
                "proof that it knows the admin token",
                "security": [],
                "parameters": [
                    {
                        "name": "client_nonce",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,128}$"},
                        "description": "the caller's own random nonce, covered by the proof",
                    }
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "required": ["nonce", "instance", "proof", "expires_in_s"],
                            "properties": {
                                "nonce": {"type": "string"},
                                "instance": {"type": "string"},
                                "proof": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                                "expires_in_s": {"type": "number"},
                            },
                        },
                        "A challenge (see the adminSignature scheme)",
                    ),
                    **_errors("invalid_request", _ADMIN),
                },
            }
        },
        "/admin/v1/status": {
            "get": {
                "operationId": "adminStatus",
                "security": _ADMIN_AUTH,
                "responses": {
                    "200": _json(_ref("EngineStatus"), "The engine"),
                    **_errors(_ADMIN),
                },
            }
        },
        "/admin/v1/providers/health": {
            "get": {
                "operationId": "providersHealth",
                "summary": "Each provider's circuit breaker (ok, open until when, probing)",
                "security": _ADMIN_AUTH,
                "responses": {
                    "200": _json({"type": "array", "items": _ref("ProviderHealth")}, "Health"),
                    **_errors(_ADMIN),
                },
            }
        },
        "/admin/v1/reload": {
            "post": {
                "operationId": "adminReload",
                "summary": "Re-read settings, apps and providers after an outside change",
                "security": _ADMIN_AUTH,
                "responses": {
                    "200": _json(_ref("Reloaded"), "Reloaded"),
                    **_errors(_ADMIN),
                },
            }
        },
        "/admin/v1/wallet/topup": {
            "post": {
                "operationId": "walletTopup",
                "summary": "Top up a prepaid x402 router, the reservation granted by this engine",
                "security": _ADMIN_AUTH,
                "requestBody": _body("Topup", required=True),
                "responses": {
                    "200": _json(_ref("TopupResult"), "Paid"),
                    **_errors("invalid_request", "not_found", "budget_exceeded", _ADMIN),
                },
            }
        },
        "/admin/v1/consent/pending": {
            "get": {
                "operationId": "consentPending",
                "security": _ADMIN_AUTH,
                "responses": {
                    "200": _json({"type": "array", "items": _ref("ConsentRequest")}, "Pending"),
                    **_errors(_ADMIN),
                },
            }
        },
        "/admin/v1/consent/{id}/approve": {
            "post": {
                "operationId": "consentApprove",
                "security": _ADMIN_AUTH,
                "parameters": [_REQUEST_ID],
                "requestBody": _body("Approval", required=False),
                "responses": {
                    "200": _json(
                        {
                            "allOf": [
                                _ref("ConsentRequest"),
                                {
                                    "type": "object",
                                    "required": ["answer"],
                                    "properties": {"answer": {"type": "object"}},
                                },
                            ]
                        },
                        "Approved: the app and grant exist (the key goes to the app only)",
                    ),
                    **_errors("invalid_request", _ADMIN, "not_found", "payload_too_large"),
                },
            }
        },
        "/admin/v1/consent/{id}/deny": {
            "post": {
                "operationId": "consentDeny",
                "security": _ADMIN_AUTH,
                "parameters": [_REQUEST_ID],
                "requestBody": _body("Denial", required=False),
                "responses": {
                    "200": _json(_ref("ConsentRequest"), "Denied"),
                    **_errors("invalid_request", _ADMIN, "not_found", "payload_too_large"),
                },
            }
        },
    }


def openapi_document(max_poll_s: float, server_url: str | None = None) -> JSON:
    """A fresh copy of the document; ``max_poll_s`` is the connect long-poll's limit and
    ``server_url`` (the engine's own) goes in ``servers``."""
    doc: JSON = {
        "openapi": "3.1.0",
        "info": {
            "title": "aiwallet wallet and admin API",
            "version": __version__,
            "description": "What local apps may ask the wallet (/wallet/v1) and how the CLI "
            "tells a running engine about changes (/admin/v1). Errors come in OpenAI's shape, "
            "or Anthropic's when the request carries anthropic-version, with the stable code "
            "also in the x-aiwallet-error-code header.",
        },
        "paths": _paths(max_poll_s),
        "components": {
            "schemas": copy.deepcopy(_SCHEMAS),
            "securitySchemes": copy.deepcopy(_SECURITY_SCHEMES),
            "headers": {
                "ErrorCode": {
                    "description": "the stable error code",
                    "schema": {"enum": _sent_codes()},
                }
            },
        },
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
