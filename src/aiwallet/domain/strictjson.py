"""Request bodies parsed once, strictly: what the wallet prices and scopes must be exactly what
the provider will run, so whatever two JSON parsers could read differently is refused.

Refused: bytes that are not UTF-8, a byte-order mark, duplicate keys in an object (parsers
disagree on which one wins), ``NaN`` / ``Infinity`` (not JSON; some parsers take them, some do
not), text with an unpaired surrogate such as ``"\\ud800"`` (some parsers refuse it, some
replace it), and nesting too deep to parse.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aiwallet.domain.errors import InvalidInput

# An escaped surrogate anywhere: only then is the slower exact check needed.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF][0-9a-fA-F]{2}")


class AmbiguousJSON(InvalidInput):
    """The body is JSON that parsers may read differently."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise AmbiguousJSON(
            f"the request body names {dup!r} twice in one object; send each field once"
        )
    return obj


def _no_constant(name: str) -> Any:
    raise AmbiguousJSON(f"the request body contains {name}, which is not JSON; send a number")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


# one decoder for every body (``json.loads`` with hooks builds a new one per call)
_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_no_constant)


def parse_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or :class:`InvalidInput` saying what is wrong with it."""
    if raw.startswith(b"\xef\xbb\xbf"):
        raise AmbiguousJSON("the request body starts with a byte-order mark; send plain UTF-8")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the request body is not valid UTF-8 text") from None
    try:
        body = _DECODER.decode(text)
    except RecursionError:
        raise InvalidInput("the request body is nested too deeply") from None
    except AmbiguousJSON:
        raise
    except ValueError:
        raise InvalidInput("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidInput("the request body must be a JSON object")
    if _SURROGATE_ESCAPE.search(raw) is not None and _has_lone_surrogate(body):
        raise AmbiguousJSON(
            "the request body holds text with an unpaired surrogate (such as \\ud800), which "
            "providers read differently; send valid Unicode"
        )
    return body
