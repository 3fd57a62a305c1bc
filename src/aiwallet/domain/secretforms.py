"""The forms a secret takes in text, and finding (and redacting) them in bytes.

One notion of "a secret in some text", shared by the log filter (``logsetup``) and the
engine's scrubber of everything relayed to apps (``engine/scrub.py``). A secret is found:

- as is, and as any contiguous fragment of it that holds at least :data:`MIN_BODY_CHARS`
  characters of its body (the part after a public-looking prefix such as ``sk-proj-`` or
  ``sk-ant-api03-``): a provider that masks the middle of a key but shows 20 characters of
  each end still gives away most of it. A fragment shorter than that (``sk-proj-…abcd``, the
  hint a provider's "incorrect API key" message shows) is left alone. Requiring that many
  characters of the random body also means a caller that gets its own text echoed back
  cannot use the redaction as an oracle to guess a key character by character (it would
  have to guess 16 random characters at once);
- JSON-escaped (any of its characters written ``\\u00XX``, ``/`` as ``\\/``) and URL-encoded
  (any character as ``%XX``), mixed freely, when the whole secret is there.

Derived text forms (:func:`text_forms`): a hex secret of 16+ bytes is also looked for in
base64 and base64url, and :func:`bytes_forms` gives the hex and base64 forms of a binary key.

The search is linear in the data: one Aho-Corasick pass (``ahocorasick_rs``, SIMD; a
``bytes.find`` per block where it is missing) for the 8-byte blocks of every secret's body
(any 16-character fragment contains a whole block), then each hit is extended byte by byte.
Escaped forms: when the data holds an ASCII-range escape at all (``\\u00XX`` below 0x80,
``%XX``, ``\\/``), a copy with those escapes decoded gets the same pass, and only if it
finds a block does one compiled regex locate the escaped secrets in the original. What is cut
out is replaced by :data:`REDACTED`, which keeps a JSON string valid (a span never starts
inside a backslash escape).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

try:  # a C-speed multi-pattern search; the domain still works (slower) without it
    from ahocorasick_rs import BytesAhoCorasick as _AhoCorasick

    MultiSearch: Any = _AhoCorasick
except ImportError:  # pragma: no cover - a dependency; the fallback is tested directly
    MultiSearch = None

REDACTED = "[redacted]"
REDACTED_BYTES = REDACTED.encode()
MIN_SECRET_LEN = 8  # shorter strings would redact ordinary words
MIN_BODY_CHARS = 16  # a fragment with this many characters of a secret's body is the secret
BLOCK = MIN_BODY_CHARS // 2  # any run of 2*BLOCK-1 characters holds a whole aligned block
MAX_PREFIX = 20  # a public prefix ends at the last '-' or '_' within these characters
_ESCAPE_MARKERS = (b"\\u00", b"%", b"\\/")
_ASCII_ESCAPE = re.compile(rb"\\u00([0-7][0-9a-fA-F])|%([0-7][0-9a-fA-F])|\\(/)")


def _unescape(m: re.Match[bytes]) -> bytes:
    if m.group(3):
        return b"/"
    return bytes([int(m.group(1) or m.group(2), 16)])


_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){16,}")


def bytes_forms(secret: bytes) -> list[str]:
    """The text forms a binary key may be written in: hex, base64 and base64url."""
    return [
        secret.hex(),
        base64.b64encode(secret).decode(),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
    ]


def text_forms(secret: str) -> list[str]:
    """A secret as stored, plus its other encodings when it is the hex of a binary key."""
    forms = [secret]
    if _HEX.fullmatch(secret):
        forms += bytes_forms(binascii.unhexlify(secret))[1:]
    return forms


def public_prefix_len(secret: str) -> int:
    """How much of ``secret`` reads as a kind marker (``sk-proj-``), not as its secret body."""
    head = secret[:MAX_PREFIX]
    cut = max(head.rfind("-"), head.rfind("_"))
    return cut + 1 if cut >= 0 and len(secret) - cut - 1 >= MIN_BODY_CHARS else 0


def _char_pattern(ch: str) -> bytes:
    """One character of a secret: as is, ``\\u00XX`` (JSON) or ``%XX`` (URL), either case."""
    literal = re.escape(ch.encode("utf-8"))
    code = ord(ch)
    if code > 0x7F:
        return literal
    hex2 = f"{code:02x}"
    cls = b"".join(f"[{d}{d.upper()}]".encode() if d.isalpha() else d.encode() for d in hex2)
    alternatives = [literal, rb"\\u00" + cls, b"%" + cls]
    if ch == "/":
        alternatives.append(rb"\\/")
    return b"(?:" + b"|".join(alternatives) + b")"


@dataclass(frozen=True, slots=True)
class Hit:
    start: int
    end: int
    label: str


class SecretMatcher:
    """An immutable set of secrets, each with a label that can be shown (never the secret)."""

    def __init__(self, secrets: Iterable[tuple[str, str]] = ()) -> None:
        values: dict[bytes, str] = {}
        for label, secret in secrets:
            if len(secret) >= MIN_SECRET_LEN:
                values.setdefault(secret.encode("utf-8", "surrogatepass"), label)
        self._secrets = list(values.items())
        self._prefix = [public_prefix_len(s.decode("utf-8", "replace")) for s, _ in self._secrets]
        needles: dict[bytes, list[tuple[int, int]]] = {}
        for idx, (value, _) in enumerate(self._secrets):
            start = self._prefix[idx]
            if len(value) - start < MIN_BODY_CHARS:  # short: only the whole secret counts
                needles.setdefault(value, []).append((idx, 0))
                continue
            for off in range(start, len(value) - BLOCK + 1, BLOCK):
                needles.setdefault(value[off : off + BLOCK], []).append((idx, off))
        self._needles = list(needles.items())
        self._escaped: re.Pattern[bytes] | None = None  # compiled when first needed
        self._ac: Any = (
            MultiSearch([n for n, _ in self._needles])
            if MultiSearch is not None and self._needles
            else None
        )

    def _blocks(self, data: bytes) -> list[tuple[int, int]]:
        """(needle index, position) of every block of a secret in ``data``."""
        if self._ac is not None:
            return [(i, s) for i, s, _ in self._ac.find_matches_as_indexes(data, overlapping=True)]
        found = []
        for i, (needle, _) in enumerate(self._needles):
            pos = data.find(needle)
            while pos != -1:
                found.append((i, pos))
                pos = data.find(needle, pos + 1)
        return found

    def _escaped_pattern(self) -> re.Pattern[bytes]:
        if self._escaped is None:
            groups = [
                b"(?P<s%d>" % idx
                + b"".join(_char_pattern(ch) for ch in secret.decode("utf-8", "replace"))
                + b")"
                for idx, (secret, _) in enumerate(self._secrets)
            ]
            self._escaped = re.compile(b"|".join(groups))
        return self._escaped

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def __len__(self) -> int:
        return len(self._secrets)

    @property
    def labels(self) -> list[str]:
        return [label for _, label in self._secrets]

    def find(self, data: bytes) -> list[Hit]:
        """Every span of ``data`` that is a secret (or a long fragment of one), merged."""
        if not self._secrets:
            return []
        spans: list[Hit] = []
        covered = -1  # blocks inside a span already found add nothing
        for i, pos in sorted(self._blocks(data), key=lambda b: b[1]):
            if pos < covered:
                continue
            needle, owners = self._needles[i]
            for idx, off in owners:
                hit = self._extend(data, pos, idx, off, len(needle))
                if hit is not None:
                    spans.append(hit)
                    covered = max(covered, hit.end)
        if any(m in data for m in _ESCAPE_MARKERS) and self._blocks(
            _ASCII_ESCAPE.sub(_unescape, data)
        ):
            for m in self._escaped_pattern().finditer(data):
                idx = int((m.lastgroup or "s0")[1:])
                spans.append(Hit(m.start(), m.end(), self._secrets[idx][1]))
        return _merge(data, spans)

    def _extend(self, data: bytes, pos: int, idx: int, off: int, width: int) -> Hit | None:
        secret, label = self._secrets[idx]
        a, b = pos, off
        while a > 0 and b > 0 and data[a - 1] == secret[b - 1]:
            a, b = a - 1, b - 1
        c, d = pos + width, off + width
        n, m = len(data), len(secret)
        while c < n and d < m and data[c] == secret[d]:
            c, d = c + 1, d + 1
        whole = b == 0 and d == m
        if not whole and d - max(b, self._prefix[idx]) < MIN_BODY_CHARS:
            return None
        return Hit(a, c, label)

    def redact(self, data: bytes) -> tuple[bytes, list[Hit]]:
        """``data`` with every hit replaced by :data:`REDACTED` (the same object when there
        is none), and the hits."""
        hits = self.find(data)
        if not hits:
            return data, hits
        out = bytearray()
        last = 0
        for h in hits:
            out += data[last : h.start]
            out += REDACTED_BYTES
            last = h.end
        out += data[last:]
        return bytes(out), hits

    def redact_text(self, text: str) -> str:
        if not self._secrets:
            return text
        data = text.encode("utf-8", "surrogatepass")
        out, hits = self.redact(data)
        return out.decode("utf-8", "replace") if hits else text


def _merge(data: bytes, spans: list[Hit]) -> list[Hit]:
    """Sorted, overlapping spans joined; a span never starts inside a backslash escape or a
    UTF-8 sequence, so what remains is still valid JSON text."""
    if not spans:
        return spans
    out: list[Hit] = []
    for h in sorted(spans, key=lambda s: (s.start, -s.end)):
        start, end = _snap(data, h.start, h.end)
        if out and start <= out[-1].end:
            prev = out[-1]
            if end > prev.end:
                out[-1] = Hit(prev.start, end, prev.label)
            continue
        out.append(Hit(start, end, h.label))
    return out


def _escapes_at(data: bytes, pos: int) -> bool:
    """The backslash at ``pos`` starts an escape (it is not itself escaped)."""
    n = 0
    while pos - n > 0 and data[pos - n - 1] == 0x5C:
        n += 1
    return n % 2 == 0


def _snap(data: bytes, start: int, end: int) -> tuple[int, int]:
    # a span never starts inside an escape: ``\n``, or the hex digits of ``\u00XX``
    for back in range(1, 6):
        at = start - back
        if at < 0:
            break
        if data[at] == 0x5C and _escapes_at(data, at):  # a backslash that escapes
            if back == 1 or (data[at + 1 : at + 2] == b"u" and back <= 5):
                start = at  # the whole escape goes, not only the characters it escapes
            break
    while start > 0 and data[start] & 0xC0 == 0x80:
        start -= 1
    while end < len(data) and data[end] & 0xC0 == 0x80:
        end += 1
    return start, end
