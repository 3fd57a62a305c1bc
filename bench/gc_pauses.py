"""What the garbage collector costs the engine under load, with and without engine/heap.py.

    .venv/bin/python bench/gc_pauses.py [--seconds 8]

Runs twice, each in a fresh process: the engine as `aiwallet serve` would run it (in this
process, its own thread and loop, policy on: an app key with a grant, app + wallet budgets,
SQLite ledger), against bench/leanfake.py, loaded by wrk at concurrency 32 for ``--seconds``.
``default`` keeps CPython's collector as it is (gen 0 every 700 allocations, every object
start-up built walked by each full collection); ``tuned`` is what the engine does at start
(`heap.tune_for_serving`: ``gc.freeze`` after start-up, gen 0 every 10,000). Counted with
``gc.callbacks``: collections per generation and the time spent in them, per 1,000 requests.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(BENCH))

from benchkit import bench_env, spawn_printing_port  # noqa: E402
from wrkload import run_wrk  # noqa: E402

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "say hello to the benchmark"}],
}


def measure(mode: str, seconds: float) -> dict[str, float]:
    """One mode in this process: the figures as a dict."""
    from aiwallet.domain.money import parse_budget_spec
    from aiwallet.engine import heap
    from aiwallet.paths import DataDir
    from aiwallet.service import Wallet
    from fakeupstream import OPENAI_KEY

    tmp = Path(tempfile.mkdtemp(prefix="aiwallet-gc-"))
    env = bench_env(tmp)
    fake, fake_port = spawn_printing_port([sys.executable, str(BENCH / "leanfake.py")], env)
    if mode == "default":
        heap._done = True  # as if tuned already: the engine leaves the collector alone
    counts = [0, 0, 0]
    spent = [0.0]
    started: list[float] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            spent[0] += time.perf_counter() - started.pop()
            counts[info["generation"]] += 1

    try:
        wallet = Wallet.open(DataDir(tmp / "wallet"))
        wallet.add_provider(
            "openai", kind="openai", api_key=OPENAI_KEY, base_url=f"http://127.0.0.1:{fake_port}/v1"
        )
        wallet.set_budget(parse_budget_spec("100000/day"))
        _, key = wallet.create_app("bench", budget=parse_budget_spec("100000/day"))
        engine = wallet.new_engine(port=0)
        engine.start()
        url = f"http://127.0.0.1:{engine.port}/v1/chat/completions"
        headers = {"Authorization": f"Bearer {key}"}
        run_wrk(url, BODY, headers, duration_s=2, connections=32).check()  # warm-up
        gc.callbacks.append(on_gc)
        r = run_wrk(url, BODY, headers, duration_s=seconds, connections=32, max_requests=10**6)
        gc.callbacks.remove(on_gc)
        r.check()
        engine.stop()
        wallet.close()
    finally:
        fake.terminate()
        fake.wait(10)
    per_k = 1000 / r.requests
    return {
        "requests": r.requests,
        "rps": r.rps,
        "gen0": counts[0] * per_k,
        "gen1": counts[1] * per_k,
        "gen2": counts[2] * per_k,
        "pause_us_per_request": spent[0] * 1e6 / r.requests,
        "threshold": gc.get_threshold()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--mode", choices=["default", "tuned"])
    args = ap.parse_args()
    if args.mode:
        print(json.dumps(measure(args.mode, args.seconds)))
        return
    rows = {}
    for mode in ("default", "tuned", "default", "tuned"):  # interleaved: two rounds
        out = subprocess.run(
            [sys.executable, __file__, "--mode", mode, "--seconds", str(args.seconds)],
            capture_output=True,
            text=True,
            timeout=args.seconds + 120,
            check=True,
        )
        rows.setdefault(mode, []).append(json.loads(out.stdout.strip().splitlines()[-1]))
    print("| collector | req/s | gen 0 / 1 / 2 collections per 1,000 requests | pause µs/request |")
    print("|---|---:|---:|---:|")
    for mode, runs in rows.items():
        avg = {k: sum(r[k] for r in runs) / len(runs) for k in runs[0]}
        print(
            f"| {mode} (gen 0 every {int(avg['threshold'])}) | {avg['rps']:,.0f} | "
            f"{avg['gen0']:.1f} / {avg['gen1']:.1f} / {avg['gen2']:.2f} | "
            f"{avg['pause_us_per_request']:.1f} |"
        )


if __name__ == "__main__":
    main()
