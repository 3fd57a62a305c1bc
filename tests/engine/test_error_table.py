"""One table of error codes: every error class and every code raised in the source is in it,
its Anthropic types are Anthropic's own, no deliberate error is a 500, and the OpenAPI
document's error schemas are the table's."""

from __future__ import annotations

import ast
import asyncio
import importlib
import json
import pkgutil
from pathlib import Path

import pytest

import aiwallet
from aiwallet.domain.errors import (
    BudgetExceeded,
    CatalogError,
    InvalidInput,
    NotFound,
    VaultError,
    VaultLocked,
    WalletError,
)
from aiwallet.engine.errors import (
    ANTHROPIC_TYPES,
    CODES,
    FALLBACK,
    INTERNAL,
    LOG_ONLY,
    Api,
    ProxyError,
    describe,
    error_body,
    error_response,
)
from aiwallet.engine.openapi import openapi_document

SRC = Path(aiwallet.__file__).parent


def _import_everything() -> None:
    for mod in pkgutil.walk_packages(aiwallet.__path__, "aiwallet."):
        if mod.name.endswith("__main__") or ".migrations" in mod.name:
            continue  # runs the app / alembic's scripts, not importable on their own
        importlib.import_module(mod.name)


def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


def wallet_error_classes() -> list[type[WalletError]]:
    _import_everything()
    return [c for c in _subclasses(WalletError) if c.__module__.startswith("aiwallet.")]


def test_every_wallet_error_class_has_its_code_in_the_table():
    classes = wallet_error_classes()
    names = {c.__name__ for c in classes}
    assert {"InvalidInput", "NotFound", "VaultError", "ProxyError", "StoreError"} <= names
    missing = {f"{c.__module__}.{c.__qualname__}": c.code for c in classes if c.code not in CODES}
    assert not missing, f"add these codes to CODES in engine/errors.py: {missing}"
    assert WalletError.code == FALLBACK in CODES


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            yield name, node


def test_every_code_raised_in_the_source_is_in_the_table():
    """``ProxyError("code", ...)`` and ``SomeWalletError(..., code="code")`` everywhere in src."""
    error_names = {c.__name__ for c in wallet_error_classes()} | {"WalletError"}
    used: dict[str, list[str]] = {}
    not_literal = []
    for path in sorted(SRC.rglob("*.py")):
        where = str(path.relative_to(SRC.parent))
        for name, call in _calls(ast.parse(path.read_text(encoding="utf-8"))):
            if name not in error_names:
                continue
            where_line = f"{where}:{call.lineno}"
            if name == "ProxyError":
                first = call.args[0] if call.args else None
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    used.setdefault(first.value, []).append(where_line)
                else:
                    not_literal.append(where_line)
            for kw in call.keywords:
                if kw.arg == "code":
                    if isinstance(kw.value, ast.Constant) and isinstance(kw.value.value, str):
                        used.setdefault(kw.value.value, []).append(where_line)
                    else:
                        not_literal.append(where_line)
    assert sum(map(len, used.values())) >= 40, used  # the scan really found the raises
    assert not not_literal, (
        f"name the code as a string literal so this test can check it: {not_literal}"
    )
    missing = {code: lines for code, lines in used.items() if code not in CODES}
    assert not missing, f"add these codes to CODES in engine/errors.py: {missing}"
    assert not LOG_ONLY & set(used), "a log-only code is never sent"


