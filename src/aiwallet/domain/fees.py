"""Server-side tool fees, in nano-dollars per use: what a provider bills beyond tokens.

From the providers' published price lists (2026): the dearest figure where a price depends on
the model or options, so that a reservation is an upper bound. Tokens a tool adds to the
prompt (search results, file contents) are bounded separately (the context window).
"""

from __future__ import annotations

from typing import Any

NANO_PER_USD = 1_000_000_000

# Anthropic web search: $10 per 1,000 searches.
ANTHROPIC_WEB_SEARCH = 10 * NANO_PER_USD // 1000

OPENAI_TOOL_FEES = {
    # web search tool calls: $25 per 1,000 (non-reasoning models; reasoning models $10)
    "web_search": 25 * NANO_PER_USD // 1000,
    # file search tool calls: $2.50 per 1,000
    "file_search": 25 * NANO_PER_USD // 10_000,
    # image generation: the largest high-quality image of gpt-image-1 (6,240 output tokens at
    # $40 per 1M = $0.2496) with its partial images, rounded up
    "image_generation": 30 * NANO_PER_USD // 100,
}

# Code interpreter containers, by memory: $0.03 (1 GB, the default) to $1.92 (64 GB).
CONTAINER_FEES = {
    "1g": 3 * NANO_PER_USD // 100,
    "4g": 12 * NANO_PER_USD // 100,
    "16g": 48 * NANO_PER_USD // 100,
    "64g": 192 * NANO_PER_USD // 100,
}


def code_interpreter_fee(container: Any) -> int:
    """A request may start one container: its fee by the memory it asks for (an existing
    container's id, or no size: the dearest that id could name is not known, so 64 GB)."""
    if isinstance(container, dict):
        size = container.get("memory_limit") or "1g"
        return CONTAINER_FEES.get(str(size), CONTAINER_FEES["64g"])
    return CONTAINER_FEES["64g"]


# What a settled usage's tool uses cost, by the kind ``Usage.tool_uses`` names.
PER_USE = {
    "anthropic.web_search": ANTHROPIC_WEB_SEARCH,
    "openai.web_search": OPENAI_TOOL_FEES["web_search"],
    "openai.file_search": OPENAI_TOOL_FEES["file_search"],
    "openai.image_generation": OPENAI_TOOL_FEES["image_generation"],
}


def tool_fees(tool_uses: tuple[tuple[str, int], ...]) -> int:
    """What these uses cost; a kind with no known fee is refused (never billed as free)."""
    total = 0
    for kind, count in tool_uses:
        if kind not in PER_USE:
            raise KeyError(f"no fee is known for tool {kind!r}")
        total += PER_USE[kind] * count
    return total
