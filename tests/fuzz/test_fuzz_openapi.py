"""The wallet and admin APIs' OpenAPI document: valid, complete, and true of the live engine.

schemathesis generates requests from the document served at ``/wallet/v1/openapi.json`` and
sends them to a running engine (with the admin token and an app key), checking that no answer
is a server error and that every status and body is one the document declares. Short mode:
at most 25 examples per operation; ``AIWALLET_FUZZ_LONG=1``: 200.
"""

from __future__ import annotations

import httpx
import pytest
from openapi_spec_validator import validate

from aiwallet.engine.openapi import OPENAPI_PATH, openapi_document
from aiwallet.engine.wallet_api import MAX_POLL_S

PREFIXES = ("/wallet/v1/", "/admin/v1/")


def _registered(rig) -> set[tuple[str, str]]:
    runner = rig.engine._runner
    assert runner is not None
    out = set()
    for route in runner.app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method != "HEAD" and (path.startswith(PREFIXES) or path == "/healthz"):
            out.add((route.method.lower(), path))
    return out


def test_document_is_valid_openapi_and_lists_every_route(make_engine):
    rig = make_engine()
    resp = httpx.get(rig.url + OPENAPI_PATH, timeout=10)  # no key, no admin token
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["openapi"].startswith("3.1") and doc["servers"] == [{"url": rig.url}]
    validate(doc)
    documented = {(m, p) for p, item in doc["paths"].items() for m in item}
    registered = _registered(rig)
    assert len(registered) >= 11
    assert registered == documented, (registered - documented, documented - registered)
    assert doc == openapi_document(MAX_POLL_S, rig.url)


def test_an_invalid_document_would_be_caught():
    """The validator is not a no-op: a broken copy of the document fails."""
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    doc = openapi_document(60.0)
    doc["paths"]["/wallet/v1/me"]["get"]["responses"]["200"] = {"content": {}}  # no description
    with pytest.raises(OpenAPIValidationError):
        validate(doc)
