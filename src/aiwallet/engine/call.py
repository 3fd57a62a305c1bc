"""One proxied request as it moves through the pipeline (what is known about it so far)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from aiwallet.domain.bounds import Bound
from aiwallet.engine.endpoints import Endpoint
from aiwallet.engine.errors import Api
from aiwallet.engine.meter import StreamMeter
from aiwallet.engine.routing import Route
from aiwallet.engine.state import AppContext
from aiwallet.store.attempts import AttemptRecord
from aiwallet.store.records import Reservation

if TYPE_CHECKING:
    from aiwallet.engine.payflow import PaidCall
    from aiwallet.engine.translate import Translation


def new_request_id() -> str:
    """``awreq_`` + 32 hex digits: 128 random bits, as uuid4 gave, at a sixth of its cost."""
    return "awreq_" + os.urandom(16).hex()


@dataclass
class Call:
    request: web.Request
    endpoint: Endpoint
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.monotonic)
    ts: datetime = field(default_factory=lambda: datetime.now(UTC))
    ctx: AppContext | None = None
    foreign_key: bool = False  # it sent a bearer that is not a wallet key (sk-..., DUMMY_KEY)
    route: Route | None = None
    # the routes to try in order (a user's route, or every provider serving the model); the
    # bound of each, and what failed before the one that served it
    candidates: list[Route] = field(default_factory=list)
    bounds: list[Bound | None] = field(default_factory=list)  # None: another wire format's
    # the request as the client sent it (templates rendered), to prepare a fallback of the
    # other wire format from: translated again, or sent as it is
    client_endpoint: Endpoint | None = None
    client_body: dict[str, Any] | None = None
    fallbacks: list[str] = field(default_factory=list)
    downgraded_from: str | None = None  # the model asked for, when a cheaper one served it
    fallback_left: bool = False  # another route waits if this one fails before answering
    body: dict[str, Any] | None = None
    raw: bytes = b""  # the body as the client sent it: forwarded as is unless policy changed it
    prompt_bytes: int = 0
    bound: Bound | None = None  # the most the provider may bill for it (domain/bounds.py)
    capped: dict[str, int] = field(default_factory=dict)  # fields the wallet set to bound it
    rewrite: bool = False  # policy changed the body: forward it re-encoded
    stream: bool = False
    reservation: Reservation | None = None
    clamped_to: int | None = None
    sent: bool = False  # handed to the upstream: from here on the provider may bill it
    ttfb_ms: int | None = None
    meter: StreamMeter | None = None  # a stream's meter, once relaying began
    rl_tokens: int | None = None  # tokens taken from the app's rate limit (None: none taken)
    echoed: set[str] = field(default_factory=set)  # secrets the provider echoed (scrubbed)
    payment: PaidCall | None = None  # the x402 payment made for it (engine/payflow.py)
    # every attempt at a provider (retries, fallbacks), written with its row (engine/owner.py)
    attempts: list[AttemptRecord] = field(default_factory=list)
    # set when the model speaks the other wire format (engine/translate.py): ``endpoint`` is
    # then the provider's, and the translation keeps the client's
    translation: Translation | None = None

    @property
    def api(self) -> Api:
        """The shape of the client's answers and errors."""
        if self.translation is not None:
            return self.translation.client.api
        return self.endpoint.api

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)
