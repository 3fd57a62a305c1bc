"""The process's garbage collector, set for serving: once per process, after the engine is up.

A proxied request allocates a few thousand container objects (aiohttp's request and response,
headers, the call, JSON trees) that reference counting frees; only a few form cycles. At
CPython's default gen-0 threshold (700) the collector ran every few requests, and each full
collection walked every object the process had built at start (SQLAlchemy's metadata, the
price table, the SDK modules). :func:`tune_for_serving` moves what exists at start out of the
collector's sight (``gc.freeze``: it is never garbage) and runs gen 0 every 10,000
allocations instead; cycles are still collected, only later. docs/benchmarks.md has the
figures (collections per 1,000 requests and their cost before and after).
"""

from __future__ import annotations

import gc
import threading

GEN0_THRESHOLD = 10_000

_lock = threading.Lock()
_done = False


def tune_for_serving() -> bool:
    """Freeze what exists now and raise gen 0's threshold; ``True`` the first time in this
    process (later engines in the same process change nothing)."""
    global _done
    with _lock:
        if _done:
            return False
        _done = True
    gc.collect()  # what start-up left as garbage goes now, not into the frozen generation
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
    return True
