"""Token estimates for when a provider's own count is missing (cut stream, broken usage)."""

from __future__ import annotations

from aiwallet.domain.usage import TokenSource, Usage

BYTES_PER_TOKEN = 4  # the usual English-text average; providers' tokenizers vary


def estimate_tokens(n_bytes: int) -> int:
    return -(-n_bytes // BYTES_PER_TOKEN)


def estimated_usage(
    prompt_bytes: int,
    output_tokens: int,
    known: Usage | None = None,
    *,
    input_known: bool = False,
) -> Usage:
    """Usage billed from what is known, marked ``estimated``.

    Input: the provider's own counts when the stream said them (``input_known``: an Anthropic
    ``message_start``, a usage chunk), else the request's bytes / 4. Output: at least the
    tokens already relayed (``output_tokens``), and never less than the provider reported.
    """
    out = max(output_tokens, known.output_tokens if known is not None else 0)
    if known is not None and input_known:
        return Usage(
            input_tokens=known.input_tokens,
            output_tokens=out,
            cache_read_tokens=known.cache_read_tokens,
            cache_write_tokens=known.cache_write_tokens,
            cache_write_1h_tokens=known.cache_write_1h_tokens,
            reasoning_tokens=min(known.reasoning_tokens, out),
            source=TokenSource.ESTIMATED,
        )
    return Usage(
        input_tokens=estimate_tokens(prompt_bytes),
        output_tokens=out,
        source=TokenSource.ESTIMATED,
    )
