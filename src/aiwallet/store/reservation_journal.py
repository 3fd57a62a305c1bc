"""The reservation journal: reservations granted in memory, on disk before they are used.

An engine that is its SQLite ledger's only writer grants reservations from its in-memory
counters (engine/live_budgets.py) and lets the group-commit writer record them in the
database without waiting for that commit. So that a ``kill -9`` between forwarding a request
and that commit loses nothing, each grant is first appended here, one JSON line per grant, with
a single ``write(2)`` to a file opened ``O_APPEND``: once the call returns, the line is in the
kernel's page cache and outlives the process. That is the durability SQLite's WAL gives a
commit with ``synchronous=NORMAL`` (it survives the process, not a power cut), at the cost of
one system call and no thread hand-off.

The next start replays every line the database lacks (:meth:`Budgets.replay_in
<aiwallet.store.budgets.Budgets.replay_in>`) before it recovers open reservations, so a grant
the dead engine never recorded is billed at its worst case like any other open reservation.
Segments roll over at :data:`SEGMENT_BYTES`; a segment is deleted only once every grant in it
is committed (the writer tells), and the whole journal at a clean stop or after a replay.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
SEGMENT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Granted:
    """A reservation granted by the live counters: what recording or replaying it needs."""

    id: str
    request_id: str
    app_id: int | None
    amount_nano: int
    created_at: datetime
    parts: tuple[tuple[int, str, datetime | None], ...]  # (budget id, counter key, window end)
    provider: str | None = None
    model: str | None = None
    price_row_ref: str | None = None

    def line(self) -> bytes:
        return _line(
            {
                "t": "reserve",
                "id": self.id,
                "request_id": self.request_id,
                "app_id": self.app_id,
                "amount": self.amount_nano,
                "at": self.created_at.isoformat(),
                "parts": [[b, key, _iso(end)] for b, key, end in self.parts],
                "provider": self.provider,
                "model": self.model,
                "ref": self.price_row_ref,
            }
        )

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Granted:
        return cls(
            id=str(d["id"]),
            request_id=str(d["request_id"]),
            app_id=None if d["app_id"] is None else int(d["app_id"]),
            amount_nano=int(d["amount"]),
            created_at=datetime.fromisoformat(d["at"]),
            parts=tuple(
                (int(b), str(k), datetime.fromisoformat(e) if e else None) for b, k, e in d["parts"]
            ),
            provider=d.get("provider"),
            model=d.get("model"),
            price_row_ref=d.get("ref"),
        )


@dataclass(frozen=True, slots=True)
class Grown:
    """A granted reservation grown to ``amount_nano`` in all (an x402 router asked more)."""

    id: str
    amount_nano: int

    def line(self) -> bytes:
        return _line({"t": "grow", "id": self.id, "amount": self.amount_nano})


Entry = Granted | Grown


@functools.lru_cache(maxsize=64)
def _iso(end: datetime | None) -> str | None:
    """A window's end, written once per window rather than once per grant."""
    return None if end is None else end.isoformat()


def _line(d: dict[str, Any]) -> bytes:
    return json.dumps(d, separators=(",", ":")).encode() + b"\n"


class ReservationJournal:
    """Append-only segments ``<base>.<n>`` beside the ledger (one process writes: the one
    holding the ledger's lock)."""

    def __init__(self, base: Path, *, segment_bytes: int | None = None) -> None:
        self.base = base
        self.segment_bytes = segment_bytes or SEGMENT_BYTES
        self._fd: int | None = None
        self._seq = 0
        self._size = 0

    # -- reading (at start, before anything is granted) ----------------------------------
    def segments(self) -> list[Path]:
        found = []
        for p in self.base.parent.glob(self.base.name + ".*"):
            suffix = p.name.rsplit(".", 1)[1]
            if suffix.isdigit():
                found.append((int(suffix), p))
        return [p for _, p in sorted(found)]

    def entries(self) -> Iterator[Entry]:
        """Every complete line of every segment, oldest first. A line cut short (the engine
        died inside the write) was never acted on: the grant's request was not forwarded."""
        for path in self.segments():
            with path.open("rb") as fh:
                for raw in fh:
                    if not raw.endswith(b"\n"):
                        log.warning("%s: a cut-off last line is skipped", path.name)
                        continue
                    try:
                        d = json.loads(raw)
                        yield (
                            Granted.from_json(d)
                            if d["t"] == "reserve"
                            else Grown(str(d["id"]), int(d["amount"]))
                        )
                    except (ValueError, KeyError, TypeError):
                        log.error("%s: an unreadable line is skipped", path.name)

    def remove_all(self) -> None:
        self.close()
        for path in self.segments():
            path.unlink(missing_ok=True)

    # -- writing -----------------------------------------------------------------------
    def open(self) -> None:
        """Start a new segment after the ones on disk (call once they were replayed)."""
        existing = self.segments()
        self._seq = int(existing[-1].name.rsplit(".", 1)[1]) if existing else 0
        self._next_segment()

    def append(self, entry: Entry) -> Path | None:
        """Write ``entry`` (one ``write(2)``); returns the segment it closed, if this
        write rolled over to a new one (delete it once its grants are committed)."""
        assert self._fd is not None, "ReservationJournal.open() first"
        data = entry.line()
        written = os.write(self._fd, data)
        if written != len(data):  # a regular file takes it whole, or raises (disk full)
            raise OSError(f"the reservation journal took {written} of {len(data)} bytes")
        self._size += written
        if self._size < self.segment_bytes:
            return None
        done = self._path(self._seq)
        self._next_segment()
        return done

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _path(self, seq: int) -> Path:
        return self.base.with_name(f"{self.base.name}.{seq}")

    def _next_segment(self) -> None:
        self.close()
        self._seq += 1
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        self._fd = os.open(self._path(self._seq), flags, 0o600)
        self._size = os.fstat(self._fd).st_size
