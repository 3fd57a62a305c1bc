"""Server-sent events, split incrementally and relayed byte for byte.

The splitter never re-encodes an event: what goes to the client is exactly the bytes the
upstream sent, cut at event boundaries (a blank line), so a stream is relayed event by event
and never coalesced beyond one event.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# An event ends at a blank line; the leftmost boundary wins (one regex scan finds it, where
# three finds would each scan to the end of the buffer when their separator is absent).
_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")


@dataclass(slots=True)
class SSEEvent:
    """One event: its raw bytes (terminator included) and its parsed fields."""

    raw: bytes
    event: str | None
    data: str | None


def parse_event(raw: bytes) -> SSEEvent:
    """Parse the ``event:`` and ``data:`` fields of one raw event."""
    event: str | None = None
    data_lines: list[str] = []
    text = raw.decode("utf-8", errors="replace")
    for line in text.splitlines():
        if not line or line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "event":
            event = value
        elif field == "data":
            data_lines.append(value)
    return SSEEvent(raw, event, "\n".join(data_lines) if data_lines else None)


class SSESplitter:
    """Feed bytes as they arrive; get complete raw events back.

    Linear in the bytes fed: each byte is searched for a boundary once (a boundary cut across
    two chunks is found by looking back three bytes), and the buffer is trimmed once per
    chunk, so a hostile upstream's 16 MiB event sent a few bytes at a time, or a chunk of a
    million tiny events, costs no more than its size."""

    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no complete boundary
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        buf = self._buf
        buf += chunk
        events: list[bytes] = []
        start = 0
        # a boundary is at most 4 bytes: look back 3 for one cut across chunks
        for match in _BOUNDARY.finditer(buf, max(0, self._scanned - 3)):
            end = match.end()
            events.append(bytes(buf[start:end]))
            start = end
        if start:
            del buf[:start]
        self._scanned = len(buf)
        if len(buf) > self._max:
            raise ValueError("an upstream stream event exceeded the size limit")
        return iter(events)
