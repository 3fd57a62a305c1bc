"""Deterministic token counting: words, with a fixed overhead per message.

* a text's tokens = the number of whitespace-separated words in it;
* OpenAI chat prompt = Σ (words + 4) over messages + 3;
* Anthropic input = Σ (words + 3) over messages + words of ``system`` + 1;
* Responses input = words of a string input, or the chat rule over a message list;
* the reply is ``reply_tokens`` words (``w0 w1 …``), at most the request's max tokens.
"""

from __future__ import annotations

from typing import Any


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict):
                parts.append(str(p.get("text") or p.get("input_text") or ""))
            elif isinstance(p, str):
                parts.append(p)
        return " ".join(parts)
    return ""


def words(text: str) -> int:
    return len(text.split())


def openai_chat_prompt(body: dict[str, Any]) -> int:
    return sum(words(text_of(m.get("content"))) + 4 for m in body.get("messages", [])) + 3


def anthropic_input(body: dict[str, Any]) -> int:
    msgs = sum(words(text_of(m.get("content"))) + 3 for m in body.get("messages", []))
    return msgs + words(text_of(body.get("system"))) + 1


def responses_input(body: dict[str, Any]) -> int:
    inp = body.get("input")
    if isinstance(inp, str):
        return words(inp) + 3
    if isinstance(inp, list):
        return sum(words(text_of(m.get("content"))) + 4 for m in inp if isinstance(m, dict)) + 3
    return 3


def reply_count(requested: int, *limits: Any) -> int:
    caps = [int(x) for x in limits if isinstance(x, int) and not isinstance(x, bool)]
    return min([requested, *caps])


def reply_words(n: int) -> list[str]:
    return [f"w{i} " for i in range(n)]
