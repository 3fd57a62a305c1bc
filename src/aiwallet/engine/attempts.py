"""Sending one request to one provider: its breaker first, then attempts, retried while
nothing has reached the client.

:meth:`Sender.send` is called once per route (by ``Proxy._send``), before any byte of the
answer is relayed, and returns the provider's last answer (its headers read, its body not):
the caller relays that, or turns it into the error the app gets, as it would a single
attempt's. It never sees a later stage: a stream that breaks after its first relayed event is
not retried, because nothing here runs by then. The request's reservation was taken before
the first attempt and is held across them all.

- The provider's breaker (engine/health.py) is asked first: open, it refuses at once with
  ``upstream_unavailable`` (503, ``Retry-After`` = the time to its probe).
- Each attempt's outcome is told to the breaker (5xx, 529, timeouts and connection errors
  count as failures; a 429 or another 4xx does not) and appended to ``call.attempts``, which
  the request's owner writes with its row (engine/owner.py).
- A retryable outcome (upstreams/retry.py) is tried again on the same provider after the
  policy's delay, unless the attempt or time bound is reached, the breaker opened meanwhile,
  or the request carries an x402 payment (a payment is never signed twice).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp

from aiwallet.engine.call import Call
from aiwallet.engine.errors import ProxyError
from aiwallet.engine.health import ProviderHealth
from aiwallet.store.attempts import AttemptRecord
from aiwallet.upstreams.breaker import BreakerPolicy, Outcome, Refused, State, Ticket
from aiwallet.upstreams.retry import (
    RetryPolicy,
    client_timeout_s,
    next_delay,
    retry_after_s,
    retryable_status,
)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Resilience:
    """How the engine retries and when it stops sending to a provider; the clock (monotonic
    seconds), the sleep and the random source are injected so that tests need not wait."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    clock: Callable[[], float] = time.monotonic
    sleep: Sleep = asyncio.sleep
    rand: Callable[[], float] = random.random


def outcome_of(status: int) -> Outcome:
    """What an answer with ``status`` tells the breaker about the provider."""
    if status >= 500:  # 529 (Anthropic overloaded) included
        return Outcome.FAILURE
    if status >= 400:  # about the request (or a rate limit): the provider is up
        return Outcome.NEUTRAL
    return Outcome.SUCCESS


def _paused(name: str, refused: Refused) -> ProxyError:
    wait = max(1, math.ceil(refused.retry_in_s))
    return ProxyError(
        "upstream_unavailable",
        f"provider {name!r} is paused after repeated failures; the wallet tries it again in "
        f"{wait} s (then one request at a time until it answers)",
        status=503,
        retry_after=wait,
    )


class Sender:
    def __init__(
        self, session: aiohttp.ClientSession, health: ProviderHealth, config: Resilience
    ) -> None:
        self.session = session
        self.health = health
        self.config = config

    async def send(
        self,
        call: Call,
        url: str,
        payload: bytes,
        headers: dict[str, str],
        *,
        retry: bool = True,
    ) -> aiohttp.ClientResponse:
        """The provider's last answer to ``call``. ``retry=False``: one attempt, and no
        breaker refusal (the x402 paid resend: its payment is signed already)."""
        assert call.route is not None
        name = call.route.provider.name
        breaker = self.health.breaker(name)
        cfg = self.config
        policy = cfg.retry if retry else None
        first = cfg.clock()
        client_wait = client_timeout_s(call.request.headers)
        made = 0
        while True:
            if retry:
                verdict = breaker.admit()
                if isinstance(verdict, Refused):
                    raise _paused(name, verdict)
                ticket = verdict
            else:
                ticket = Ticket(False, -1)  # told, never refused (see Breaker.record)
            made += 1
            up = await self._attempt(call, url, payload, headers, ticket)
            if isinstance(up, ProxyError):  # a connection error: nothing came back
                hint = None
            else:
                if policy is None or not retryable_status(up.status):
                    return up
                hint = retry_after_s(up.headers, datetime.now(UTC))
            if policy is None or call.payment is not None or breaker.state is not State.CLOSED:
                return _answer(up)
            decision = next_delay(
                policy,
                attempt=made,
                elapsed_s=cfg.clock() - first,
                hint_s=hint,
                rand=cfg.rand,
                client_wait_s=client_wait,
            )
            if not decision.retry:
                return _answer(up)
            if not isinstance(up, ProxyError):
                up.release()  # its body is not needed: the next attempt answers
            await cfg.sleep(decision.delay_s)

    async def _attempt(
        self,
        call: Call,
        url: str,
        payload: bytes,
        headers: dict[str, str],
        ticket: Ticket,
    ) -> aiohttp.ClientResponse | ProxyError:
        """One attempt, recorded: the answer, or the error a connection failure is (a timeout
        is raised at once: it is not retried)."""
        assert call.route is not None
        route = call.route
        name = route.provider.name
        breaker = self.health.breaker(name)
        started_at = datetime.now(UTC)
        t0 = time.monotonic()
        n = len(call.attempts) + 1

        def note(status: int | None, error: str | None) -> None:
            call.attempts.append(
                AttemptRecord(
                    n,
                    name,
                    route.upstream_model,
                    started_at,
                    status,
                    error,
                    int((time.monotonic() - t0) * 1000),
                )
            )

        call.sent = True
        try:
            up = await self.session.post(url, data=payload, headers=headers)
        except TimeoutError:  # aiohttp's ServerTimeoutError is one too
            breaker.record(ticket, Outcome.FAILURE)
            note(None, "upstream_timeout")
            raise ProxyError(
                "upstream_timeout", f"provider {name!r} did not answer in time"
            ) from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            breaker.record(ticket, Outcome.FAILURE)
            note(None, "connection_error")
            return ProxyError(
                "upstream_unavailable",
                f"cannot reach provider {name!r} ({type(exc).__name__}); try again later",
            )
        except BaseException:  # cancelled (the client left): nothing to tell the breaker
            breaker.abandon(ticket)
            note(None, "client_closed")
            raise
        breaker.record(ticket, outcome_of(up.status))
        note(up.status, None if up.status < 400 else "upstream_status")
        return up


def _answer(last: aiohttp.ClientResponse | ProxyError) -> aiohttp.ClientResponse:
    """The last attempt's answer, as the caller handles a single attempt's."""
    if isinstance(last, ProxyError):
        raise last
    return last
