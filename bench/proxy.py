"""Added latency and throughput of the engine, direct to a fake upstream vs through the engine.

    .venv/bin/python bench/proxy.py [--quick] [--postgres] [--pin]
    .venv/bin/python bench/proxy.py --baseline-src ../old [--src DIR]   # before/after, one run

Starts a fake upstream and `aiwallet serve` as separate processes on loopback, with policy on
(an app key with a grant for the model, app + wallet budgets, ledger, request log), and
measures, each phase bounded in time (wrk's ``-d``) and in count:

* latency at concurrency 1 (non-streamed chat completions, ``wrk -t1 -c1``), p50/p90/p99;
* throughput at concurrency 32 (``wrk -t1 -c32``): requests/s, p50/p99, and the engine
  process's CPU time per request over that phase (psutil ``cpu_times`` delta / requests);
* the engine's RSS after warm-up and after the load;
* streaming at concurrency 1: time to first content event and total time. These stay on the
  Python aiohttp client: wrk reports only whole-response latency, it cannot see the first
  token, so they are measured with a client that costs more, one request at a time.

The load comes from Debian's wrk (bench/wrkload.py), the same generator for the direct
column and the engine's, so the client does not take the cores the engine is measured on.
The upstream is bench/leanfake.py (a bare aiohttp OpenAI fake, the least work per request),
so the fake is not the bottleneck; ``--tests-fake`` uses tests/fakeupstream instead. After the
run the ledger is read back: each engine must have billed (a ledger spend row priced from the
fake's ``usage``: token source ``provider`` or ``injected``) at least every request the clients
got a 2xx for. The few ``estimated`` rows are the requests wrk still had in flight when its
``-d`` ran out: it closes those connections, and the engine bills them as ``client_closed``.

A run whose any phase got a non-2xx answer or a socket error is rejected (SystemExit).

* ``--postgres``: the ledger on a throw-away PostgreSQL (tests/pgserver.py, a fresh database
  per engine, reached through ``AIWALLET_DATABASE_URL``; the data dir stays local).
* ``--src DIR``: run the engine from another source tree (``PYTHONPATH=DIR/src``), its wallet
  set up by that tree's own code.
* ``--baseline-src DIR``: also run the engine from ``DIR`` (e.g. a ``git worktree`` of an older
  commit) as the baseline; both engines run side by side and each measured phase alternates
  (direct, baseline, engine, direct, baseline, engine: two rounds, the figures are the mean of
  the rounds), and the table gets both columns and the delta.
* ``--pin``: wrk on core 0 and the engine(s) on core 1 (taskset); off by default, see wrkload.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(BENCH))

from benchkit import (  # noqa: E402
    FAKE_ARGS,
    LEAN_FAKE_ARGS,
    bench_env,
    billed_from_usage,
    engine_env,
    fmt,
    serve_args,
    setup_wallet,
    spawn_printing_port,
    stop,
    tree_cpu,
    tree_rss,
    wait_billed,
)
from wrkload import WrkRejected, WrkResult, require_wrk, run_wrk  # noqa: E402

from fakeupstream import OPENAI_KEY  # noqa: E402

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "say hello to the benchmark"}],
}
STREAM_BODY = {**BODY, "stream": True}
CONCURRENCY = 32


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    proc: Any = None  # the engine's Popen (None: direct)
    root: Path | None = None  # its data dir
    db_url: str | None = None
    answered: int = 0  # 2xx answers the clients got
    figures: dict[str, list[float]] = field(default_factory=dict)

    def add(self, measure: str, value: float) -> None:
        self.figures.setdefault(measure, []).append(value)

    def get(self, measure: str) -> float:
        values = self.figures.get(measure)
        return statistics.fmean(values) if values else float("nan")


def load(t: Target, what: str, seconds: float, connections: int, cpus: str | None) -> WrkResult:
    try:
        r = run_wrk(
            t.url,
            BODY,
            t.headers,
            duration_s=seconds,
            threads=1,
            connections=connections,
            max_requests=int(seconds * 200_000),  # far above any rate here: a safety bound
            cpus=cpus,
        ).check(f"{what} {t.name}")
    except WrkRejected as exc:
        raise SystemExit(f"rejected: {exc}") from exc
    t.answered += r.requests
    return r


def c1(t: Target, seconds: float, cpus: str | None) -> None:
    r = load(t, "c=1 latency", seconds, 1, cpus)
    t.add("c=1 latency p50 (ms)", r.p50_ms)
    t.add("c=1 latency p90 (ms)", r.p90_ms)
    t.add("c=1 latency p99 (ms)", r.p99_ms)


def c32(t: Target, seconds: float, cpus: str | None) -> None:
    cpu0 = tree_cpu(t.proc.pid) if t.proc else 0.0
    r = load(t, "c=32 throughput", seconds, CONCURRENCY, cpus)
    if t.proc:
        t.add("c=32 engine CPU per request (ms)", (tree_cpu(t.proc.pid) - cpu0) * 1000 / r.requests)
    t.add("c=32 throughput (req/s)", r.rps)
    t.add("c=32 latency p50 (ms)", r.p50_ms)
    t.add("c=32 latency p99 (ms)", r.p99_ms)


async def streaming(t: Target, n: int, limit_s: float) -> None:
    """Time to the first content event and to the end, one request at a time (Python client:
    wrk cannot see the first token)."""
    ttft: list[float] = []
    total: list[float] = []
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as s:
        for _ in range(n):
            if time.monotonic() > deadline:
                break
            t0 = time.perf_counter()
            first = None
            async with s.post(t.url, json=STREAM_BODY, headers=t.headers) as r:
                if r.status != 200:
                    raise SystemExit(f"rejected: stream {t.name} answered HTTP {r.status}")
                async for chunk in r.content.iter_any():
                    if first is None and b'"content":"w' in chunk:
                        first = time.perf_counter()
            if first is None:
                raise SystemExit(f"rejected: stream {t.name} had no content")
            ttft.append((first - t0) * 1000)
            total.append((time.perf_counter() - t0) * 1000)
            t.answered += 1
    t.add("stream TTFT p50 (ms)", statistics.median(ttft))
    t.add("stream total p50 (ms)", statistics.median(total))


def measure(targets: list[Target], quick: bool, pin: bool) -> dict[str, Any]:
    """All phases; figures land in each target. Returns run facts for the header."""
    wrk_cpus = "0" if pin else None
    engines = [t for t in targets if t.proc]
    rounds = 2 if len(engines) > 1 else 1
    secs = 3.0 if quick else 10.0
    n_stream = 100 if quick else 500
    for t in targets:  # warm-up (imports, connection pools, the catalog, the first bills)
        load(t, "warm-up", 2.0 if quick else 5.0, 4, wrk_cpus)
    rss_idle = {t.name: tree_rss(t.proc.pid) / 2**20 for t in engines}
    for _ in range(rounds):
        for t in targets:
            c1(t, secs, wrk_cpus)
    for _ in range(rounds):
        for t in targets:
            c32(t, secs, wrk_cpus)
    for _ in range(rounds):
        for t in targets:
            asyncio.run(streaming(t, n_stream, secs * 3))
    for t in engines:
        t.add("RSS idle, after warm-up (MiB)", rss_idle[t.name])
        t.add("RSS after load (MiB)", tree_rss(t.proc.pid) / 2**20)
    return {"rounds": rounds, "seconds": secs, "n_stream": n_stream}


def check_billed(t: Target) -> dict[str, int]:
    """Wait (bounded) until the engine's ledger has a spend row priced from the fake's usage
    for every answered request; the rows by token source (SystemExit when they fall short:
    the engine did not bill the fake's answers)."""
    assert t.root is not None
    counts = wait_billed(t.root, t.db_url, t.answered)
    if billed_from_usage(counts) < t.answered:
        raise SystemExit(f"{t.name}: ledger spend rows {counts} for {t.answered} answers")
    return counts


MEASURES = [
    "c=1 latency p50 (ms)",
    "c=1 latency p90 (ms)",
    "c=1 latency p99 (ms)",
    "c=32 throughput (req/s)",
    "c=32 latency p50 (ms)",
    "c=32 latency p99 (ms)",
    "c=32 engine CPU per request (ms)",
    "stream TTFT p50 (ms)",
    "stream total p50 (ms)",
    "RSS idle, after warm-up (MiB)",
    "RSS after load (MiB)",
]


def table(targets: list[Target]) -> str:
    direct, engines = targets[0], targets[1:]
    head = ["measure", "direct"]
    for e in engines:
        head += [e.name, f"{e.name} added"]
    if len(engines) == 2:
        head.append(f"{engines[1].name} − {engines[0].name}")
    out = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for m in MEASURES:
        d = direct.get(m)
        cells = [m, fmt(d)]
        for e in engines:
            v = e.get(m)
            cells += [fmt(v), fmt(v - d) if "latency" in m or "TTFT" in m or "total" in m else ""]
        if len(engines) == 2:
            cells.append(fmt(engines[1].get(m) - engines[0].get(m)))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 s per wrk phase, 100 streams")
    ap.add_argument("--postgres", action="store_true", help="the ledger on a throw-away PG")
    ap.add_argument("--src", type=Path, help="run the engine from this source tree")
    ap.add_argument("--baseline-src", type=Path, help="also run this tree's engine, interleaved")
    ap.add_argument("--pin", action="store_true", help="wrk on core 0, the engine(s) on core 1")
    ap.add_argument("--tests-fake", action="store_true", help="tests/fakeupstream as upstream")
    args = ap.parse_args()
    require_wrk()
    for d in (args.src, args.baseline_src):
        if d is not None and not (d / "src" / "aiwallet").is_dir():
            raise SystemExit(f"{d} is not an aiwallet source tree (no src/aiwallet)")

    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="aiwallet-bench-"))
    env = bench_env(tmp)
    pg: Any = None
    fake = None
    targets: list[Target] = []
    try:
        if args.postgres:
            from pgserver import start_pg_server

            pg = start_pg_server()
            if isinstance(pg, str):
                raise SystemExit(f"--postgres: {pg}")
        fake_args = FAKE_ARGS if args.tests_fake else LEAN_FAKE_ARGS
        fake, fake_port = spawn_printing_port(fake_args, env, tmp / "fake.log")
        base_url = f"http://127.0.0.1:{fake_port}/v1"
        targets.append(
            Target(
                "direct",
                f"{base_url}/chat/completions",
                {"Authorization": f"Bearer {OPENAI_KEY}"},
            )
        )
        engines: list[tuple[str, Path | None]] = []
        if args.baseline_src is not None:
            engines.append(("baseline", args.baseline_src))
        engines.append(("engine", args.src))
        for name, src in engines:
            e_env = engine_env(env, src)
            db_url = None
            if pg is not None:
                db_url = pg.create_database()
                e_env["AIWALLET_DATABASE_URL"] = db_url
            root = tmp / f"wallet-{name}"
            key = setup_wallet(e_env, root, base_url, OPENAI_KEY)
            cmd = serve_args(root)
            if args.pin:
                cmd = ["taskset", "-c", "1", *cmd]
            proc, port = spawn_printing_port(cmd, e_env, tmp / f"{name}.log")
            targets.append(
                Target(
                    name,
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    {"Authorization": f"Bearer {key}"},
                    proc,
                    root,
                    db_url,
                )
            )
        t0 = time.monotonic()
        facts = measure(targets, args.quick, args.pin)
        elapsed = time.monotonic() - t0
        bills = {t.name: (check_billed(t), t.answered) for t in targets if t.proc}
    finally:
        for t in targets:
            stop(t.proc)
        stop(fake)
        if pg is not None:
            pg.stop()
    load1 = os.getloadavg()

    srcs = ", ".join(f"{n}: {(s or ROOT).resolve()}" for n, s in engines)
    pinned = ", pinned to core 0, engine core 1" if args.pin else ""
    print(
        f"ledger: {'PostgreSQL' if args.postgres else 'SQLite'}; upstream: "
        f"{'tests/fakeupstream' if args.tests_fake else 'bench/leanfake.py'}; load: wrk "
        f"(-t1, {facts['seconds']:.0f} s per phase{pinned}), "
        f"{facts['rounds']} round(s), streams on the Python client ({facts['n_stream']} each)"
    )
    print(f"engines: {srcs}")
    print(
        f"measured in {elapsed:.0f} s, {os.cpu_count()} cores, load average before "
        f"{load0[0]:.2f}, after {load1[0]:.2f}"
    )
    for name, (counts, answered) in bills.items():
        print(
            f"billed ({name}): {sum(counts.values()):,} ledger spend rows by token source "
            f"{counts} for {answered:,} answered requests"
        )
    print()
    print(table(targets))


if __name__ == "__main__":
    main()
