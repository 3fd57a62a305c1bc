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
and via LiteLLM: latency at concurrency 1 (non-streamed chat completions, ``wrk -t1 -c1``),
throughput and latency at concurrency 32 (``wrk -t1 -c32``), streaming time to first content
and total time, and each proxy's RSS (idle and after load) and CPU time per request at c=32.
Prints a markdown table, then the two ratios issue 18 sets targets for: throughput aiwallet /
LiteLLM (≥ 30×) and added c=1 p50 latency LiteLLM / aiwallet (≥ 25×).

The c=1 and c=32 load comes from Debian's wrk (bench/wrkload.py), the same generator for the
three columns, so the client does not take the cores the proxies are measured on; a phase that
got a non-2xx answer or a socket error is rejected (left blank, the reason under "errors").
The streams stay on the Python aiohttp client: wrk cannot see the first token. The upstream
is bench/leanfake.py, a bare OpenAI fake doing the least work per request (``--tests-fake``:
tests/fakeupstream); after the run aiwallet's ledger must hold a spend row for each answer.
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

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))

sys.path.insert(0, str(BENCH))

from benchkit import (  # noqa: E402
    FAKE_ARGS,
    LEAN_FAKE_ARGS,
    bench_env,
    billed_from_usage,
    fmt,
    serve_args,
    spawn_printing_port,
    stop,
    tree_cpu,
    tree_rss,
    wait_billed,
)
from wrkload import WrkRejected, WrkResult, require_wrk, run_wrk  # noqa: E402

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


# -- load --------------------------------------------------------------------------------------
@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    pid: int | None = None  # the proxy's process (None: direct)
    errors: dict[str, int] = field(default_factory=dict)
    answered: int = 0  # 2xx answers the clients got

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


def wrk_phase(t: Target, what: str, seconds: float, connections: int) -> WrkResult | None:
    """One wrk run at ``connections``; None (and the reason in ``t.errors``) when it got a
    non-2xx answer or a socket error: such a run is rejected, not reported as fast."""
    r = run_wrk(
        t.url,
        BODY,
        t.headers,
        duration_s=seconds,
        threads=1,
        connections=connections,
        max_requests=int(seconds * 200_000),  # far above any rate here: a safety bound
    )
    t.answered += r.requests - r.non_2xx
    try:
        return r.check(f"{what} {t.name}")
    except WrkRejected as exc:
        t.error(str(exc))
        return None


def throughput(t: Target, seconds: float) -> tuple[WrkResult | None, float | None]:
    """wrk at CONCURRENCY, and the proxy's CPU milliseconds per request over the phase."""
    cpu0 = tree_cpu(t.pid) if t.pid else None
    r = wrk_phase(t, "c=32", seconds, CONCURRENCY)
    cpu_ms = None
    if cpu0 is not None and t.pid and r is not None:
        cpu_ms = (tree_cpu(t.pid) - cpu0) * 1000 / r.requests
    return r, cpu_ms


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


def nan(v: float | None) -> float:
    return float("nan") if v is None else v


async def python_phases(
    targets: list[Target], policy: bool, n_stream: int, limit: float
) -> dict[str, object]:
    """The phases on the Python client: LiteLLM's budget probe and the streams (wrk cannot
    see the first token). Warms the streaming path up first."""
    out: dict[str, object] = {}
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as s:
        if policy:
            out["probe"] = await budget_probe(s, targets[2])
        for t in targets:
            await streaming(s, t, 10, 10)
            t.errors.clear()
        out["streams"] = {t.name: await streaming(s, t, n_stream, limit) for t in targets}
    for t in targets:
        t.answered += len(out["streams"][t.name][0])  # type: ignore[index]
    return out


