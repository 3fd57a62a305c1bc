"""The pure parts of retries and circuit breakers (upstreams/retry.py, upstreams/breaker.py):
time is a number the test moves, randomness a function it chooses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from aiwallet.domain.errors import InvalidInput
from aiwallet.upstreams.breaker import (
    Breaker,
    BreakerPolicy,
    Outcome,
    Refused,
    State,
    Ticket,
)
from aiwallet.upstreams.retry import (
    RetryPolicy,
    backoff_bound_s,
    backoff_s,
    client_timeout_s,
    next_delay,
    retry_after_s,
    retryable_status,
)

NOW = datetime(2026, 12, 9, 12, 0, 0, tzinfo=UTC)


# -- retry policy --------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 529])
def test_retryable_statuses(status):
    assert retryable_status(status)


@pytest.mark.parametrize("status", [200, 400, 401, 402, 403, 404, 408, 413, 422, 501])
def test_not_retryable_statuses(status):
    assert not retryable_status(status)


def test_backoff_is_exponential_capped_and_fully_jittered():
    policy = RetryPolicy(base_s=0.5, max_backoff_s=3.0)
    assert [backoff_bound_s(policy, n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff_s(policy, 3, lambda: 0.0) == 0.0  # full jitter: down to nothing
    assert backoff_s(policy, 3, lambda: 0.5) == 1.0
    assert backoff_s(policy, 3, lambda: 0.9999) == pytest.approx(2.0, abs=1e-3)
    assert backoff_bound_s(policy, 10_000) == 3.0  # no overflow however many attempts


def test_retry_after_forms():
    assert retry_after_s({"Retry-After": "3"}, NOW) == 3.0
    assert retry_after_s({"retry-after": " 1.5 "}, NOW) == 1.5
    assert retry_after_s({"Retry-After": "-4"}, NOW) == 0.0
    later = format_datetime(NOW + timedelta(seconds=7), usegmt=True)
    assert retry_after_s({"Retry-After": later}, NOW) == 7.0
    past = format_datetime(NOW - timedelta(seconds=7), usegmt=True)
    assert retry_after_s({"Retry-After": past}, NOW) == 0.0
    # retry-after-ms (OpenAI, Anthropic) wins over Retry-After
    assert retry_after_s({"retry-after-ms": "250", "Retry-After": "9"}, NOW) == 0.25
    # unreadable hints are no hints
    assert retry_after_s({"Retry-After": "soon"}, NOW) is None
    assert retry_after_s({"retry-after-ms": "nan"}, NOW) is None
    assert retry_after_s({"Retry-After": "inf"}, NOW) is None
    assert retry_after_s({}, NOW) is None


def test_client_timeout_header():
    assert client_timeout_s({"X-Stainless-Timeout": "600"}) == 600.0
    assert client_timeout_s({"x-stainless-timeout": "0"}) is None
    assert client_timeout_s({"x-stainless-timeout": "never"}) is None
    # what the anthropic SDK sends when given a plain number
    sent = {"x-stainless-timeout": "NOT_GIVEN", "x-stainless-read-timeout": "5.5"}
    assert client_timeout_s(sent) == 5.5
    assert client_timeout_s({}) is None


def test_next_delay_bounds():
    policy = RetryPolicy(max_attempts=3, total_s=5.0, base_s=1.0, max_retry_after_s=2.0)
    half = lambda: 0.5  # noqa: E731
    first = next_delay(policy, attempt=1, elapsed_s=0.0, hint_s=None, rand=half)
    assert first.retry and first.delay_s == 0.5
    second = next_delay(policy, attempt=2, elapsed_s=0.6, hint_s=None, rand=half)
    assert second.retry and second.delay_s == 1.0
    # the attempt bound
    third = next_delay(policy, attempt=3, elapsed_s=1.0, hint_s=None, rand=half)
    assert not third.retry and "3 attempts" in third.why
    # the provider's hint, honoured up to the cap, and past it not waited for at all
    hinted = next_delay(policy, attempt=1, elapsed_s=0.0, hint_s=2.0, rand=half)
    assert hinted.retry and hinted.delay_s == 2.0
    assert not next_delay(policy, attempt=1, elapsed_s=0.0, hint_s=2.5, rand=half).retry
    # the total time bound
    late = next_delay(policy, attempt=1, elapsed_s=4.8, hint_s=None, rand=half)
    assert not late.retry and "no time left" in late.why
    # what the client waits, less the margin for the attempt itself
    impatient = next_delay(
        policy, attempt=1, elapsed_s=0.0, hint_s=1.5, rand=half, client_wait_s=2.0
    )
    assert not impatient.retry
    patient = next_delay(policy, attempt=1, elapsed_s=0.0, hint_s=0.9, rand=half, client_wait_s=2.0)
    assert patient.retry


def test_policy_checks_its_numbers():
    with pytest.raises(InvalidInput):
        RetryPolicy(max_attempts=0)
    with pytest.raises(InvalidInput):
        RetryPolicy(total_s=float("nan"))
    with pytest.raises(InvalidInput):
        BreakerPolicy(cooldown_s=0)
    with pytest.raises(InvalidInput):
        BreakerPolicy(failure_rate=1.5)


# -- breaker -------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(**policy) -> tuple[Breaker, Clock, list[tuple[str, int]]]:
    clock = Clock()
    changes: list[tuple[str, int]] = []
    b = Breaker(
        "openai",
        clock,
        BreakerPolicy(**policy),
        on_change=lambda br: changes.append((br.state.value, br.failures)),
    )
    return b, clock, changes


def fail(b: Breaker, times: int = 1) -> None:
    for _ in range(times):
        ticket = b.admit()
        assert isinstance(ticket, Ticket)
        b.record(ticket, Outcome.FAILURE)


def test_opens_after_consecutive_failures_and_a_success_resets_the_count():
    b, _, changes = make(failures_to_open=3)
    fail(b, 2)
    ok = b.admit()
    assert isinstance(ok, Ticket)
    b.record(ok, Outcome.SUCCESS)
    fail(b, 2)
    assert b.state is State.CLOSED and changes == []
    fail(b)
    assert b.state is State.OPEN and changes == [("open", 3)]


def test_neutral_outcomes_do_not_count():
    b, _, _ = make(failures_to_open=2)
    for _ in range(10):
        t = b.admit()
        assert isinstance(t, Ticket)
        b.record(t, Outcome.NEUTRAL)
    fail(b)
    assert b.state is State.CLOSED


def test_opens_on_the_failure_rate_over_the_window():
    b, clock, _ = make(failures_to_open=100, window_s=10, window_min_calls=10, failure_rate=0.5)
    for i in range(10):
        t = b.admit()
        assert isinstance(t, Ticket)
        b.record(t, Outcome.FAILURE if i % 2 else Outcome.SUCCESS)
        clock.now += 0.1
    assert b.state is State.OPEN
    # outcomes older than the window are forgotten
    b2, clock2, _ = make(failures_to_open=100, window_s=10, window_min_calls=10, failure_rate=0.5)
    for i in range(10):
        t = b2.admit()
        assert isinstance(t, Ticket)
        b2.record(t, Outcome.FAILURE if i % 2 else Outcome.SUCCESS)
        clock2.now += 5  # only the last two are in the window at any time
    assert b2.state is State.CLOSED


def test_open_refuses_then_half_opens_with_one_probe_and_closes_on_success():
    b, clock, changes = make(failures_to_open=1, cooldown_s=30)
    fail(b)
    refused = b.admit()
    assert isinstance(refused, Refused) and refused.retry_in_s == 30
    clock.now += 29.5
    again = b.admit()
    assert isinstance(again, Refused) and again.retry_in_s == pytest.approx(0.5)
    assert b.snapshot().state is State.OPEN
    clock.now += 0.5
    assert b.snapshot().state is State.HALF_OPEN  # the next request is the probe
    probe = b.admit()
    assert isinstance(probe, Ticket) and probe.probe
    assert isinstance(b.admit(), Refused)  # one probe at a time
    b.record(probe, Outcome.SUCCESS)
    assert b.state is State.CLOSED and b.failures == 0
    assert [s for s, _ in changes] == ["open", "half_open", "closed"]
    assert isinstance(b.admit(), Ticket)


def test_failed_probe_reopens_with_the_cooldown_doubled_up_to_the_cap():
    b, clock, _ = make(failures_to_open=1, cooldown_s=30, max_cooldown_s=100)
    fail(b)
    waits = []
    for _ in range(4):
        snap = b.snapshot()
        assert snap.retry_in_s is not None
        waits.append(snap.retry_in_s)
        clock.now += snap.retry_in_s
        probe = b.admit()
        assert isinstance(probe, Ticket) and probe.probe
        b.record(probe, Outcome.FAILURE)
        assert b.state is State.OPEN
    assert waits == [30, 60, 100, 100]
    # a good probe closes it, and the next opening waits the base cool-down again
    clock.now += 100
    probe = b.admit()
    assert isinstance(probe, Ticket)
    b.record(probe, Outcome.SUCCESS)
    fail(b)
    assert b.snapshot().retry_in_s == 30


def test_an_abandoned_probe_frees_its_slot():
    b, clock, _ = make(failures_to_open=1, cooldown_s=5)
    fail(b)
    clock.now += 5
    probe = b.admit()
    assert isinstance(probe, Ticket) and probe.probe
    b.abandon(probe)
    assert b.state is State.HALF_OPEN
    second = b.admit()
    assert isinstance(second, Ticket) and second.probe


def test_answers_to_requests_sent_before_it_opened_change_nothing():
    b, clock, _ = make(failures_to_open=2, cooldown_s=5)
    early = b.admit()
    assert isinstance(early, Ticket)
    fail(b, 2)
    assert b.state is State.OPEN
    b.record(early, Outcome.SUCCESS)  # sent while closed: not a probe, does not close it
    assert b.state is State.OPEN
    clock.now += 5
    probe = b.admit()
    assert isinstance(probe, Ticket)
    b.record(early, Outcome.FAILURE)  # nor does a stale failure re-open it
    assert b.state is State.HALF_OPEN
    b.record(probe, Outcome.SUCCESS)
    assert b.state is State.CLOSED
