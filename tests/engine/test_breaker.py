"""The circuit breaker per provider through a real engine (engine/health.py,
engine/attempts.py): it opens after repeated failures and then stops traffic (the fake sees
no more requests), half-opens after the cool-down (the injected clock is moved, nothing
sleeps), lets one probe through and closes on a good one; its state is in the events, the
admin API and ``aiwallet providers list``."""

from __future__ import annotations

import concurrent.futures
import json
from datetime import datetime

import openai
import pytest

from aiwallet.engine.client import admin_call
from aiwallet.upstreams.breaker import BreakerPolicy
from aiwallet.upstreams.retry import NO_RETRIES
from engine.conftest import cli
from engine.test_retries import MSGS, FakeTime, resilient_rig
from fakeupstream import Script
from waiting import wait_until

POLICY = BreakerPolicy(failures_to_open=3, cooldown_s=30, max_cooldown_s=120)


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


@pytest.fixture
def brig(tmp_path, fake, time_):
    r = resilient_rig(tmp_path, fake, time_, retry=NO_RETRIES, breaker=POLICY)
    yield r
    r.engine.stop()
    r.wallet.close()


def ask(rig, key: str) -> openai.APIStatusError | None:
    try:
        rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    except openai.APIStatusError as err:
        return err
    return None


def breaker_events(rig) -> list[dict]:
    return [p for name, p in rig.engine.events.history if name == "provider.breaker"]


def health(rig, provider: str) -> dict:
    found = admin_call(rig.data_dir, "GET", "/admin/v1/providers/health")
    assert isinstance(found, list)
    return next(h for h in found if h["provider"] == provider)


def open_it(rig, key: str) -> None:
    rig.fake.script(Script(status=503), times=POLICY.failures_to_open)
    for _ in range(POLICY.failures_to_open):
        err = ask(rig, key)
        assert err is not None and err.status_code == 503


def test_opens_stops_traffic_half_opens_and_closes(brig, time_, capsys):
    key = brig.app()
    open_it(brig, key)
    assert len(brig.fake.served) == 3
    assert breaker_events(brig)[-1]["state"] == "open"
    assert breaker_events(brig)[-1]["failures"] == 3 and breaker_events(brig)[-1]["retry_at"]

    # open: refused at once, the provider asked nothing
    err = ask(brig, key)
    assert err is not None and err.status_code == 503
    assert err.body["code"] == "upstream_unavailable"
    assert "'openai' is paused after repeated failures" in err.message
    assert err.response.headers["retry-after"] == "30"
    assert len(brig.fake.served) == 3
    rid = err.response.headers["x-aiwallet-request-id"]
    wait_until(lambda: any(r["id"] == rid for r in brig.requests()), what="the refusal logged")
    assert brig.wallet.requests.attempts(rid) == []  # nothing was sent
    assert brig.wallet.budgets.open_reservations() == [] and brig.ledger_rows() == []
    # another provider is not affected
    m = brig.anthropic(key).messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=MSGS)
    assert m.content

    # visible: the admin API, the CLI (table and JSON), the engine's own read
    h = health(brig, "openai")
    assert (h["health"], h["state"], h["failures"]) == ("open", "open", 3)
    assert h["retry_in_s"] == 30
    until = datetime.fromisoformat(h["retry_at"]).astimezone()
    code, out, _ = cli(capsys, brig, "providers", "list")
    assert code == 0 and f"open until {until:%H:%M:%S}" in out and "HEALTH" in out
    code, out, _ = cli(capsys, brig, "providers", "list", "--json")
    listed = {p["name"]: p["health"] for p in json.loads(out)}
    assert listed["openai"]["health"] == "open" and listed["anthropic"]["health"] == "ok"
    assert {p["provider"]: p["health"] for p in brig.engine.provider_health()} == {
        "openai": "open",
        "anthropic": "ok",
    }

    # the cool-down passes (the clock moves): the next request is the probe
    time_.advance(30)
    assert health(brig, "openai")["health"] == "probing"
    code, out, _ = cli(capsys, brig, "providers", "list")
    assert "probing" in out
    assert ask(brig, key) is None  # the fake's default: a good answer
    assert len(brig.fake.served) == 5  # the anthropic call and the probe
    assert [e["state"] for e in breaker_events(brig)] == ["open", "half_open", "closed"]
    assert health(brig, "openai")["health"] == "ok"
    assert ask(brig, key) is None


def test_a_failed_probe_reopens_for_twice_as_long(brig, time_):
    key = brig.app()
    open_it(brig, key)
    time_.advance(30)
    brig.fake.script(Script(status=500))
    err = ask(brig, key)
    assert err is not None and err.status_code == 502  # the probe's own answer
    h = health(brig, "openai")
    assert h["health"] == "open" and h["retry_in_s"] == 60
    err = ask(brig, key)
    assert err is not None and err.response.headers["retry-after"] == "60"
    assert len(brig.fake.served) == 4


def test_one_probe_at_a_time(brig, time_):
    key = brig.app()
    open_it(brig, key)
    time_.advance(30)
    brig.fake.script(Script(gate="probe"))
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        probe = pool.submit(ask, brig, key)
        wait_until(lambda: brig.fake.at_gate("probe") == 1, what="the probe at the provider")
        err = ask(brig, key)  # while the probe is out: refused at once
        assert err is not None and err.status_code == 503
        assert "paused after repeated failures" in err.message
        brig.fake.open_gate("probe")
        assert probe.result(timeout=10) is None
    assert len(brig.fake.served) == 4
    assert health(brig, "openai")["health"] == "ok"


def test_answers_about_the_request_are_not_provider_failures(brig):
    key = brig.app()
    brig.fake.script(Script(echo_key="hint", status=400), times=4)
    for _ in range(4):
        err = ask(brig, key)
        assert err is not None and err.status_code == 400
    brig.fake.script(Script(status=429), times=4)
    for _ in range(4):
        err = ask(brig, key)
        assert err is not None and err.status_code == 429
    assert health(brig, "openai")["health"] == "ok" and breaker_events(brig) == []
    assert ask(brig, key) is None


def test_retries_count_toward_opening(tmp_path, fake, time_):
    """Each attempt is an outcome: with retries on, one request can open the breaker (and no
    retry is made once it is open)."""
    rig = resilient_rig(tmp_path, fake, time_, breaker=BreakerPolicy(failures_to_open=2))
    try:
        key = rig.app()
        rig.fake.script(Script(status=503), times=5)
        err = ask(rig, key)
        assert err is not None and err.status_code == 503
        assert len(rig.fake.served) == 2  # the third attempt would go to an open breaker
        rid = err.response.headers["x-aiwallet-request-id"]
        assert [a.status for a in rig.wallet.requests.attempts(rid)] == [503, 503]
        assert health(rig, "openai")["health"] == "open"
    finally:
        rig.engine.stop()
        rig.wallet.close()
