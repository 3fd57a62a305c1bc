"""What naming the script costs a peer lookup: ``_describe`` (psutil: exe, cmdline, user,
uid) as before issue 13, and as now (also the start time, the cwd and the argv parsing of
domain/programs.py), in the same run, for a running ``python a.py`` child.

    .venv/bin/python bench/identity.py [--rounds N]

Bounded: N rounds (default 2,000) of each, interleaved in blocks of 100 so that both see the
same machine load. Prints the median and p95 per call in microseconds, and the parsing alone.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil

from aiwallet.domain.programs import script_of
from aiwallet.engine.peer import ProcessInfo, _describe, _safe, _user_name

T = TypeVar("T")


def describe_before(pid: int) -> ProcessInfo:
    """``_describe`` as it was before the script was part of the identity."""
    proc = psutil.Process(pid)
    with proc.oneshot():
        exe = _safe(proc.exe)
        cmdline = tuple(_safe(proc.cmdline) or ())
        user = _safe(proc.username)
        uids = _safe(proc.uids)
        uid = uids.real if uids is not None else None
    return ProcessInfo(pid, exe, cmdline, user or _user_name(uid), uid)


def timed(fn: Callable[[T], object], arg: T, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn(arg)
        out.append((time.perf_counter() - t0) * 1e6)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2000)
    rounds = min(max(parser.parse_args().rounds, 100), 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "a.py"
        script.write_text("import sys; sys.stdin.read()\n")
        child = subprocess.Popen(
            [sys.executable, "-u", "-X", "dev", "a.py", "--flag"], cwd=tmp, stdin=subprocess.PIPE
        )
        try:
            assert _describe(child.pid, None).script == str(script.resolve())
            before: list[float] = []
            now: list[float] = []
            for _ in range(rounds // 100):
                before += timed(describe_before, child.pid, 100)
                now += timed(lambda p: _describe(p, None), child.pid, 100)
            argv = ["python3", "-u", "-X", "dev", "a.py", "--flag"]
            parse = timed(lambda a: script_of("/usr/bin/python3", a, tmp), argv, rounds)
        finally:
            child.kill()
            child.wait()

    def row(name: str, xs: list[float]) -> str:
        xs = sorted(xs)
        p95 = xs[int(len(xs) * 0.95)]
        return f"| {name} | {len(xs)} | {statistics.median(xs):.1f} | {p95:.1f} |"

    print("| describe | n | median µs | p95 µs |")
    print("|---|---:|---:|---:|")
    print(row("before (exe, cmdline, user, uid)", before))
    print(row("now (+ start time, cwd, script)", now))
    print(row("script_of alone", parse))
    ratio = statistics.median(now) / statistics.median(before)
    print(f"\nnow / before (median): {ratio:.2f}x")


if __name__ == "__main__":
    main()
