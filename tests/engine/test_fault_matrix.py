"""Fault matrix: every upstream fault × API (OpenAI chat, Anthropic messages) × streaming.

One table-driven test. Each case runs the official SDK against a fresh engine in front of the
fake upstream (or a provider that cannot be reached) and checks, for that single request:

- the client's outcome: the SDK's exception class, HTTP status and the stable error code (or
  the provider's own error for a relayed 429), or success with content;
- the ledger: no row for refusals and upstream errors before any output; exactly one ``spend``
  row, ``estimated``, positive, with its ``price_row_ref``, when output may have been produced
  but its usage is unknown (cut stream, usage missing or malformed);
- the request log: one row with the expected status and ``error_code``, and the same id as
  the ``x-aiwallet-request-id`` the fake upstream received;
- no reservation left open;
- the audit log: faults are not changes, so it is exactly as before the request, and its
  chain verifies.

The engine's read timeout is short here (``READ_S``) so that the timeout case is fast.
"""

from __future__ import annotations

import contextlib
import importlib
import socket
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai
import pytest

from aiwallet.upstreams.client import Timeouts
from engine.conftest import Rig, make_rig
from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY, Script
from waiting import wait_until

READ_S = 0.4  # the engine's upstream read timeout in this module
MSGS = [{"role": "user", "content": "a b c d"}]
OPENAI_MODEL, ANTHROPIC_MODEL = "gpt-4o-mini", "claude-sonnet-4-5"
UNRESOLVABLE = "http://aiwallet-no-such-host.invalid:1"  # .invalid never resolves (RFC 6761)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """What an SDK raises when a stream breaks off (newer anthropic SDKs ship ``httpx2``)."""
    errors: list[type[BaseException]] = [httpx.HTTPError]
    with contextlib.suppress(ImportError):
        errors.append(importlib.import_module("httpx2").HTTPError)
    return tuple(errors)


TRANSPORT_ERRORS = _transport_errors()


@dataclass(frozen=True)
class Fault:
    name: str
    script: Script | None = None  # what the fake upstream does
    base_url: str | None = None  # "closed" / a URL: the provider is elsewhere
    streams_only: bool = False
    # expected outcome
    status: int | None = None  # HTTP status the client sees (None: success, or a cut stream)
    code: str | None = None  # stable wallet code (or the provider's code for a relayed 4xx)
    cut: bool = False  # the client sees its stream break off
    billed: bool = False  # exactly one estimated spend row
    log_status: int = 200
    log_code: str | None = None
    reaches_upstream: bool = True
    attempts: int = 1  # attempts the engine makes (retryable faults: each one is scripted)


FAULTS = [
    Fault(
        "refused",
        base_url="closed",
        status=502,
        code="upstream_unavailable",
        log_status=502,
        log_code="upstream_unavailable",
        reaches_upstream=False,
        attempts=3,
    ),
    Fault(
        "dns",
        base_url=UNRESOLVABLE,
        status=502,
        code="upstream_unavailable",
        log_status=502,
        log_code="upstream_unavailable",
        reaches_upstream=False,
        attempts=3,
    ),
    Fault(
        "timeout",
        script=Script(delay_s=READ_S * 5),
        status=504,
        code="upstream_timeout",
        log_status=504,
        log_code="upstream_timeout",
    ),
    Fault(
        "429",
        script=Script(status=429, retry_after=17),
        status=429,
        code="rate_limit",  # the provider's own error, relayed (checked per API below)
        log_status=429,
        log_code="upstream_status",
    ),
    Fault(
        "500",
        script=Script(status=500),
        status=502,
        code="upstream_unavailable",
        log_status=502,
        log_code="upstream_unavailable",
        attempts=3,
    ),
    Fault(
        "529",
        script=Script(status=529),
        status=503,
        code="upstream_unavailable",
        log_status=503,
        log_code="upstream_unavailable",
        attempts=3,
    ),
    # Billed (what was relayed) and logged as the provider failing: the client saw 200 and
    # then a broken stream.
    Fault(
        "cut",
        script=Script(cut_after_events=5),
        streams_only=True,
        cut=True,
        billed=True,
        log_code="upstream_unavailable",
    ),
    Fault("usage-missing", script=Script(usage="missing"), billed=True),
    Fault("usage-malformed", script=Script(usage="malformed"), billed=True),
]

CASES = [
    pytest.param(f, api, stream, id=f"{f.name}-{api}-{'stream' if stream else 'whole'}")
    for f in FAULTS
    for api in ("openai", "anthropic")
    for stream in (False, True)
    if stream or not f.streams_only
]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # type: ignore[no-any-return]


@pytest.fixture
def matrix_rig(tmp_path, fake):
    fake.reset()
    rig = make_rig(tmp_path, fake, timeouts=Timeouts(connect_s=2, read_s=READ_S))
    yield rig
    rig.engine.stop()
    rig.wallet.close()


@dataclass
class Outcome:
    exc: BaseException | None = None
    text: str = ""


