"""A keyed request's latency, quiet and under floods of keyless connections and of connect
requests, with this engine's admission and with the old one, in the same run.

    .venv/bin/python bench/flood.py [--quick]

Starts the fake upstream (`python -m fakeupstream`) as a process and an engine in this process
(on its own thread and loop, as the desktop app runs it), on loopback, with one keyed app. For
each engine ("new": peer lookups on their own worker, batched, cached per connection, bounded
pending prompts and connect rate; "old": the previous behaviour, a psutil socket-table scan per
request on the database read pool and no bounds), it measures the keyed app's non-streamed
chat completions at concurrency 1 (p50/p95):

* quiet;
* under a keyless flood: another process keeps `--conns` (300) connections open, each sending
  a keyless chat completion (held for the owner's consent), leaving after 1 s and coming back
  on a new connection, so the engine sees a new keyless connection every few milliseconds;
* under a connect flood: another process sends a round of 500 `POST /wallet/v1/connect`, 100
  at a time, each on a new connection, every second (or back to back when a round takes
  longer).

Every phase is bounded in requests and in seconds. Then the cost of one peer lookup, and of
a batch of 100, with 300 extra loopback connections open: psutil's table scan (the old path,
and the fallback off Linux) vs sock_diag + /proc (the new one on Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from benchkit import FAKE_ARGS, bench_env, spawn_printing_port  # noqa: E402

from aiwallet.domain.money import parse_budget_spec  # noqa: E402
from aiwallet.engine import peer  # noqa: E402
from aiwallet.engine.admission import AdmissionLimits  # noqa: E402
from aiwallet.paths import DataDir  # noqa: E402
from aiwallet.service import Wallet  # noqa: E402
from fakeupstream import OPENAI_KEY  # noqa: E402

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi, benchmark"}]}
UNBOUNDED = AdmissionLimits(10**9, 10**9, 10**9, 10**9, 1e9)


class OldPeers:
    """The old peer lookup: a psutil socket-table scan per request, on the database pool,
    never cached."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self.timeout_s = 1e9
        self.lookups = self.passes = 0

    async def lookup(self, transport: Any) -> peer.ProcessInfo | None:
        if transport is None:
            return None
        client, server = transport.get_extra_info("peername"), transport.get_extra_info("sockname")
        self.lookups += 1
        found = await self.state.db(peer.psutil_peers, [(tuple(client), tuple(server))])
        return found[0]

    def close(self) -> None:
        pass


def pct(values: list[float], p: float) -> float:
    if len(values) < 10:
        return max(values)
    return statistics.quantiles(values, n=100)[int(p) - 1]


async def keyed(url: str, key: str, n: int, limit_s: float) -> list[float]:
    """Latencies (ms) of up to ``n`` keyed requests, one at a time, for at most ``limit_s``."""
    out: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + limit_s
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while len(out) < n and time.monotonic() < deadline:
            t0 = time.perf_counter()
            async with session.post(url + "/v1/chat/completions", json=BODY, headers=headers) as r:
                await r.read()
                assert r.status == 200, r.status
            out.append((time.perf_counter() - t0) * 1000)
    return out


# -- the flooding process -----------------------------------------------------------------------
async def _keyless_worker(port: int, deadline: float, counts: list[int]) -> None:
    body = json.dumps(BODY).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        counts[0] += 1
        writer.write(head + body)
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(reader.read(65536), 1.0)  # held: leave after 1 s
        writer.close()


