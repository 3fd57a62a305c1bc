"""When a provider's answer is worth asking for again, and how long to wait first.

Pure: no I/O, no clock of its own (the caller passes the time and a random source). The
engine's side (engine/attempts.py) sends, asks :func:`next_delay` what to do with each
outcome, and sleeps the delay it says; it only ever retries while nothing of the answer has
reached the client.

- Retryable: a connection error (nothing came back), and the statuses a provider uses for
  "not now" (429, 500, 502, 503, 504, 529). A timeout is not retried: the provider may be
  working on (and billing) the request still.
- Delay: the provider's own hint where it gave one (``retry-after-ms``, else ``Retry-After``
  in seconds or as an HTTP date), honoured up to ``max_retry_after_s``; a hint longer than
  that ends the retrying (the client gets the provider's answer, hint included). Without a
  hint, exponential backoff with full jitter: uniform in ``[0, min(max_backoff_s,
  base_s * 2**(n-1))]`` after attempt ``n``.
- Bounds: at most ``max_attempts`` attempts, and no wait that would end past ``total_s``
  after the first attempt started, nor past what the client said it would wait (the official
  SDKs send ``x-stainless-read-timeout`` / ``x-stainless-timeout``), less a margin for the
  attempt itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from aiwallet.domain.errors import InvalidInput

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504, 529})
# What the official SDKs say they wait, in seconds (the read timeout first: some versions
# send ``x-stainless-timeout: NOT_GIVEN`` beside it)
CLIENT_TIMEOUT_HEADERS = ("x-stainless-read-timeout", "x-stainless-timeout")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3  # attempts in all, the first included (1: never retry)
    total_s: float = 20.0  # no retry starts later than this after the first attempt
    base_s: float = 0.5  # the first backoff's upper bound
    max_backoff_s: float = 8.0  # no backoff's upper bound is larger
    max_retry_after_s: float = 10.0  # a provider's hint longer than this is not waited for
    client_margin_s: float = 1.0  # left to the last attempt within the client's own timeout

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidInput("a retry policy makes at least one attempt (max_attempts >= 1)")
        for name in ("total_s", "base_s", "max_backoff_s", "max_retry_after_s", "client_margin_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise InvalidInput(f"{name} must be a finite number of seconds, at least 0")


NO_RETRIES = RetryPolicy(max_attempts=1)


def retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES


def backoff_bound_s(policy: RetryPolicy, attempt: int) -> float:
    """The upper bound of the jittered wait after attempt number ``attempt`` (1-based)."""
    exponent = min(max(attempt - 1, 0), 62)  # past this the cap applies anyway
    return min(policy.max_backoff_s, policy.base_s * float(2**exponent))


def backoff_s(policy: RetryPolicy, attempt: int, rand: Callable[[], float]) -> float:
    """Full jitter: uniform in ``[0, bound]`` (``rand`` is uniform in ``[0, 1)``)."""
    return backoff_bound_s(policy, attempt) * min(max(rand(), 0.0), 1.0)


def retry_after_s(headers: Mapping[str, str], now: datetime) -> float | None:
    """The wait a provider asked for: ``retry-after-ms`` (OpenAI, Anthropic) first, else
    ``Retry-After`` as seconds or an HTTP date (relative to ``now``); None when it gave none
    that can be read. Never negative."""
    lowered = {k.lower(): v for k, v in headers.items()}
    ms = lowered.get("retry-after-ms")
    if ms is not None:
        try:
            value = float(ms.strip())
        except ValueError:
            value = math.nan
        if math.isfinite(value) and value >= 0:
            return value / 1000
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    text = raw.strip()
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if math.isfinite(seconds):
        return max(seconds, 0.0)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def client_timeout_s(headers: Mapping[str, str]) -> float | None:
    """How long the client said it waits for an answer (None: it did not say, or said
    something that is no number of seconds, as some SDK versions do: ``NOT_GIVEN``)."""
    lowered = {k.lower(): v for k, v in headers.items()}
    for name in CLIENT_TIMEOUT_HEADERS:
        value = lowered.get(name)
        if value is None:
            continue
        try:
            seconds = float(value.strip())
        except ValueError:
            continue
        if math.isfinite(seconds) and seconds > 0:
            return seconds
    return None


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do after a failed attempt: wait ``delay_s`` and try again, or stop (``why``
    says which bound ended the retrying)."""

    retry: bool
    delay_s: float = 0.0
    why: str = ""


def next_delay(
    policy: RetryPolicy,
    *,
    attempt: int,
    elapsed_s: float,
    hint_s: float | None,
    rand: Callable[[], float],
    client_wait_s: float | None = None,
) -> Decision:
    """After attempt number ``attempt`` (1-based) failed retryably, ``elapsed_s`` after the
    first one started: retry after the returned delay, or stop."""
    if attempt >= policy.max_attempts:
        return Decision(False, why=f"{policy.max_attempts} attempts made")
    if hint_s is not None and hint_s > policy.max_retry_after_s:
        return Decision(False, why=f"the provider asked to wait {hint_s:g} s")
    delay = hint_s if hint_s is not None else backoff_s(policy, attempt, rand)
    deadline = policy.total_s
    if client_wait_s is not None:
        deadline = min(deadline, client_wait_s - policy.client_margin_s)
    if elapsed_s + delay > deadline:
        return Decision(False, why="no time left to try again")
    return Decision(True, delay)
