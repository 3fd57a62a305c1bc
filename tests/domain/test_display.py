"""The display form of untrusted text (``domain/display.py``): nothing that acts instead of
being drawn survives, every escape is visible, and the terminal form reads back to the
input, so two different inputs never print the same."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aiwallet.domain.display import ELLIPSIS, NEWLINE_MARK, display, is_hidden, json_safe

# Every code point, surrogates and controls included.
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=60)
# Text built from the pieces that matter: backslashes, escape look-alikes, controls, bidi.
TRICKY = st.text(
    st.sampled_from(
        [
            "\\",
            "n",
            "x",
            "u",
            "U",
            "0",
            "1",
            "b",
            "e",
            "f",
            "\n",
            "\r",
            "\t",
            "\x1b",
            "\x7f",
            "\x85",
            "\x9b",
            "\u202e",
            "\u2066",
            "\u200b",
            "\u200d",
            "\ufeff",
            "\u2028",
            "\U000e0041",
            "\u0301",
            "a",
            " ",
            "<",
            "&",
            "\ud800",
        ]
    ),
    max_size=40,
)

_ESCAPE = re.compile(r"\\(\\|n|r|t|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def read_back(shown: str) -> str:
    """The reader of the terminal form: what its documentation promises can be undone."""

    def one(m: re.Match[str]) -> str:
        body = m.group(1)
        if body == "\\":
            return "\\"
        if body in ("n", "r", "t"):
            return {"n": "\n", "r": "\r", "t": "\t"}[body]
        return chr(int(body[1:], 16))

    return _ESCAPE.sub(one, shown)


@pytest.mark.parametrize(
    ("raw", "terminal", "screen"),
    [
        ("\x1b[2J\x1b[1;1H", "\\x1b[2J\\x1b[1;1H", "\\x1b[2J\\x1b[1;1H"),
        ("fine\nVerified: Microsoft", "fine\\nVerified: Microsoft", "fine⏎Verified: Microsoft"),
        ("a\r\nb\rc", "a\\r\\nb\\rc", "a⏎b⏎c"),
        ("tab\there", "tab\\there", "tab here"),
        ("\u202eexe.txt", "\\u202eexe.txt", "\\u202eexe.txt"),
        ("zero\u200bwidth\ufeff", "zero\\u200bwidth\\ufeff", "zero\\u200bwidth\\ufeff"),
        ("line\u2028sep", "line\\u2028sep", "line⏎sep"),
        ("del\x7f c1\x9b", "del\\x7f c1\\x9b", "del\\x7f c1\\x9b"),
        ("tag\U000e0041", "tag\\U000e0041", "tag\\U000e0041"),
        ("<b>Program</b>", "<b>Program</b>", "<b>Program</b>"),  # markup is not its business
        ("C:\\Users\\nadia", "C:\\Users\\\\nadia", "C:\\Users\\nadia"),
        ("x\u3164y", "x\\u3164y", "x\\u3164y"),  # U+3164: a letter that draws nothing
        ("naïve café", "naïve café", "naïve café"),
        ("", "", ""),
    ],
)
def test_examples(raw: str, terminal: str, screen: str) -> None:
    assert display(raw, terminal=True) == terminal
    assert display(raw) == screen


def test_none_and_objects() -> None:
    assert display(None) == ""
    assert display(42) == "42"
    assert display(ValueError("bad\nthing")) == "bad⏎thing"


def test_combining_marks_cannot_pile_up() -> None:
    zalgo = "Z" + "\u0301" * 40
    shown = display(zalgo)
    assert shown.startswith("Z\u0301\u0301\u0301\\u0301")
    marks = [ch for ch in shown if unicodedata.combining(ch)]
    assert len(marks) == 3
    # a mark with nothing of the input to sit on is escaped too
    assert display("\u0301x") == "\\u0301x"
    assert display("\n\u0301") == NEWLINE_MARK + "\\u0301"
    assert display("Vie\u0302\u0323t") == "Vie\u0302\u0323t"  # Vietnamese keeps its two


def test_limit_elides_without_cutting_an_escape() -> None:
    text = "abc\x1bdef"
    assert display(text, limit=5) == "abc" + ELLIPSIS  # not "abc\\x" + …
    assert display(text, limit=8) == "abc\\x1b" + ELLIPSIS
    assert display(text, limit=100) == "abc\\x1bdef"
    assert len(display("x" * 1000, limit=300)) == 300


@settings(max_examples=400)
@given(ANY_TEXT | TRICKY)
def test_nothing_hidden_survives(text: str) -> None:
    for terminal in (False, True):
        shown = display(text, terminal=terminal)
        assert not [ch for ch in shown if is_hidden(ch)], (text, shown)
        assert "\n" not in shown and "\x1b" not in shown
        if any(is_hidden(ch) for ch in text):
            assert shown != text  # the escape is visible


@settings(max_examples=600)
@given(ANY_TEXT | TRICKY)
def test_terminal_form_reads_back(text: str) -> None:
    """Injective: what a terminal prints determines the input exactly."""
    assert read_back(display(text, terminal=True)) == text


@given(TRICKY, TRICKY)
def test_different_inputs_print_differently(a: str, b: str) -> None:
    if a != b:
        assert display(a, terminal=True) != display(b, terminal=True)


@settings(max_examples=300)
@given(st.recursive(ANY_TEXT | TRICKY, lambda kids: st.lists(kids, max_size=3), max_leaves=6))
def test_json_stays_the_same_document(data: object) -> None:
    dumped = json.dumps(data, ensure_ascii=False)
    safe = json_safe(dumped)
    assert json.loads(safe) == json.loads(dumped)
    assert not [ch for ch in safe if is_hidden(ch)]
