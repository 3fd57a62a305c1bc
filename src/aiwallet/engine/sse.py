"""Server-sent events, split incrementally and relayed byte for byte.

The splitter never re-encodes an event: what goes to the client is exactly the bytes the
upstream sent, cut at event boundaries (a blank line), so a stream is relayed event by event
and never coalesced beyond one event.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

_BOUNDARIES = (b"\r\n\r\n", b"\n\n", b"\r\r")


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
    """Feed bytes as they arrive; get complete raw events back."""

    def __init__(self, max_event_bytes: int = 16 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> Iterator[bytes]:
        self._buf += chunk
        while True:
            cut = -1
            width = 0
            for sep in _BOUNDARIES:
                pos = self._buf.find(sep)
                if pos != -1 and (cut == -1 or pos < cut):
                    cut, width = pos, len(sep)
            if cut == -1:
                if len(self._buf) > self._max:
                    raise ValueError("an upstream stream event exceeded the size limit")
                return
            end = cut + width
            raw = bytes(self._buf[:end])
            del self._buf[:end]
            yield raw
