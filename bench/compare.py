"""aiwallet vs LiteLLM's proxy, against the same fake upstream, in one run.

    .venv/bin/python bench/compare.py [--quick] [--policy]

Starts three processes on 127.0.0.1: the fake upstream (`python -m fakeupstream`), `aiwallet
serve` with policy on (app key with a grant, app budget, wallet budget, ledger, request log,
audit log) and LiteLLM's proxy (`litellm --config ... --num_workers 1`, from its own venv in
bench/.venv-litellm, created on first use with the pinned version below). LiteLLM routes
`gpt-4o-mini` to the fake and authenticates clients with a master key; it runs without a
database, so it has no virtual keys and no key budgets (those need Prisma's query-engine
binary, which cannot be downloaded here). With `--policy` LiteLLM's deployment also gets a
budget (`litellm_params.max_budget` + `budget_duration`, tracked in memory by its router), so
the comparison is policy against policy; the configs are in bench/litellm_config/.

Measured in one run, each phase bounded in count and in time, for direct-to-fake, via aiwallet
and via LiteLLM: latency at concurrency 1 (non-streamed chat completions), throughput and
latency at concurrency 32, streaming time to first content and total time, and each proxy's
RSS (idle and after load) and CPU time per request at c=32. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))

from benchkit import FAKE_ARGS, bench_env, serve_args, spawn_printing_port  # noqa: E402

from aiwallet import __version__ as AIWALLET_VERSION  # noqa: E402
from aiwallet.domain.money import parse_budget_spec  # noqa: E402
from aiwallet.paths import DataDir  # noqa: E402
from aiwallet.service import Wallet  # noqa: E402
from fakeupstream import OPENAI_KEY  # noqa: E402

LITELLM_VERSION = "1.106.2"  # what `pip install litellm[proxy]` gave on 2026-11-23; pinned
LITELLM_VENV = BENCH / ".venv-litellm"
LITELLM_CONFIGS = BENCH / "litellm_config"

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "say hello to the benchmark"}],
}
STREAM_BODY = {**BODY, "stream": True}
CONCURRENCY = 32


# -- processes ---------------------------------------------------------------------------------
def ensure_litellm() -> str:
    """Create bench/.venv-litellm with the pinned litellm[proxy] if needed; its version."""
    py = LITELLM_VENV / "bin" / "python"
    if not (LITELLM_VENV / "bin" / "litellm").exists():
        print(f"creating {LITELLM_VENV} with litellm[proxy]=={LITELLM_VERSION} ...", flush=True)
        subprocess.run(["python3", "-m", "venv", str(LITELLM_VENV)], check=True, timeout=300)
        subprocess.run(
            [str(py), "-m", "pip", "install", "--quiet", f"litellm[proxy]=={LITELLM_VERSION}"],
            check=True,
            timeout=1200,
        )
    out = subprocess.run(
        [str(py), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_litellm(config: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"  # else it downloads the cost map at import
    args = [str(LITELLM_VENV / "bin" / "litellm"), "--config", str(config)]
    args += ["--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    url = f"http://127.0.0.1:{port}/health/liveliness"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"LiteLLM exited with {proc.returncode}, see {log}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return proc, port
        except OSError:
            pass
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"LiteLLM did not come up in 180 s, see {log}")


def tree_rss(pid: int) -> int:
    p = psutil.Process(pid)
    return p.memory_info().rss + sum(
        c.memory_info().rss for c in p.children(recursive=True) if c.is_running()
    )


def tree_cpu(pid: int) -> float:
    p = psutil.Process(pid)
    total = 0.0
    for q in [p, *p.children(recursive=True)]:
        t = q.cpu_times()
        total += t.user + t.system
    return total


def stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


# -- load --------------------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    pid: int | None = None  # the proxy's process (None: direct)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    if len(values) <= 10:
        return max(values)
    return statistics.quantiles(values, n=1000)[int(p * 10) - 1]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def one(session: aiohttp.ClientSession, t: Target, body: dict[str, object]) -> float | None:
    t0 = time.perf_counter()
    try:
        async with session.post(t.url, json=body, headers=t.headers) as r:
            data = await r.read()
            if r.status != 200:
                t.error(f"HTTP {r.status}")
                return None
            if b'"choices"' not in data:
                t.error("no choices")
                return None
    except (aiohttp.ClientError, TimeoutError) as exc:
        t.error(type(exc).__name__)
        return None
    return (time.perf_counter() - t0) * 1000


async def latency(session: aiohttp.ClientSession, t: Target, n: int, limit_s: float) -> list[float]:
    out: list[float] = []
    deadline = time.monotonic() + limit_s
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        ms = await one(session, t, BODY)
        if ms is not None:
            out.append(ms)
    return out


async def throughput(
    session: aiohttp.ClientSession, t: Target, n: int, limit_s: float
) -> tuple[float, list[float], float | None]:
    """Successful requests per second at CONCURRENCY, their latencies, and the proxy's CPU
    milliseconds per request over the phase."""
    started = 0
    lat: list[float] = []
    deadline = time.monotonic() + limit_s

    async def worker() -> None:
        nonlocal started
        while started < n and time.monotonic() < deadline:
            started += 1
            ms = await one(session, t, BODY)
            if ms is not None:
                lat.append(ms)

    cpu0 = tree_cpu(t.pid) if t.pid else None
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    wall = time.perf_counter() - t0
    cpu_ms = None
    if cpu0 is not None and t.pid:
        cpu_ms = (tree_cpu(t.pid) - cpu0) * 1000 / max(1, started)
    return len(lat) / wall, lat, cpu_ms


def first_content(line: bytes) -> bool:
    """Is this SSE line a chat chunk with non-empty delta content?"""
    if not line.startswith(b"data:"):
        return False
    payload = line[5:].strip()
    if not payload or payload == b"[DONE]":
        return False
    try:
        chunk = json.loads(payload)
    except ValueError:
        return False
    return any((c.get("delta") or {}).get("content") for c in chunk.get("choices") or [])


async def streaming(
    session: aiohttp.ClientSession, t: Target, n: int, limit_s: float
) -> tuple[list[float], list[float]]:
    ttft: list[float] = []
    total: list[float] = []
    deadline = time.monotonic() + limit_s
    for _ in range(n):
        if time.monotonic() > deadline:
            break
        t0 = time.perf_counter()
        first: float | None = None
        done = False
        try:
            async with session.post(t.url, json=STREAM_BODY, headers=t.headers) as r:
                if r.status != 200:
                    await r.read()
                    t.error(f"stream HTTP {r.status}")
                    continue
                async for raw in r.content:
                    line = raw.strip()
                    if first is None and first_content(line):
                        first = time.perf_counter()
                    if line == b"data: [DONE]":
                        done = True
        except (aiohttp.ClientError, TimeoutError) as exc:
            t.error(f"stream {type(exc).__name__}")
            continue
        if first is None or not done:
            t.error("stream without content or [DONE]")
            continue
        ttft.append((first - t0) * 1000)
        total.append((time.perf_counter() - t0) * 1000)
    return ttft, total


async def budget_probe(session: aiohttp.ClientSession, t: Target) -> list[int]:
    """Three requests, 1 s apart, to LiteLLM's `budget-probe` deployment (budget below the
    cost of one request): the statuses (the second and third must be refused)."""
    statuses = []
    for _ in range(3):
        async with session.post(
            t.url, json={**BODY, "model": "budget-probe"}, headers=t.headers
        ) as r:
            await r.read()
            statuses.append(r.status)
        await asyncio.sleep(1.0)
    return statuses


# -- the run -------------------------------------------------------------------------------------
Row = tuple[str, float, float, float]  # measure, direct, aiwallet, litellm


async def measure(
    targets: list[Target], quick: bool, policy: bool
) -> tuple[list[Row], dict[str, object]]:
    direct, wallet, litellm = targets
    n_lat, n_thr, n_stream = (300, 3000, 100) if quick else (2000, 20000, 500)
    limit = 10.0 if quick else 30.0
    info: dict[str, object] = {"sizes": (n_lat, n_thr, n_stream), "limit_s": limit}
    rows: list[Row] = []
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as s:
        if policy:
            info["probe"] = await budget_probe(s, litellm)
        for t in targets:  # warm-up
            await latency(s, t, 50, 10)
            await streaming(s, t, 10, 10)
        for t in targets:
            t.errors.clear()
        rss_idle = {t.name: tree_rss(t.pid) / 2**20 for t in targets if t.pid}

        lat = {t.name: await latency(s, t, n_lat, limit) for t in targets}
        for p in (50, 90, 99):
            rows.append(
                (f"c=1 latency p{p} (ms)", *(pct(lat[t.name], p) for t in targets))  # type: ignore[arg-type]
            )
        for p in (50, 90, 99):
            d = pct(lat[direct.name], p)
            rows.append(
                (
                    f"c=1 added p{p} (ms)",
                    float("nan"),
                    pct(lat[wallet.name], p) - d,
                    pct(lat[litellm.name], p) - d,
                )
            )
        info["n_c1"] = {k: len(v) for k, v in lat.items()}

        thr = {t.name: await throughput(s, t, n_thr, limit) for t in targets}
        rows.append(("c=32 throughput (req/s)", *(thr[t.name][0] for t in targets)))  # type: ignore[arg-type]
        rows.append(("c=32 latency p50 (ms)", *(med(thr[t.name][1]) for t in targets)))  # type: ignore[arg-type]
        rows.append(("c=32 latency p99 (ms)", *(pct(thr[t.name][1], 99) for t in targets)))  # type: ignore[arg-type]
        rows.append(
            (
                "c=32 proxy CPU per request (ms)",
                float("nan"),
                thr[wallet.name][2] or float("nan"),
                thr[litellm.name][2] or float("nan"),
            )
        )
        info["n_c32"] = {k: len(v[1]) for k, v in thr.items()}

        st = {t.name: await streaming(s, t, n_stream, limit) for t in targets}
        rows.append(("stream TTFT p50 (ms)", *(med(st[t.name][0]) for t in targets)))  # type: ignore[arg-type]
        rows.append(("stream total p50 (ms)", *(med(st[t.name][1]) for t in targets)))  # type: ignore[arg-type]
        d_ttft, d_tot = med(st[direct.name][0]), med(st[direct.name][1])
        rows.append(
            (
                "stream TTFT added p50 (ms)",
                float("nan"),
                med(st[wallet.name][0]) - d_ttft,
                med(st[litellm.name][0]) - d_ttft,
            )
        )
        rows.append(
            (
                "stream total added p50 (ms)",
                float("nan"),
                med(st[wallet.name][1]) - d_tot,
                med(st[litellm.name][1]) - d_tot,
            )
        )
        info["n_stream"] = {k: len(v[0]) for k, v in st.items()}

        rss_after = {t.name: tree_rss(t.pid) / 2**20 for t in targets if t.pid}
        rows.append(("RSS idle, after warm-up (MiB)", float("nan"), *rss_idle.values()))  # type: ignore[arg-type]
        rows.append(("RSS after load (MiB)", float("nan"), *rss_after.values()))  # type: ignore[arg-type]
        info["errors"] = {t.name: dict(t.errors) for t in targets}
    return rows, info


def fmt(v: float) -> str:
    if v != v:  # NaN
        return ""
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.2f}"


def ratio(a: float, b: float) -> str:
    if a != a or b != b or b == 0:
        return ""
    return f"{a / b:.2f}×"


def table(rows: list[Row]) -> str:
    out = [
        "| measure | direct | aiwallet | LiteLLM | aiwallet / direct | LiteLLM / direct "
        "| aiwallet / LiteLLM |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, d, w, ll in rows:
        out.append(
            f"| {name} | {fmt(d)} | {fmt(w)} | {fmt(ll)} | {ratio(w, d)} | {ratio(ll, d)} "
            f"| {ratio(w, ll)} |"
        )
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer requests, 10 s per phase")
    ap.add_argument("--policy", action="store_true", help="LiteLLM with a deployment budget")
    args = ap.parse_args()

    litellm_version = ensure_litellm()
    if litellm_version != LITELLM_VERSION:
        print(f"warning: bench/.venv-litellm has litellm {litellm_version}, not {LITELLM_VERSION}")
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="aiwallet-compare-"))
    env = bench_env(tmp)
    fake = engine = litellm = None
    try:
        fake, fake_port = spawn_printing_port(FAKE_ARGS, env, tmp / "fake.log")
        data_dir = DataDir(tmp / "wallet")
        w = Wallet.open(data_dir)
        w.add_provider(
            "openai", kind="openai", api_key=OPENAI_KEY, base_url=f"http://127.0.0.1:{fake_port}/v1"
        )
        w.set_budget(parse_budget_spec("100000/day"))
        _, app_key = w.create_app(
            "bench", budget=parse_budget_spec("100000/day"), models=["gpt-4o-mini"]
        )
        w.close()
        engine, engine_port = spawn_printing_port(
            serve_args(data_dir.root), env, tmp / "engine.log"
        )

        master_key = "sk-bench-" + secrets.token_hex(16)
        template = (LITELLM_CONFIGS / ("policy.yaml" if args.policy else "config.yaml")).read_text()
        config = tmp / "litellm.yaml"
        config.write_text(
            string.Template(template).substitute(
                fake_port=fake_port, fake_key=OPENAI_KEY, master_key=master_key
            )
        )
        litellm, litellm_port = start_litellm(config, tmp / "litellm.log")

        targets = [
            Target(
                "direct",
                f"http://127.0.0.1:{fake_port}/v1/chat/completions",
                {"Authorization": f"Bearer {OPENAI_KEY}"},
            ),
            Target(
                "aiwallet",
                f"http://127.0.0.1:{engine_port}/v1/chat/completions",
                {"Authorization": f"Bearer {app_key}"},
                engine.pid,
            ),
            Target(
                "litellm",
                f"http://127.0.0.1:{litellm_port}/v1/chat/completions",
                {"Authorization": f"Bearer {master_key}"},
                litellm.pid,
            ),
        ]
        t0 = time.monotonic()
        rows, info = asyncio.run(measure(targets, args.quick, args.policy))
        elapsed = time.monotonic() - t0
    finally:
        for proc in (litellm, engine, fake):
            stop(proc)
    load1 = os.getloadavg()

    mode = "policy against policy" if args.policy else "aiwallet with policy, LiteLLM plain"
    n_lat, n_thr, n_stream = info["sizes"]  # type: ignore[misc]
    print()
    print(
        f"aiwallet {AIWALLET_VERSION}, litellm {litellm_version}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores; mode: {mode}"
    )
    print(
        f"phases bounded at {n_lat} / {n_thr} / {n_stream} requests and {info['limit_s']:.0f} s "
        f"each; measured in {elapsed:.0f} s; load average before {load0[0]:.2f}, "
        f"after {load1[0]:.2f}"
    )
    print(f"successful requests: c=1 {info['n_c1']}, c=32 {info['n_c32']}, ", end="")
    print(f"stream {info['n_stream']}")
    print(f"errors: {info['errors']}")
    if args.policy:
        print(f"LiteLLM budget probe (3 requests, budget below one request): HTTP {info['probe']}")
    print()
    aiwallet_policy = "app key + grant, app and wallet budgets, ledger, request log, audit log"
    if args.policy:
        litellm_policy = (
            "master key; deployment budget (`litellm_params.max_budget` + `budget_duration`, "
            "router_budget_limiting, in-memory spend)"
        )
    else:
        litellm_policy = "master key only"
    print(f"aiwallet: {aiwallet_policy}.")
    print(f"LiteLLM: {litellm_policy}.")
    print("LiteLLM runs without a database, so no virtual keys or key budgets (they need")
    print("Prisma's query-engine binary, which cannot be downloaded here).")
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