def test_the_table_uses_each_apis_own_types_and_no_deliberate_code_is_a_500():
    for code, kind in CODES.items():
        assert kind.code == code and kind.description and kind.description[-1] != "."
        assert kind.anthropic_type in ANTHROPIC_TYPES, code
        assert 400 <= kind.status < 600, code
        if kind.status in ANTHROPIC_TYPES.values():  # Anthropic has a type for this status
            [own] = [t for t, s in ANTHROPIC_TYPES.items() if s == kind.status]
            assert kind.anthropic_type == own, (code, kind)
        assert kind.openai_type in {
            "invalid_request_error",
            "authentication_error",
            "permission_error",
            "insufficient_quota",
            "rate_limit_error",
            "server_error",
        }, code
    assert [c for c, k in CODES.items() if k.status == 500] == [INTERNAL]
    assert CODES["budget_exceeded"][:3] == (402, "insufficient_quota", "billing_error")
    assert CODES["upstream_timeout"].anthropic_type == "timeout_error"
    assert CODES["payload_too_large"].anthropic_type == "request_too_large"
    assert CODES["invalid_app_key"][:3] == (401, "authentication_error", "authentication_error")
    assert CODES["admin_token_required"].status == 401
    assert CODES["client_closed"].status == 499 and "client_closed" in LOG_ONLY
    assert CODES[FALLBACK].status == 400
    assert "invalid_api_key" not in CODES


class _Unlisted(WalletError):
    code = "not_a_code_anywhere"


@pytest.mark.parametrize(
    ("err", "status", "code", "anthropic_type"),
    [
        (InvalidInput("x"), 400, "invalid_request", "invalid_request_error"),
        (NotFound("x"), 404, "not_found", "not_found_error"),
        (BudgetExceeded("x"), 402, "budget_exceeded", "billing_error"),
        (CatalogError("x"), 503, "catalog_invalid", "api_error"),
        (VaultError("x"), 503, "vault_error", "api_error"),
        (VaultLocked("x"), 503, "vault_locked", "api_error"),
        (WalletError("x"), 400, FALLBACK, "invalid_request_error"),
        (WalletError("x", code="unknown_model"), 404, "unknown_model", "not_found_error"),
        (_Unlisted("x"), 400, FALLBACK, "invalid_request_error"),
        (ProxyError("rate_limited", "x"), 429, "rate_limited", "rate_limit_error"),
        (
            ProxyError("upstream_unavailable", "x", status=503),
            503,
            "upstream_unavailable",
            "api_error",
        ),
        (ProxyError("upstream_timeout", "x"), 504, "upstream_timeout", "timeout_error"),
    ],
)
def test_describe_maps_each_error_to_its_kind(err, status, code, anthropic_type):
    kind = describe(err)
    assert (kind.status, kind.code, kind.anthropic_type) == (status, code, anthropic_type)


def test_proxy_error_keeps_its_constructor_and_attributes():
    err = ProxyError("budget_exceeded", "no money left", retry_after=60, param="model")
    assert isinstance(err, WalletError)
    assert (err.status, err.code, err.retry_after, err.param, err.message) == (
        402,
        "budget_exceeded",
        60,
        "model",
        "no money left",
    )
    assert ProxyError("upstream_unavailable", "x", status=503).status == 503


def _rendered(api: Api, err: WalletError):
    resp = error_response(api, err, "req_1")
    assert resp.text is not None
    return resp, json.loads(resp.text)


def test_error_response_renders_any_wallet_error_with_its_own_status():
    resp, body = _rendered(Api.OPENAI, InvalidInput("an app name is 1 to 100 characters"))
    assert resp.status == 400 and resp.headers["x-aiwallet-error-code"] == "invalid_request"
    assert resp.headers["x-aiwallet-request-id"] == "req_1" and "Retry-After" not in resp.headers
    assert body == {
        "error": {
            "message": "an app name is 1 to 100 characters",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_request",
        }
    }
    resp, body = _rendered(Api.ANTHROPIC, VaultLocked("unlock the wallet"))
    assert resp.status == 503 and resp.headers["x-aiwallet-error-code"] == "vault_locked"
    assert body == {
        "type": "error",
        "error": {"type": "api_error", "message": "unlock the wallet", "code": "vault_locked"},
    }
    resp, body = _rendered(Api.ANTHROPIC, ProxyError("budget_exceeded", "spent", retry_after=9))
    assert resp.status == 402 and resp.headers["Retry-After"] == "9"
    assert body["error"]["type"] == "billing_error"
    resp, body = _rendered(Api.WALLET, _Unlisted("odd"))
    assert resp.status == 400 and body["error"]["code"] == FALLBACK
    assert resp.headers["x-aiwallet-error-code"] == FALLBACK
    assert error_body(Api.ANTHROPIC, "payload_too_large", "big")["error"] == {
        "type": "request_too_large",
        "message": "big",
        "code": "payload_too_large",
    }


