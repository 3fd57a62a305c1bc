"""The attempts of each request (store side): written with the request's row, read back by
request id. Metadata only, like the request log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from aiwallet.store import schema as t
from aiwallet.store.db import Database


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One attempt at a provider for a request."""

    n: int  # 1-based, in the order they were made
    provider: str
    model: str
    started_at: datetime  # aware UTC
    status: int | None  # the provider's HTTP status; None when no answer came
    error: str | None  # a stable code when it failed (``connection_error``, ``upstream_status``)
    latency_ms: int

    def row(self, request_id: str) -> dict[str, Any]:
        return {
            "request_id": request_id,
            "n": self.n,
            "provider": self.provider,
            "model": self.model,
            "started_at": self.started_at,
            "status": self.status,
            "error": self.error[:64] if self.error else None,
            "latency_ms": self.latency_ms,
        }


_INSERT = insert(t.request_attempts)


def record_attempts_in(
    conn: Connection, request_id: str, attempts: tuple[AttemptRecord, ...]
) -> None:
    """Write ``attempts`` inside the caller's transaction (nothing for none)."""
    if attempts:
        conn.execute(_INSERT, [a.row(request_id) for a in attempts])


def attempts_of(db: Database, request_id: str) -> list[AttemptRecord]:
    """A request's attempts, in order. A request answered at its first attempt has no rows
    of its own (engine/owner.py writes none for it): that attempt is its request row's."""
    c = t.request_attempts.c
    q = select(t.request_attempts).where(c.request_id == request_id).order_by(c.n)
    with db.read() as conn:
        rows = list(conn.execute(q).mappings())
        if not rows:
            r = (
                conn.execute(select(t.requests).where(t.requests.c.id == request_id))
                .mappings()
                .first()
            )
            # answered (a first byte came) and no row: one attempt answered below 400 (a
            # stream cut after it keeps its 200; the request row says how it ended)
            if r is None or r["provider"] is None or r["ttfb_ms"] is None:
                return []
            status = r["status"] if r["status"] < 400 else 200
            return [
                AttemptRecord(
                    1, r["provider"], r["model"] or "", r["ts"], status, None,
                    int(r["ttfb_ms"]),
                )
            ]  # fmt: skip
        return [
            AttemptRecord(
                n=r["n"],
                provider=r["provider"],
                model=r["model"],
                started_at=r["started_at"],
                status=r["status"],
                error=r["error"],
                latency_ms=r["latency_ms"],
            )
            for r in rows
        ]