async def _connect_round(port: int, n: int, concurrency: int, counts: list[int]) -> None:
    sem = asyncio.Semaphore(concurrency)
    body = json.dumps({"app_name": "flood"}).encode()
    head = (
        f"POST /wallet/v1/connect HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()

    async def one() -> None:
        async with sem:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(head + body)
                await asyncio.wait_for(reader.read(65536), 30)
                writer.close()
                counts[0] += 1
            except (TimeoutError, OSError):
                pass

    await asyncio.gather(*(one() for _ in range(n)))


async def flood(kind: str, port: int, seconds: float, conns: int) -> None:
    deadline = time.monotonic() + seconds
    counts = [0]
    if kind == "keyless":
        await asyncio.gather(*(_keyless_worker(port, deadline, counts) for _ in range(conns)))
    else:
        for _ in range(100):  # at most 100 rounds, at most one a second
            started = time.monotonic()
            if started >= deadline:
                break
            await _connect_round(port, 500, 100, counts)
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
    print(counts[0], flush=True)


def start_flood(kind: str, port: int, seconds: float, conns: int) -> subprocess.Popen[str]:
    args = [sys.executable, __file__, "--flood", kind, "--port", str(port)]
    args += ["--seconds", str(seconds), "--conns", str(conns)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)


# -- the run ------------------------------------------------------------------------------------
def engine_for(tmp: Path, fake_url: str, mode: str) -> tuple[Wallet, Any, str]:
    wallet = Wallet.open(DataDir(tmp / mode))
    wallet.add_provider("openai", kind="openai", api_key=OPENAI_KEY, base_url=fake_url + "/v1")
    _, key = wallet.create_app("keyed", budget=parse_budget_spec("1000/day"))
    engine = wallet.new_engine(port=0, consent_timeout_s=600)
    engine.start()
    if mode == "old":
        assert engine.consent is not None
        engine.consent.close()
        engine.consent.peers = OldPeers(engine.state)  # type: ignore[assignment]
        engine.consent.set_limits(UNBOUNDED)
    return wallet, engine, key


def phase(name: str, lat: list[float], quiet: float | None, extra: str = "") -> float:
    p50, p95, p99 = statistics.median(lat), pct(lat, 95), pct(lat, 99)
    ratio = f"  p50 {p50 / quiet:4.1f}x quiet" if quiet else ""
    print(
        f"  {name:<15} n={len(lat):5d}  p50 {p50:7.1f}  p95 {p95:7.1f}  p99 {p99:7.1f}  "
        f"max {max(lat):7.1f} ms{ratio}{extra}"
    )
    return p50


def run_engine(tmp: Path, fake_url: str, mode: str, args: argparse.Namespace) -> dict[str, float]:
    wallet, engine, key = engine_for(tmp, fake_url, mode)
    out: dict[str, float] = {}
    try:
        print(f"engine: {mode}")
        url = engine.url
        asyncio.run(keyed(url, key, 20, 10))  # warm up
        quiet = phase("quiet", asyncio.run(keyed(url, key, args.n, args.seconds)), None)
        out["quiet"] = quiet
        for kind in ("keyless", "connect"):
            proc = start_flood(kind, engine.port, args.seconds + 2, args.conns)
            time.sleep(1.0)  # let the flood build up before measuring
            lat = asyncio.run(keyed(url, key, args.n, args.seconds))
            sent = proc.communicate(timeout=args.seconds + 120)[0].strip()
            lookups = engine.consent.peers.lookups
            extra = f"  ({sent} flood requests, {lookups} peer lookups so far)"
            out[kind] = phase(f"{kind} flood", lat, quiet, extra)
    finally:
        engine.stop()
        wallet.close()
    return out


def lookup_cost(extra: int) -> None:
    """One lookup and a batch of 100, old path vs new, with ``extra`` connections open."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(extra + 200)
    socks = []
    pairs = []
    for i in range(extra + 100):
        c = socket.create_connection(srv.getsockname())
        s, _ = srv.accept()
        socks += [c, s]
        if i < 100:
            pairs.append((s.getpeername(), s.getsockname()))
    print(f"peer lookup cost ({extra + 100} loopback connections open, median of 15)")
    ways = [("psutil table scan (old)", peer.psutil_peers)]
    if sys.platform.startswith("linux"):
        ways.append(("sock_diag + /proc (new)", peer.linux_peers))
    for name, fn in ways:
        fn(pairs[:1])
        one, batch = [], []
        for _ in range(15):
            t0 = time.perf_counter()
            assert fn(pairs[:1])[0] is not None
            one.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            assert all(fn(pairs))
            batch.append((time.perf_counter() - t0) * 1000)
        print(
            f"  {name:<26} one {statistics.median(one):7.2f} ms"
            f"   batch of 100 {statistics.median(batch):8.2f} ms"
        )
    for s in socks:
        s.close()
    srv.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--conns", type=int, default=300)
    ap.add_argument("--flood", choices=["keyless", "connect"])
    ap.add_argument("--port", type=int)
    args = ap.parse_args()
    if args.flood:
        asyncio.run(flood(args.flood, args.port, args.seconds, args.conns))
        return
    if args.quick:
        args.seconds = 4.0
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        env = bench_env(tmp)
        fake, fake_port = spawn_printing_port(FAKE_ARGS, env)
        try:
            fake_url = f"http://127.0.0.1:{fake_port}"
            results = {mode: run_engine(tmp, fake_url, mode, args) for mode in ("new", "old")}
        finally:
            fake.terminate()
            fake.wait(10)
    lookup_cost(300)
    new = results["new"]
    target = max(new["keyless"], new["connect"]) <= 2 * new["quiet"]
    print(
        f"target (keyed p50 under flood within 2x quiet, new engine): "
        f"{'met' if target else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
