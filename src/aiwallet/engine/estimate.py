"""Token estimates for when a provider's own count is missing (cut stream, broken usage)."""

from __future__ import annotations

from aiwallet.domain.usage import TokenSource, Usage

BYTES_PER_TOKEN = 4  # the usual English-text average; providers' tokenizers vary


def estimate_tokens(n_bytes: int) -> int:
    return -(-n_bytes // BYTES_PER_TOKEN)


def estimated_usage(prompt_bytes: int, output_bytes: int, known: Usage | None = None) -> Usage:
    """Usage from what was sent and relayed; keeps what the provider did report (input and
    cache counts from an Anthropic ``message_start``) and takes the larger output count."""
    if known is not None:
        return Usage(
            input_tokens=known.input_tokens,
            output_tokens=max(known.output_tokens, estimate_tokens(output_bytes)),
            cache_read_tokens=known.cache_read_tokens,
            cache_write_tokens=known.cache_write_tokens,
            cache_write_1h_tokens=known.cache_write_1h_tokens,
            source=TokenSource.ESTIMATED,
        )
    return Usage(
        input_tokens=estimate_tokens(prompt_bytes),
        output_tokens=estimate_tokens(output_bytes),
        source=TokenSource.ESTIMATED,
    )