def call(rig: Rig, key: str, api: str, stream: bool) -> Outcome:
    """One request through the official SDK; the exception it raised, or the text it got."""
    out = Outcome()
    try:
        if api == "openai":
            oc = rig.openai(key, timeout=15)
            if stream:
                for chunk in oc.chat.completions.create(
                    model=OPENAI_MODEL, messages=MSGS, stream=True
                ):
                    if chunk.choices and chunk.choices[0].delta.content:
                        out.text += chunk.choices[0].delta.content
            else:
                r = oc.chat.completions.create(model=OPENAI_MODEL, messages=MSGS)
                out.text = r.choices[0].message.content or ""
        else:
            ac = rig.anthropic(key, timeout=15)
            if stream:
                for event in ac.messages.create(
                    model=ANTHROPIC_MODEL, max_tokens=50, messages=MSGS, stream=True
                ):
                    if event.type == "content_block_delta" and event.delta.type == "text_delta":
                        out.text += event.delta.text
            else:
                m = ac.messages.create(model=ANTHROPIC_MODEL, max_tokens=50, messages=MSGS)
                out.text = "".join(b.text for b in m.content if b.type == "text")
    except (openai.APIError, anthropic.APIError, *TRANSPORT_ERRORS) as exc:
        out.exc = exc
    return out


def error_code(api: str, exc: openai.APIStatusError | anthropic.APIStatusError) -> Any:
    body = exc.body
    assert isinstance(body, dict), body
    if api == "openai":
        return body.get("code")  # the SDK hands over the inner "error" object
    return body["error"].get("code") or body["error"].get("type")


@pytest.mark.parametrize(("fault", "api", "stream"), CASES)
def test_fault_matrix(matrix_rig: Rig, fault: Fault, api: str, stream: bool) -> None:
    rig = matrix_rig
    if fault.base_url is not None:
        url = f"http://127.0.0.1:{closed_port()}" if fault.base_url == "closed" else fault.base_url
        if api == "openai":
            rig.wallet.add_provider(
                "openai", kind="openai", api_key=OPENAI_KEY, base_url=url + "/v1", replace=True
            )
        else:
            rig.wallet.add_provider(
                "anthropic", kind="anthropic", api_key=ANTHROPIC_KEY, base_url=url, replace=True
            )
    key = rig.app()
    if fault.script is not None:
        rig.fake.script(fault.script, times=fault.attempts)
    audit_before = [(e.seq, e.hash) for e in rig.wallet.audit.entries()]
    assert audit_before, "the setup itself is audited"

    out = call(rig, key, api, stream)

    # -- the client's outcome --------------------------------------------------------------
    if fault.status is not None:
        exc = out.exc
        assert isinstance(exc, openai.APIStatusError | anthropic.APIStatusError), repr(exc)
        assert exc.status_code == fault.status
        if fault.status >= 500:
            assert isinstance(exc, openai.InternalServerError | anthropic.InternalServerError)
            assert exc.response.headers["x-aiwallet-error-code"] == fault.code
            assert error_code(api, exc) == fault.code
        else:  # a relayed 429: the provider's own error and its Retry-After
            assert isinstance(exc, openai.RateLimitError | anthropic.RateLimitError)
            assert exc.response.headers["retry-after"] == "17"
            assert exc.response.headers["x-aiwallet-cost-usd"] == "0.000000000"
            assert error_code(api, exc) in ("rate_limit_exceeded", "rate_limit_error")
    elif fault.cut:
        assert out.exc is not None, "a cut stream must not look like a whole answer"
        assert not isinstance(out.exc, openai.APIStatusError | anthropic.APIStatusError)
        assert out.text, "the events before the cut were relayed"
    else:
        assert out.exc is None, repr(out.exc)
        assert out.text.strip(), "success with content"

    # -- the request log ---------------------------------------------------------------------
    # refusals are recorded off the request path: wait for the background write
    wait_until(lambda: len(rig.requests()) >= 1, what="the request to be logged")
    [req] = rig.requests()
    assert (req["status"], req["error_code"]) == (fault.log_status, fault.log_code)
    assert bool(req["stream"]) is stream

    # -- what reached the provider -----------------------------------------------------------
    served = rig.fake.served
    if fault.reaches_upstream:
        assert [s.headers.get("x-aiwallet-request-id") for s in served] == [req["id"]] * (
            fault.attempts
        )
        for s in served:  # the wallet's provider key, never the app key
            assert key not in str(s.headers)
    else:
        assert served == []
    # every attempt is in the request log, the last one's outcome is the answer
    attempts = rig.wallet.requests.attempts(req["id"])
    assert [a.n for a in attempts] == list(range(1, fault.attempts + 1))

    # -- the ledger and the reservations -------------------------------------------------
    wait_until(
        lambda: rig.wallet.budgets.open_reservations() == [],
        what="every reservation to be settled or released",
    )
    assert rig.wallet.budgets.open_reservations() == []
    rows = rig.ledger_rows()
    if fault.billed:
        [row] = rows
        assert row["kind"] == "spend" and row["request_id"] == req["id"]
        assert row["token_source"] == "estimated" and row["amount_nano"] > 0
        assert row["price_row_ref"] and row["price_row_ref"].startswith("models.dev:")
        assert req["token_source"] == "estimated" and req["cost_nano"] == row["amount_nano"]
    else:
        assert rows == []
        assert req["cost_nano"] == 0

    # -- the audit log: faults are not changes -------------------------------------------
    assert [(e.seq, e.hash) for e in rig.wallet.audit.entries()] == audit_before
    assert rig.wallet.verify_audit().ok
