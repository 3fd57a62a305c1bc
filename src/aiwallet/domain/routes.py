"""Routes: a user-named chain of ``provider/model`` targets, tried in order when one fails
before any byte reached the app. A route never widens a grant: each target must be allowed
by the app's scopes on its own."""

from __future__ import annotations

import re
from collections.abc import Iterable

from aiwallet.domain.errors import InvalidInput

MAX_TARGETS = 8
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_TARGET_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,47}/\S{1,200}")


def check_route_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"{str(name)[:70]!r} is not a usable route name; use lower-case letters, digits, "
            "'-', '_' or '.', at most 64 characters, without '/'"
        )
    return name


def parse_targets(text: str | Iterable[str]) -> list[str]:
    """``anthropic/claude-sonnet-4-5,openai/gpt-4.1``: each a provider name and the model it
    serves; at least one, at most eight, none twice."""
    items = text.split(",") if isinstance(text, str) else list(text)
    targets = [t.strip() for t in items if t and t.strip()]
    if not targets:
        raise InvalidInput("a route needs at least one target: provider/model")
    if len(targets) > MAX_TARGETS:
        raise InvalidInput(f"a route has at most {MAX_TARGETS} targets")
    for target in targets:
        if not _TARGET_RE.fullmatch(target):
            raise InvalidInput(
                f"{target[:80]!r} is not a target; write the provider's name, '/', and the "
                "model it serves (openai/gpt-4.1, openrouter/anthropic/claude-sonnet-4.5)"
            )
    if len(set(targets)) != len(targets):
        raise InvalidInput("a route lists a target twice")
    return targets
