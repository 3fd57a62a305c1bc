"""The SSE splitter's cost: a large event arriving in small chunks, and many small events in one
chunk; this splitter against a baseline module given with --baseline (e.g. an older sse.py).

    PYTHONPATH=src python bench/sse.py [--baseline /path/to/old/sse.py]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from types import ModuleType
from typing import Any

from aiwallet.engine import sse


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location("sse_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _time(splitter_cls: Any, chunks: list[bytes]) -> tuple[float, int]:
    splitter = splitter_cls()
    n = 0
    t0 = time.perf_counter()
    for chunk in chunks:
        n += len(list(splitter.feed(chunk)))
    return time.perf_counter() - t0, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline")
    ap.add_argument("--mib", type=int, default=2)
    args = ap.parse_args()
    size = args.mib * 1024 * 1024
    big = b"data: " + b"x" * size + b"\n\n"
    cases = {
        f"one {args.mib} MiB event in 1 KiB chunks": [
            big[i : i + 1024] for i in range(0, len(big), 1024)
        ],
        f"{size // 16:,} 16-byte events in one chunk": [b"data: 123456\n\n\n"[:16] * (size // 16)],
        "1,000 small events, one per chunk": [b'data: {"delta":"hi"}\n\n'] * 1000,
    }
    impls = {"this splitter": sse.SSESplitter}
    if args.baseline:
        impls["baseline"] = _load(args.baseline).SSESplitter
    for name, chunks in cases.items():
        for label, cls in impls.items():
            seconds, n = _time(cls, chunks)
            print(f"{name:45s} {label:14s} {seconds * 1000:10.1f} ms  ({n} events)")


if __name__ == "__main__":
    main()