def test_the_error_middleware_answers_a_wallet_error_with_its_status_and_a_bug_with_500(caplog):
    """server.py's ``_errors``: a deliberate error keeps its status; anything else is a 500."""
    from aiohttp.test_utils import make_mocked_request

    from aiwallet.engine.server import Engine

    async def run(exc: Exception, headers: dict[str, str] | None = None):
        async def handler(request):
            raise exc

        request = make_mocked_request("POST", "/admin/v1/consent/cr_1/approve", headers=headers)
        return await Engine._errors(None, request, handler)  # the method uses no engine state

    for exc, status, code in [
        (InvalidInput("--models needs at least one model"), 400, "invalid_request"),
        (VaultError("the vault is damaged"), 503, "vault_error"),
        (CatalogError("the catalog is damaged"), 503, "catalog_invalid"),
        (ProxyError("not_found", "no consent request cr_1"), 404, "not_found"),
        (_Unlisted("odd"), 400, FALLBACK),
    ]:
        resp = asyncio.run(run(exc))
        assert (resp.status, resp.headers["x-aiwallet-error-code"]) == (status, code), exc
        assert json.loads(resp.text)["error"]["message"] == str(exc)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    resp = asyncio.run(run(RuntimeError("secret internals"), {"anthropic-version": "2023-06-01"}))
    body = json.loads(resp.text)
    assert resp.status == 500 and body["error"]["code"] == INTERNAL
    assert body["error"]["type"] == "api_error" and "secret internals" not in resp.text
    assert any("unexpected error" in r.getMessage() for r in caplog.records)


def _error_responses(doc):
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, resp in op["responses"].items():
                if int(status) >= 400:
                    yield f"{method.upper()} {path}", int(status), resp


def _codes_of(resp) -> list[str]:
    schema = resp["content"]["application/json"]["schema"]
    if "anyOf" not in schema:  # the admin API's own refusal
        return [schema["properties"]["error"]["properties"]["code"]["const"]]
    openai_shape, anthropic_shape = schema["anyOf"]
    codes = openai_shape["properties"]["error"]["properties"]["code"]["enum"]
    assert anthropic_shape["properties"]["error"]["properties"]["code"]["enum"] == codes
    oa_types = openai_shape["properties"]["error"]["properties"]["type"]["enum"]
    an_types = anthropic_shape["properties"]["error"]["properties"]["type"]["enum"]
    assert oa_types == sorted({CODES[c].openai_type for c in codes})
    assert an_types == sorted({CODES[c].anthropic_type for c in codes})
    return codes


def test_the_openapi_error_schemas_come_from_the_table():
    doc = openapi_document(60.0)
    seen = set()
    for op, status, resp in _error_responses(doc):
        codes = _codes_of(resp)
        assert codes, op
        for code in codes:
            assert CODES[code].status == status, (op, status, code)
            assert CODES[code].description in resp["description"], (op, code)
            seen.add(code)
    for item in doc["paths"].values():  # the guard's refusals, on every route
        for op in item.values():
            assert {"forbidden_host", "forbidden_origin"} <= set(_codes_of(op["responses"]["403"]))
    assert {"invalid_request", "not_found", "payload_too_large", "consent_required"} <= seen
    assert "admin_token_required" in seen and not LOG_ONLY & seen
    sent = sorted(set(CODES) - LOG_ONLY)
    assert doc["components"]["headers"]["ErrorCode"]["schema"]["enum"] == sent
    for name in ("OpenAIError", "AnthropicError"):
        props = doc["components"]["schemas"][name]["properties"]["error"]["properties"]
        assert props["code"]["enum"] == sent
        assert set(props["type"]["enum"]) == {
            getattr(CODES[c], "anthropic_type" if name == "AnthropicError" else "openai_type")
            for c in sent
        }
