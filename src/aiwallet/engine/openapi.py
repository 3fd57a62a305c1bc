"""The OpenAPI 3.1 document of the wallet and admin APIs, served at
``GET /wallet/v1/openapi.json`` (no auth: it describes the routes and holds no data).

Written from the handlers (wallet_api.py, admin.py, consent.py, server.py): what each accepts,
the statuses it really returns and the shape of its errors. The proxied OpenAI and Anthropic
routes are the providers' own APIs and are not described here. tests/fuzz checks that every
route registered under ``/wallet/v1`` and ``/admin/v1`` is in the document and runs
schemathesis against a live engine with it.
"""

from __future__ import annotations

import copy
from typing import Any

from aiwallet import __version__
from aiwallet.engine.consent import MAX_LIFETIME_S
from aiwallet.engine.errors import CODES

JSON = dict[str, Any]

OPENAPI_PATH = "/wallet/v1/openapi.json"

_STATES = ["pending", "approved", "denied", "expired", "cancelled"]


def _ref(name: str) -> JSON:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **extra: Any) -> JSON:
    return {"type": [kind, "null"], **extra}


def _json(schema: JSON, description: str) -> JSON:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error_schema(codes: tuple[str, ...]) -> JSON:
    """OpenAI's shape, or Anthropic's when the request carried ``anthropic-version``, with the
    code limited to ``codes``."""
    code = {"enum": list(codes)}
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
                            "type": {"type": "string"},
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
                            "type": {"type": "string"},
                            "message": {"type": "string"},
                            "code": code,
                        },
                    },
                },
            },
        ]
    }


def _error(description: str, *codes: str) -> JSON:
    """An error response; its stable code is also in ``x-aiwallet-error-code``."""
    return {
        "description": description,
        "headers": {"x-aiwallet-error-code": {"$ref": "#/components/headers/ErrorCode"}},
        "content": {"application/json": {"schema": _error_schema(codes)}},
    }


def _refused(*codes: str) -> dict[str, JSON]:
    """403: server.py's guard (a foreign Host, a browser Origin the owner did not allow), before
    any other work; plus the route's own refusals."""
    return {
        "403": _error(
            "Refused: a foreign Host (DNS rebinding), a browser Origin the owner did not allow"
            + (", or no valid app key or token" if codes else ""),
            "forbidden_host",
            "forbidden_origin",
            *codes,
        )
    }


_ADMIN_401 = _json(
    {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"const": "admin_token_required"},
                    "message": {"type": "string"},
                },
            }
        },
    },
    "The admin token (the data dir's 0600 admin.token) is missing or wrong",
)

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
                    "type": {"type": "string"},
                    "param": _nullable("string"),
                    "code": {"enum": sorted(CODES)},
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
                    "type": {"type": "string"},
                    "message": {"type": "string"},
                    "code": {"enum": sorted(CODES)},
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
        "required": ["id", "status", "poll"],
        "properties": {
            "id": {"type": "string", "pattern": "^cr_[0-9a-f]{32}$"},
            "status": {"enum": ["pending", "denied"]},
            "poll": {"type": "string", "pattern": "^/wallet/v1/connect/cr_[0-9a-f]{32}$"},
        },
    },
    "ConnectStatus": {
        "type": "object",
        "required": ["id", "status"],
        "description": "Once approved, the answer (app, models, budget, expiry, receipt) and, "
        "on the first poll only, the app's key.",
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
                    },
                },
            },
            "wallet_paused": {"type": "boolean"},
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
        ],
        "properties": {
            "id": {"type": "string"},
            "kind": {"enum": ["connect", "keyless"]},
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
                        "required": ["pid", "exe", "cmdline", "user"],
                        "properties": {
                            "pid": {"type": "integer"},
                            "exe": _nullable("string"),
                            "cmdline": {"type": "array", "items": {"type": "string"}},
                            "user": _nullable("string"),
                        },
                    },
                ]
            },
            "process_label": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "expires_in_s": {"type": "integer", "minimum": 0},
            "state": {"enum": _STATES},
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
            "once": {"type": "boolean"},
        },
    },
    "Denial": {
        "type": "object",
        "properties": {"always": {"type": "boolean"}},
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
    "adminToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin token from the data dir's 0600 admin.token",
    },
}

_APP_AUTH: list[JSON] = [{"appKey": []}, {"appKeyHeader": []}]
_ADMIN_AUTH: list[JSON] = [{"adminToken": []}]
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
    too_large = _error("The body is larger than the wallet's limit", "payload_too_large")
    bad = _error("The body or a parameter is not acceptable", "invalid_request")
    missing = _error("No such consent request", "not_found")
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
                    **_refused(),
                },
            }
        },
        OPENAPI_PATH: {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1"), **_refused()},
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
                    "400": bad,
                    "413": too_large,
                    **_refused(),
                },
            }
        },
        "/wallet/v1/connect/{id}": {
            "get": {
                "operationId": "connectStatus",
                "summary": "Wait for the answer to a connect request",
                "security": [],
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
                    "400": bad,
                    "404": missing,
                    **_refused(),
                },
            }
        },
        "/wallet/v1/me": {
            "get": {
                "operationId": "me",
                "summary": "This app: its models, budgets, grant expiry and receipt",
                "security": _APP_AUTH,
                "responses": {
                    "200": _json(_ref("Me"), "The calling app"),
                    **_refused("consent_required"),
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
                    **_refused("consent_required"),
                },
            }
        },
        "/admin/v1/status": {
            "get": {
                "operationId": "adminStatus",
                "security": _ADMIN_AUTH,
                "responses": {
                    "200": _json(_ref("EngineStatus"), "The engine"),
                    "401": _ADMIN_401,
                    **_refused(),
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
                    "401": _ADMIN_401,
                    **_refused(),
                },
            }
        },
        "/admin/v1/consent/pending": {
            "get": {
                "operationId": "consentPending",
                "security": _ADMIN_AUTH,
                "responses": {
                    "200": _json({"type": "array", "items": _ref("ConsentRequest")}, "Pending"),
                    "401": _ADMIN_401,
                    **_refused(),
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
                    "400": _error(
                        "The body is not acceptable, or the request is already answered",
                        "invalid_request",
                    ),
                    "401": _ADMIN_401,
                    "404": missing,
                    "413": too_large,
                    **_refused(),
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
                    "400": _error(
                        "The body is not acceptable, or the request is already answered",
                        "invalid_request",
                    ),
                    "401": _ADMIN_401,
                    "404": missing,
                    "413": too_large,
                    **_refused(),
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
                    "schema": {"enum": sorted(CODES)},
                }
            },
        },
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc
