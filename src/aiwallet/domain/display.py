"""The display form of untrusted text: what a caller or a provider wrote (an app name, a
purpose, a command line, a path, a model name, an error message) made safe to show, on a
screen or in a terminal.

Untrusted text may carry characters that change what is drawn around it rather than being
drawn: line breaks (fake rows), ESC and the other C0/C1 controls (terminal sequences that move
the cursor, recolour or erase), DEL, bidi overrides and isolates (text shown reversed),
zero-width and other format characters (invisible differences, ASCII smuggling in tag
characters), and long runs of combining marks (glyphs stacked over the rows above and below).
``display`` replaces each with a visible escape, so nothing of the input is hidden and nothing
of it acts:

- ``\\x1b``, ``\\x85`` (C0, DEL, C1), ``\\u202e`` (BMP format characters), ``\\U000e0041``
  (beyond the BMP), ``\\n``, ``\\r``, ``\\t``; a combining mark after the third in a row, or
  at the start, or after an escape, is escaped too.
- For terminals (``terminal=True``) the form can be read back: a backslash that would
  otherwise read as the start of one of these escapes is written ``\\\\``, so two different
  inputs never print the same.
- On screen (the default) a line break is shown as ``⏎`` and a tab as a space; a backslash is
  left alone (``C:\\Users\\nadia`` stays readable).

``limit`` elides the display form to that many characters (the last one ``…``) without
cutting an escape in half. Widgets still render the result as plain text: the display form
says nothing about markup (``<b>`` stays ``<b>``).
"""

from __future__ import annotations

import re
import unicodedata

ELLIPSIS = "…"
NEWLINE_MARK = "⏎"
MAX_COMBINING = 3  # marks in a row kept as they are (Vietnamese needs 2, most scripts fewer)

_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
# Letters that draw nothing (Hangul fillers): names made of them look empty.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x85\u2028\u2029")
# What a backslash followed by these would read as: one of the escapes above, or "\\".
_ESCAPE_AHEAD = re.compile(r"\\|[nrt]|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8}")


def is_hidden(ch: str) -> bool:
    """A character ``display`` escapes: controls, format (bidi, zero-width, tags), line and
    paragraph separators, lone surrogates, blank letters."""
    return unicodedata.category(ch) in _HIDDEN_CATEGORIES or ch in _BLANK_LETTERS


def escape_char(ch: str) -> str:
    """``\\n``, ``\\x1b``, ``\\u202e``, ``\\U000e0041``."""
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def display(value: object, *, terminal: bool = False, limit: int | None = None) -> str:
    """The display form of ``value`` (``str(value)``; ``None`` is ``""``): one line, no
    character that acts instead of being drawn. See the module's text for the rules."""
    text = "" if value is None else str(value)
    pieces: list[str] = []
    literal: list[bool] = []  # the piece is the input's own character
    combining = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        i += 1
        if not terminal and ch in _LINE_BREAKS:
            if ch == "\r" and i < n and text[i] == "\n":
                i += 1
            pieces.append(NEWLINE_MARK)
            literal.append(False)
            combining = 0
            continue
        if not terminal and ch == "\t":
            pieces.append(" ")
            literal.append(False)
            combining = 0
            continue
        if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me"):
            combining += 1
            # past the third in a row, or with nothing of the input's own to sit on (it
            # would join the text around the field, or one of the escapes)
            if combining > MAX_COMBINING or not literal or not literal[-1]:
                pieces.append(escape_char(ch))
                literal.append(False)
                continue
        else:
            combining = 0
        if is_hidden(ch):
            pieces.append(escape_char(ch))
            literal.append(False)
        else:
            pieces.append(ch)
            literal.append(True)
    if terminal:
        for k, piece in enumerate(pieces):
            if piece == "\\" and literal[k]:
                ahead = "".join(pieces[k + 1 : k + 10])
                if _ESCAPE_AHEAD.match(ahead):
                    pieces[k] = "\\\\"
    return _elide(pieces, limit)


def _elide(pieces: list[str], limit: int | None) -> str:
    if limit is None:
        return "".join(pieces)
    total = sum(len(p) for p in pieces)
    if total <= limit:
        return "".join(pieces)
    kept: list[str] = []
    used = 0
    for piece in pieces:
        if used + len(piece) > max(limit - 1, 0):
            break
        kept.append(piece)
        used += len(piece)
    return "".join(kept) + ELLIPSIS


def json_safe(dumped: str) -> str:
    """JSON text (``json.dumps(..., ensure_ascii=False)``) with every hidden character that
    json leaves raw (DEL, C1, bidi, zero-width, separators) written as a ``\\uXXXX`` escape:
    the same document once parsed, and nothing in it acts on a terminal. Outside strings,
    JSON text is ASCII, so every such character is inside a string."""
    out: list[str] = []
    for ch in dumped:
        if ch.isascii() and ch != "\x7f":
            out.append(ch)
        elif is_hidden(ch):
            code = ord(ch)
            if code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(ch)
    return "".join(out)
