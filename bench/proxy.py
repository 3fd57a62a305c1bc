"""Added latency and throughput of the engine, against the fake upstream, direct vs through.

    .venv/bin/python bench/proxy.py [--quick]

Starts the fake upstream (`python -m fakeupstream`) and `aiwallet serve` as separate processes
on loopback, with policy on (app key, grant, app + wallet budgets, ledger, request log), and
measures in one run, each phase bounded in count and time:

* latency at concurrency 1 (non-streamed chat completions): direct vs through, p50/p90/p99;
* throughput at concurrency 32: requests/s direct vs through;
* streaming: time to first content event and total time, direct vs through.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from benchkit import FAKE_ARGS, bench_env, serve_args, spawn_printing_port  # noqa: E402

from aiwallet.domain.money import parse_budget_spec  # noqa: E402
from aiwallet.paths import DataDir  # noqa: E402
from aiwallet.service import Wallet  # noqa: E402
from fakeupstream import OPENAI_KEY  # noqa: E402

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "say hello to the benchmark"}],
}
STREAM_BODY = {**BODY, "stream": True}


def pct(values: list[float], p: float) -> float:
    return (
        statistics.quantiles(values, n=1000)[int(p * 10) - 1] if len(values) > 10 else max(values)
    )


async def latency(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], n: int, limit_s: float
) -> list[float]:
    out: list[float] = []
    deadline = time.monotonic() + limit_s
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        async with session.post(url, json=BODY, headers=headers) as r:
            await r.read()
            assert r.status == 200, r.status
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def throughput(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    conc: int,
    n: int,
    limit_s: float,
) -> tuple[float, list[float]]:
    done = 0
    lat: list[float] = []
    deadline = time.monotonic() + limit_s

    async def worker() -> None:
        nonlocal done
        while done < n and time.monotonic() < deadline:
            done += 1
            t0 = time.perf_counter()
            async with session.post(url, json=BODY, headers=headers) as r:
                await r.read()
                assert r.status == 200, r.status
            lat.append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conc)))
    return len(lat) / (time.perf_counter() - t0), lat


async def streaming(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], n: int, limit_s: float
) -> tuple[list[float], list[float]]:
    ttft: list[float] = []
    total: list[float] = []
    deadline = time.monotonic() + limit_s
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        first = None
        async with session.post(url, json=STREAM_BODY, headers=headers) as r:
            async for chunk in r.content.iter_any():
                if first is None and b'"content":"w' in chunk:
                    first = time.perf_counter()
        ttft.append(((first or time.perf_counter()) - t0) * 1000)
        total.append((time.perf_counter() - t0) * 1000)
    return ttft, total


async def run(fake_port: int, engine_port: int, key: str, quick: bool) -> None:
    direct = (
        f"http://127.0.0.1:{fake_port}/v1/chat/completions",
        {"Authorization": f"Bearer {OPENAI_KEY}"},
    )
    via = (
        f"http://127.0.0.1:{engine_port}/v1/chat/completions",
        {"Authorization": f"Bearer {key}"},
    )
    n_lat, n_thr, n_stream = (300, 3000, 100) if quick else (2000, 20000, 500)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector) as s:
        for url, h in (direct, via):  # warm-up
            await latency(s, url, h, 50, 10)
        rows = []
        d = await latency(s, *direct, n_lat, 30)
        v = await latency(s, *via, n_lat, 30)
        for p in (50, 90, 99):
            rows.append((f"c=1 latency p{p} (ms)", pct(d, p), pct(v, p), pct(v, p) - pct(d, p)))
        dr, _ = await throughput(s, *direct, 32, n_thr, 30)
        vr, vl = await throughput(s, *via, 32, n_thr, 30)
        rows.append(("c=32 throughput (req/s)", dr, vr, vr - dr))
        rows.append(
            ("c=32 latency p50 via (ms)", float("nan"), statistics.median(vl), float("nan"))
        )
        dt, dtot = await streaming(s, *direct, n_stream, 30)
        vt, vtot = await streaming(s, *via, n_stream, 30)
        rows.append(
            (
                "stream TTFT p50 (ms)",
                statistics.median(dt),
                statistics.median(vt),
                statistics.median(vt) - statistics.median(dt),
            )
        )
        rows.append(
            (
                "stream total p50 (ms)",
                statistics.median(dtot),
                statistics.median(vtot),
                statistics.median(vtot) - statistics.median(dtot),
            )
        )
    print(f"{'measure':<28} {'direct':>10} {'via wallet':>11} {'added':>9}")
    for name, a, b, c in rows:
        print(f"{name:<28} {a:>10.2f} {b:>11.2f} {c:>9.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aiwallet-bench-"))
    env = bench_env(tmp)
    fake, fake_port = spawn_printing_port(FAKE_ARGS, env)
    engine = None
    try:
        data_dir = DataDir(tmp / "wallet")
        wallet = Wallet.open(data_dir)
        wallet.add_provider(
            "openai", kind="openai", api_key=OPENAI_KEY, base_url=f"http://127.0.0.1:{fake_port}/v1"
        )
        wallet.set_budget(parse_budget_spec("100000/day"))
        _, key = wallet.create_app("bench", budget=parse_budget_spec("100000/day"))
        wallet.close()
        engine, engine_port = spawn_printing_port(serve_args(data_dir.root), env)
        asyncio.run(run(fake_port, engine_port, key, args.quick))
    finally:
        for proc in (engine, fake):
            if proc is not None:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
