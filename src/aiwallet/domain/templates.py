"""Prompt templates: stored messages with named ``{{variables}}``, rendered by the engine
into a request's messages. A template holds prompts only, never a completion; rendering is
strict (every variable given, nothing else, text only), so a typo is an error, not a prompt
with a hole in it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from aiwallet.domain.errors import InvalidInput

ROLES = frozenset({"system", "user", "assistant", "developer"})
MAX_TEMPLATE_BYTES = 256 * 1024
_VAR_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}")
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


def check_template_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"{str(name)[:70]!r} is not a usable template name; use lower-case letters, "
            "digits, '-', '_' or '.', at most 64 characters"
        )
    return name


def parse_messages(raw: str | bytes) -> list[dict[str, str]]:
    """A template's messages from JSON (``[{"role": "system", "content": "…{{topic}}…"}]``)
    or, for plain text, one user message."""
    if len(raw) > MAX_TEMPLATE_BYTES:
        raise InvalidInput("a template is at most 256 KiB")
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    stripped = text.strip()
    if not stripped:
        raise InvalidInput("the template is empty")
    if not stripped.startswith("["):
        return [{"role": "user", "content": text}]
    try:
        data = json.loads(stripped)
    except ValueError as exc:
        raise InvalidInput(f"the template is not valid JSON ({exc.args[0][:60]})") from None
    if not isinstance(data, list) or not data:
        raise InvalidInput("a JSON template is a list of messages")
    out: list[dict[str, str]] = []
    for i, m in enumerate(data):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            raise InvalidInput(f"message {i} of the template needs exactly 'role' and 'content'")
        if m["role"] not in ROLES or not isinstance(m["content"], str):
            raise InvalidInput(
                f"message {i}: role is one of {', '.join(sorted(ROLES))}, content is text"
            )
        out.append({"role": m["role"], "content": m["content"]})
    return out


def variables_of(messages: list[dict[str, str]]) -> list[str]:
    return sorted({v for m in messages for v in _VAR_RE.findall(m["content"])})


def render(messages: list[dict[str, str]], values: Mapping[str, Any]) -> list[dict[str, str]]:
    """The messages with every ``{{name}}`` replaced by its value (text); a missing, extra or
    non-text value is an InvalidInput naming it."""
    needed = set(variables_of(messages))
    if not isinstance(values, Mapping):
        raise InvalidInput("the template's variables are an object of name → text")
    given = set(values)
    if missing := sorted(needed - given):
        raise InvalidInput(f"the template needs the variable(s) {', '.join(missing)}")
    if extra := sorted(given - needed):
        raise InvalidInput(f"the template has no variable(s) {', '.join(map(str, extra))[:120]}")
    for name in needed:
        if not isinstance(values[name], str):
            raise InvalidInput(f"the variable {name} must be text")
    return [
        {"role": m["role"], "content": _VAR_RE.sub(lambda v: str(values[v.group(1)]), m["content"])}
        for m in messages
    ]