def measure(
    targets: list[Target], quick: bool, policy: bool
) -> tuple[list[Row], dict[str, object]]:
    direct, wallet, litellm = targets
    secs = 3.0 if quick else 10.0  # per wrk phase
    n_stream = 100 if quick else 500
    limit = 10.0 if quick else 30.0
    info: dict[str, object] = {"seconds": secs, "stream_max": n_stream, "limit_s": limit}
    rows: list[Row] = []
    for t in targets:  # warm-up
        wrk_phase(t, "warm-up", 2.0 if quick else 5.0, 4)
        t.errors.clear()
    rss_idle = {t.name: tree_rss(t.pid) / 2**20 for t in targets if t.pid}

    lat = {t.name: wrk_phase(t, "c=1", secs, 1) for t in targets}

    def c1(name: str, p: str) -> float:
        r = lat[name]
        return float("nan") if r is None else float(getattr(r, p))

    for p, attr in (("50", "p50_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        rows.append((f"c=1 latency p{p} (ms)", *(c1(t.name, attr) for t in targets)))  # type: ignore[arg-type]
    for p, attr in (("50", "p50_ms"), ("90", "p90_ms"), ("99", "p99_ms")):
        d = c1(direct.name, attr)
        rows.append(
            (
                f"c=1 added p{p} (ms)",
                float("nan"),
                c1(wallet.name, attr) - d,
                c1(litellm.name, attr) - d,
            )
        )
    info["n_c1"] = {k: v.requests if v else 0 for k, v in lat.items()}

    thr = {t.name: throughput(t, secs) for t in targets}

    def c32(name: str, attr: str) -> float:
        r = thr[name][0]
        return float("nan") if r is None else float(getattr(r, attr))

    rows.append(("c=32 throughput (req/s)", *(c32(t.name, "rps") for t in targets)))  # type: ignore[arg-type]
    rows.append(("c=32 latency p50 (ms)", *(c32(t.name, "p50_ms") for t in targets)))  # type: ignore[arg-type]
    rows.append(("c=32 latency p99 (ms)", *(c32(t.name, "p99_ms") for t in targets)))  # type: ignore[arg-type]
    rows.append(
        (
            "c=32 proxy CPU per request (ms)",
            float("nan"),
            nan(thr[wallet.name][1]),
            nan(thr[litellm.name][1]),
        )
    )
    info["n_c32"] = {k: v[0].requests if v[0] else 0 for k, v in thr.items()}

    py = asyncio.run(python_phases(targets, policy, n_stream, limit))
    if "probe" in py:
        info["probe"] = py["probe"]
    st: dict[str, tuple[list[float], list[float]]] = py["streams"]  # type: ignore[assignment]
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
    info["targets"] = {
        "throughput aiwallet / LiteLLM (target ≥ 30×)": ratio(
            c32(wallet.name, "rps"), c32(litellm.name, "rps")
        ),
        "added c=1 p50 latency LiteLLM / aiwallet (target ≥ 25×)": ratio(
            c1(litellm.name, "p50_ms") - c1(direct.name, "p50_ms"),
            c1(wallet.name, "p50_ms") - c1(direct.name, "p50_ms"),
        ),
    }
    return rows, info


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
    ap.add_argument("--tests-fake", action="store_true", help="tests/fakeupstream as upstream")
    args = ap.parse_args()
    require_wrk()

    litellm_version = ensure_litellm()
    if litellm_version != LITELLM_VERSION:
        print(f"warning: bench/.venv-litellm has litellm {litellm_version}, not {LITELLM_VERSION}")
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="aiwallet-compare-"))
    env = bench_env(tmp)
    fake = engine = litellm = None
    try:
        fake, fake_port = spawn_printing_port(
            FAKE_ARGS if args.tests_fake else LEAN_FAKE_ARGS, env, tmp / "fake.log"
        )
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
        rows, info = measure(targets, args.quick, args.policy)
        elapsed = time.monotonic() - t0
        n_billed = wait_billed(data_dir.root, None, targets[1].answered)
    finally:
        for proc in (litellm, engine, fake):
            stop(proc)
    load1 = os.getloadavg()

    mode = "policy against policy" if args.policy else "aiwallet with policy, LiteLLM plain"
    print()
    print(
        f"aiwallet {AIWALLET_VERSION}, litellm {litellm_version}, Python "
        f"{platform.python_version()}, {os.cpu_count()} cores; mode: {mode}"
    )
    upstream = "tests/fakeupstream" if args.tests_fake else "bench/leanfake.py"
    print(
        f"upstream {upstream}; c=1 and c=32 load from wrk (-t1, {info['seconds']:.0f} s per "
        f"phase), streams on the Python client ({info['stream_max']} requests, at most "
        f"{info['limit_s']:.0f} s); measured in {elapsed:.0f} s; load average before "
        f"{load0[0]:.2f}, after {load1[0]:.2f}"
    )
    print(f"successful requests: c=1 {info['n_c1']}, c=32 {info['n_c32']}, ", end="")
    print(f"stream {info['n_stream']}")
    print(f"errors (a rejected phase is left blank): {info['errors']}")
    print(
        f"billed (aiwallet): {billed_from_usage(n_billed):,} ledger spend rows priced from the "
        f"fake's usage (by token source: {n_billed}) for {targets[1].answered:,} answered requests"
    )
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
    print()
    for name, value in info["targets"].items():  # type: ignore[attr-defined]
        print(f"{name}: {value or 'n/a'}")
    if billed_from_usage(n_billed) < targets[1].answered:
        raise SystemExit("aiwallet did not bill every answer from the fake's usage (above)")


if __name__ == "__main__":
    main()
