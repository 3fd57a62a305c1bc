"""The secret matcher (domain/secretforms.py): every form found, JSON kept valid, no oracle."""

from __future__ import annotations

import base64
import json
import secrets
import string

from hypothesis import given
from hypothesis import strategies as st

from aiwallet.domain.secretforms import (
    REDACTED,
    SecretMatcher,
    bytes_forms,
    public_prefix_len,
    text_forms,
)
from aiwallet.engine.scrub import Scrubber

ALPHABET = string.ascii_letters + string.digits


def make_key(prefix: str = "sk-proj-", n: int = 48) -> str:
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(n))


def test_every_form_of_a_key_is_redacted():
    key = make_key()
    m = SecretMatcher([("k", key)])
    forms = [
        key,
        f"Authorization: Bearer {key}",
        "".join(f"\\u{ord(c):04x}" for c in key),  # JSON, every character escaped
        "".join(f"\\u{ord(c):04X}" if i % 2 else c for i, c in enumerate(key)),  # mixed
        "".join(f"%{b:02x}" for b in key.encode()),  # URL-encoded
        key[:30] + "*" * 10 + key[-20:],  # masked in the middle: both ends are long
    ]
    for text in forms:
        out, hits = m.redact(text.encode())
        assert key.encode() not in out and hits and REDACTED.encode() in out, text


def test_a_short_hint_and_the_public_prefix_are_not_secrets():
    key = make_key()
    m = SecretMatcher([("k", key)])
    for text in (f"{key[:8]}****{key[-4:]}", "sk-proj-", key[: 8 + 15], "hello world"):
        assert m.redact(text.encode()) == (text.encode(), [])
    assert public_prefix_len(key) == len("sk-proj-")
    assert public_prefix_len("sk-ant-api03-" + "a" * 40) == len("sk-ant-api03-")
    assert public_prefix_len("abc-" + "a" * 10) == 0  # too little after it: all is secret


def test_redaction_is_no_oracle_for_guessing_a_key_character_by_character():
    """An app that gets its own text echoed cannot learn the next character of a key from
    whether (or where) its guess was redacted: fewer than 16 body characters are never
    redacted, and once 16 are, it already had them."""
    key = make_key("sk-ant-api03-")
    m = SecretMatcher([("k", key)])
    prefix = key[: public_prefix_len(key)]
    known = key[len(prefix) : len(prefix) + 15]  # 15 right characters: still nothing shown
    for c in ALPHABET:
        guess = (prefix + known + c).encode()
        out, hits = m.redact(guess)
        if c == key[len(prefix) + 15]:
            assert hits  # 16 right characters: it had them already
        else:
            assert out == guess and not hits


def test_hex_and_binary_keys_are_found_in_their_other_encodings():
    raw = secrets.token_bytes(32)
    forms = text_forms(raw.hex())
    assert forms[0] == raw.hex() and base64.b64encode(raw).decode() in forms
    assert bytes_forms(raw)[2] == base64.urlsafe_b64encode(raw).decode().rstrip("=")
    s = Scrubber([("signing key", raw.hex())])
    for form in bytes_forms(raw):
        assert s.scrub_bytes(f'{{"x":"{form}"}}'.encode()) == b'{"x":"[redacted]"}'


def test_headers_holding_a_secret_are_dropped_whole():
    key = make_key()
    s = Scrubber([("the key of provider 'openai'", key)])
    kept, labels = s.scrub_headers(
        {
            "x-request-id": f"req_{key}",
            "x-ratelimit-limit-requests": "100",
            f"x-ratelimit-{key}": "1",
        }
    )
    assert kept == {"x-ratelimit-limit-requests": "100"}
    assert labels == {"the key of provider 'openai'"}


def test_clean_data_is_returned_as_the_same_object():
    s = Scrubber([("k", make_key())])
    data = b'{"choices":[{"delta":{"content":"hello 50% \\u00e9"}}]}'
    assert s.scrub_bytes(data) is data


@given(
    before=st.text(max_size=40),
    after=st.text(max_size=40),
    escape=st.sampled_from(["none", "json", "mixed"]),
    key=st.text(alphabet=ALPHABET + "-_", min_size=24, max_size=80),
)
def test_a_json_document_stays_valid_and_loses_the_key(before, after, escape, key):
    m = SecretMatcher([("k", key)])
    if escape == "json":
        written = "".join(f"\\u{ord(c):04x}" for c in key)
    elif escape == "mixed":
        written = "".join(f"\\u{ord(c):04x}" if i % 3 == 0 else c for i, c in enumerate(key))
    else:
        written = key
    doc = json.dumps({"m": before})[:-2] + written + json.dumps(after)[1:-1] + '"}'
    out, hits = m.redact(doc.encode())
    assert hits
    decoded = json.loads(out)["m"]  # still JSON
    assert key not in decoded


def test_a_huge_event_is_scanned_in_linear_time_by_count_of_finds():
    """One find per 8-byte block of each key: the work grows with the data, not its square
    (no wall clock here: the figures are in bench/scrub.py)."""
    key = make_key()
    m = SecretMatcher([("k", key)])
    big = b"data: " + b"x" * (4 * 1024 * 1024) + key.encode() + b"\n\n"
    out, hits = m.redact(big)
    assert len(hits) == 1 and out.endswith(b"[redacted]\n\n")
    assert len(m._needles) == len(key[8:]) // 8  # blocks of the body only


def test_without_the_multi_pattern_search_the_fallback_finds_the_same(monkeypatch):
    from aiwallet.domain import secretforms

    key = make_key()
    data = f'{{"a":"{key[:40]}***","b":"x {key} y","c":"{key[-30:]}"}}'.encode()
    fast = SecretMatcher([("k", key)]).redact(data)
    monkeypatch.setattr(secretforms, "MultiSearch", None)
    slow = SecretMatcher([("k", key)]).redact(data)
    assert fast == slow and len(fast[1]) == 3 and key[10:30].encode() not in fast[0]
