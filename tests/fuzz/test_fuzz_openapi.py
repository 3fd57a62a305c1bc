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

from adminsign import RequestsAdminAuth
from aiwallet.engine.adminauth import CHALLENGE_PATH
from aiwallet.engine.admission import AdmissionLimits
from aiwallet.engine.openapi import OPENAPI_PATH, openapi_document
from aiwallet.engine.wallet_api import MAX_POLL_S
from fuzz.conftest import scaled

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


def _checks():
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]


def _fuzz(op, mode: str, rig, headers: dict, statuses: set, checks: list, auth=None) -> None:
    """Up to 25 (long: 200) generated requests to one operation, each validated."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    def pending() -> tuple[str, str]:
        resp = httpx.post(rig.url + "/wallet/v1/connect", json={"app_name": "fuzzed"}, timeout=10)
        assert resp.status_code == 202, resp.text
        return resp.json()["id"], resp.json()["poll_secret"]

    # An approval gets through only when the generated budget is absent or well formed and the
    # id is a real pending request: give it more tries, so that at least one does.
    approve = op.path == "/admin/v1/consent/{id}/approve" and mode == "positive"

    @settings(
        max_examples=scaled(80 if approve else 25, 200),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(GenerationMode(mode)), real_id=st.booleans())
    def run(case, real_id):
        call_headers = dict(headers)
        if "id" in (case.path_parameters or {}) and real_id:
            # half the time a consent request that exists and waits for an answer
            req_id, secret = pending()
            case.path_parameters = {**case.path_parameters, "id": req_id}
            if op.path == "/wallet/v1/connect/{id}":
                case.query = {**(case.query or {}), "wait": 0.05}
                call_headers["Authorization"] = f"Bearer {secret}"  # the requester polls
        if op.path == "/wallet/v1/me/requests" and isinstance(
            (case.query or {}).get("wait"), int | float
        ):
            # a long-poll on an app that logs nothing would hold each example for its wait
            case.query = {**case.query, "wait": min(case.query["wait"], 0.05)}
        extra = {"auth": auth} if auth is not None else {}
        response = case.call_and_validate(
            base_url=rig.url, headers=call_headers, checks=checks, timeout=30, **extra
        )
        statuses.add((op.label, response.status_code))

    run()


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_schemathesis_against_the_live_engine(make_engine, mode):
    import schemathesis

    rig = make_engine(consent_timeout_s=30.0)
    # every generated example may open a prompt from this one process: lift the bounds
    many = 100_000
    rig.engine.consent.set_limits(AdmissionLimits(many, many, many, many, float(many)))
    app_key = rig.app("schemathesis", budget="2/day")
    admin = RequestsAdminAuth(rig.url, rig.engine.admin_token)  # each request signed
    app = {"Authorization": f"Bearer {app_key}"}
    schema = schemathesis.openapi.from_url(rig.url + OPENAPI_PATH, timeout=10)
    checks = _checks()
    statuses: set[tuple[str, int]] = set()
    operations = [result.ok() for result in schema.get_all_operations()]
    documented = {
        f"{method.upper()} {path}"
        for path, item in openapi_document(MAX_POLL_S).get("paths", {}).items()
        for method in item
        if path != OPENAPI_PATH  # schemathesis leaves out the document's own URL
    }
    assert {op.label for op in operations} >= documented and len(documented) >= 10
    if mode == "negative":  # only what has parameters or a body can be sent wrong
        operations = [op for op in operations if op.path_parameters or op.query or op.body]
        assert len(operations) >= 4
    for op in operations:
        if op.path.startswith("/admin/") and op.path != CHALLENGE_PATH:
            _fuzz(op, mode, rig, {}, statuses, checks, auth=admin)
        else:
            _fuzz(op, mode, rig, app, statuses, checks)
    assert {label for label, _ in statuses} == {op.label for op in operations}
    assert httpx.get(rig.url + "/healthz", timeout=5).json() == {"ok": True}
    if mode == "positive":  # the generated requests really got through, not only refusals
        for label in ("GET /admin/v1/status", "GET /wallet/v1/me", "POST /wallet/v1/token"):
            assert (label, 200) in statuses, sorted(statuses)
        assert ("POST /admin/v1/consent/{id}/approve", 200) in statuses, sorted(statuses)
