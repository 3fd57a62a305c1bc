"""Retries before the first relayed byte (engine/attempts.py), through a real engine in front
of the fake upstream, with the official SDKs (max_retries=0: what retries is the wallet).

The engine's clock and sleep are injected (``FakeTime``): a backoff or a Retry-After is
recorded and moves the clock, and no test waits for it."""

from __future__ import annotations

import asyncio
import threading

import anthropic
import httpx
import openai
import pytest

from aiwallet.engine.attempts import Resilience
from aiwallet.upstreams.breaker import BreakerPolicy
from aiwallet.upstreams.retry import RetryPolicy
from engine.conftest import Rig, make_rig
from fakeupstream import Script

MSGS = [{"role": "user", "content": "a b c d"}]


class FakeTime:
    """A monotonic clock the engine reads and a sleep that only moves it (thread-safe: the
    engine reads it on its thread, the test moves it on its own)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    async def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds
        await asyncio.sleep(0)


def resilient_rig(tmp_path, fake, time: FakeTime, **kw) -> Rig:
    fake.reset()
    config = Resilience(
        retry=kw.pop("retry", RetryPolicy()),
        breaker=kw.pop("breaker", BreakerPolicy()),
        clock=time.clock,
        sleep=time.sleep,
        rand=kw.pop("rand", lambda: 0.5),
    )
    return make_rig(tmp_path, fake, resilience=config, **kw)


@pytest.fixture
def time_() -> FakeTime:
    return FakeTime()


@pytest.fixture
def rrig(tmp_path, fake, time_):
    r = resilient_rig(tmp_path, fake, time_)
    yield r
    r.engine.stop()
    r.wallet.close()


def attempts(rig: Rig, request_id: str) -> list[tuple[int, int | None, str | None]]:
    return [(a.n, a.status, a.error) for a in rig.wallet.requests.attempts(request_id)]


def test_503_then_200_is_one_served_answer_two_attempts_one_ledger_row(rrig, time_):
    key = rrig.app()
    rrig.fake.script(Script(status=503))
    raw = rrig.openai(key).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MSGS
    )
    answer = raw.parse()
    assert answer.choices[0].message.content
    rid = raw.headers["x-aiwallet-request-id"]
    served = rrig.fake.served
    assert len(served) == 2
    assert [s.headers["x-aiwallet-request-id"] for s in served] == [rid, rid]
    assert attempts(rrig, rid) == [(1, 503, "upstream_status"), (2, 200, None)]
    [req] = rrig.requests()
    assert req["id"] == rid and req["status"] == 200 and req["error_code"] is None
    [row] = rrig.ledger_rows()
    assert row["request_id"] == rid and row["amount_nano"] == req["cost_nano"] > 0
    assert rrig.wallet.budgets.open_reservations() == []
    assert time_.sleeps == [0.25]  # full jitter of the first backoff bound (0.5 s) at 0.5


def test_anthropic_stream_529_then_200_is_served(rrig, time_):
    key = rrig.app()
    rrig.fake.script(Script(status=529))
    text = ""
    with rrig.anthropic(key).messages.stream(
        model="claude-sonnet-4-5", max_tokens=50, messages=MSGS
    ) as stream:
        for chunk in stream.text_stream:
            text += chunk
    assert text.strip()
    [req] = rrig.requests()
    assert req["status"] == 200 and req["stream"]
    assert attempts(rrig, req["id"]) == [(1, 529, "upstream_status"), (2, 200, None)]
    assert len(rrig.ledger_rows()) == 1


def test_429_retry_after_is_honoured_up_to_the_cap(tmp_path, fake, time_):
    rig = resilient_rig(tmp_path, fake, time_, retry=RetryPolicy(max_retry_after_s=2))
    try:
        key = rig.app()
        rig.fake.script(Script(status=429, retry_after=1))
        r = rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        assert r.choices[0].message.content
        assert time_.sleeps == [1.0]  # the provider's own wait, not the backoff
        [req] = rig.requests()
        assert attempts(rig, req["id"]) == [(1, 429, "upstream_status"), (2, 200, None)]
        # a wait past the cap is not waited for: the provider's 429 and its hint go back
        rig.fake.script(Script(status=429, retry_after=3))
        with pytest.raises(openai.RateLimitError) as err:
            rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        assert err.value.response.headers["retry-after"] == "3"
        assert time_.sleeps == [1.0]
        rid = err.value.response.headers["x-aiwallet-request-id"]
        assert attempts(rig, rid) == [(1, 429, "upstream_status")]
    finally:
        rig.engine.stop()
        rig.wallet.close()


def test_a_stream_cut_after_its_first_event_is_not_retried(rrig, time_):
    key = rrig.app()
    rrig.fake.script(Script(cut_after_events=1))
    rrig.fake.script(Script())  # would answer a retry: it must not be asked
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for _ in rrig.openai(key).chat.completions.create(
            model="gpt-4o-mini", messages=MSGS, stream=True
        ):
            pass
    assert len(rrig.fake.served) == 1
    [req] = rrig.requests()
    assert req["error_code"] == "upstream_unavailable"
    assert attempts(rrig, req["id"]) == [(1, 200, None)]
    assert time_.sleeps == []
    [row] = rrig.ledger_rows()  # billed from what was relayed, once
    assert row["token_source"] == "estimated"


def test_attempts_never_exceed_the_attempt_bound(rrig, time_):
    key = rrig.app()
    rrig.fake.script(Script(status=503), times=10)
    with pytest.raises(openai.APIStatusError) as err:
        rrig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert err.value.status_code == 503 and err.value.body["code"] == "upstream_unavailable"
    assert len(rrig.fake.served) == 3  # RetryPolicy().max_attempts
    rid = err.value.response.headers["x-aiwallet-request-id"]
    assert [a[:2] for a in attempts(rrig, rid)] == [(1, 503), (2, 503), (3, 503)]
    assert time_.sleeps == [0.25, 0.5]  # bounds 0.5 s then 1 s, jittered at 0.5
    assert rrig.ledger_rows() == [] and rrig.wallet.budgets.open_reservations() == []


def test_attempts_never_exceed_the_time_bound(tmp_path, fake, time_):
    policy = RetryPolicy(max_attempts=10, total_s=3.0, base_s=1.0, max_backoff_s=8.0)
    rig = resilient_rig(tmp_path, fake, time_, retry=policy, rand=lambda: 0.99)
    try:
        key = rig.app()
        rig.fake.script(Script(status=502), times=10)
        with pytest.raises(openai.APIStatusError) as err:
            rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        assert err.value.status_code == 502
        # waits 0.99 then 1.98 (2.97 s in all); a third (3.96) would end past 3 s
        assert time_.sleeps == pytest.approx([0.99, 1.98])
        assert len(rig.fake.served) == 3
    finally:
        rig.engine.stop()
        rig.wallet.close()


def test_no_retry_outlasts_what_the_client_waits(tmp_path, fake, time_):
    """The Anthropic SDK says its timeout (x-stainless-read-timeout): a wait that would end past it
    (less a second for the attempt itself) is not made."""
    policy = RetryPolicy(max_retry_after_s=30)
    rig = resilient_rig(tmp_path, fake, time_, retry=policy)
    try:
        key = rig.app()
        rig.fake.script(Script(status=429, retry_after=5), times=3)
        client = rig.anthropic(key, timeout=5.5)
        with pytest.raises(anthropic.RateLimitError):
            client.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=MSGS)
        assert time_.sleeps == [] and len(rig.fake.served) == 1
        patient = rig.anthropic(key, timeout=60)
        rig.fake.reset()
        rig.fake.script(Script(status=429, retry_after=5))
        m = patient.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=MSGS)
        assert m.content and time_.sleeps == [5.0]
    finally:
        rig.engine.stop()
        rig.wallet.close()


def test_a_timeout_is_not_retried(tmp_path, fake, time_):
    from aiwallet.upstreams.client import Timeouts

    rig = resilient_rig(tmp_path, fake, time_, timeouts=Timeouts(connect_s=2, read_s=0.3))
    try:
        key = rig.app()
        rig.fake.script(Script(delay_s=3))
        with pytest.raises(openai.APIStatusError) as err:
            rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
        assert err.value.status_code == 504
        rid = err.value.response.headers["x-aiwallet-request-id"]
        assert attempts(rig, rid) == [(1, None, "upstream_timeout")]
        assert time_.sleeps == []
    finally:
        rig.engine.stop()
        rig.wallet.close()


def test_a_400_is_not_retried(rrig, time_):
    key = rrig.app()
    rrig.fake.script(Script(echo_key="hint", status=400))
    with pytest.raises(openai.BadRequestError) as err:
        rrig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    rid = err.value.response.headers["x-aiwallet-request-id"]
    assert attempts(rrig, rid) == [(1, 400, "upstream_status")]
    assert len(rrig.fake.served) == 1 and time_.sleeps == []


def test_an_x402_payment_is_never_retried_after_it_was_signed(tmp_path, fake, chain, time_):
    """The router answers 500 to the paid request: a retry would sign (or send) the payment
    again, so the paid attempt is the last one, whatever it answered."""
    from engine.x402rig import OPENAI_MODEL, make_pay_rig

    fake.reset()
    config = Resilience(clock=time_.clock, sleep=time_.sleep, rand=lambda: 0.5)
    pay = make_pay_rig(tmp_path, fake, chain, consent_timeout_s=20, resilience=config)
    try:
        pay.allow_payee()
        pay.kit.router.error_after_payment = True
        key = pay.app()
        with pytest.raises(openai.APIStatusError) as err:
            pay.rig.openai(key).chat.completions.create(
                model=OPENAI_MODEL, messages=[{"role": "user", "content": "hello"}]
            )
        assert err.value.status_code == 502
        assert pay.kit.router.served["402"] == 1
        assert pay.kit.router.served["error_after_payment"] == 1
        assert len(pay.wallet.payments.recent(10)) == 1 and time_.sleeps == []
        rid = err.value.response.headers["x-aiwallet-request-id"]
        assert [(a.n, a.status) for a in pay.wallet.requests.attempts(rid)] == [
            (1, 402),
            (2, 500),
        ]
    finally:
        pay.close()
