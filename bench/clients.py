"""Upstream HTTP client choice: aiohttp vs httpx, against the fake upstream, same run.

    .venv/bin/python bench/clients.py

The engine's upstream client sits on the hot path; this measures requests/s at concurrency
32 (non-streamed chat completions) and at concurrency 1 (latency), bounded in count and time.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fakeupstream import OPENAI_KEY  # noqa: E402

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
HEADERS = {"Authorization": f"Bearer {OPENAI_KEY}"}
N, LIMIT_S, CONC = 6000, 20.0, 32


async def with_aiohttp(url: str) -> tuple[float, float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:

        async def one() -> None:
            async with s.post(url, json=BODY, headers=HEADERS) as r:
                await r.read()

        return await drive(one)


async def with_httpx(url: str) -> tuple[float, float]:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits) as c:

        async def one() -> None:
            r = await c.post(url, json=BODY, headers=HEADERS)
            r.read()

        return await drive(one)


async def drive(one: object) -> tuple[float, float]:
    for _ in range(50):
        await one()  # type: ignore[operator]
    lat = []
    for _ in range(300):
        t0 = time.perf_counter()
        await one()  # type: ignore[operator]
        lat.append((time.perf_counter() - t0) * 1000)
    done = 0
    deadline = time.monotonic() + LIMIT_S

    async def worker() -> None:
        nonlocal done
        while done < N and time.monotonic() < deadline:
            done += 1
            await one()  # type: ignore[operator]

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONC)))
    return done / (time.perf_counter() - t0), statistics.median(lat)


def main() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    fake = subprocess.Popen(
        [sys.executable, "-m", "fakeupstream", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert fake.stdout is not None
        port = int(fake.stdout.readline())
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        print(f"{'client':<8} {'req/s c=32':>11} {'p50 ms c=1':>11}")
        for name, fn in (("aiohttp", with_aiohttp), ("httpx", with_httpx)):
            rps, p50 = asyncio.run(fn(url))
            print(f"{name:<8} {rps:>11.0f} {p50:>11.2f}")
    finally:
        fake.terminate()
        fake.wait(10)


if __name__ == "__main__":
    main()
