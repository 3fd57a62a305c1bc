"""What the CLI's checks cost: one admin call (listener check + challenge + signed request)
against a plain GET /healthz on a new connection, on an in-process engine, same run.

    PYTHONPATH=src:tests python bench/admin_call.py [--calls 200]

Prints the median and p95 of each step in milliseconds. Bounded: ``--calls`` (at most 5,000)
iterations of each, each with a 3 s timeout.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from benchkit import bench_env

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def timed(fn: Callable[[], object], calls: int) -> list[float]:
    out = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def line(name: str, ms: list[float]) -> str:
    p95 = statistics.quantiles(ms, n=20)[-1]
    return f"{name:<44} median {statistics.median(ms):7.2f} ms   p95 {p95:7.2f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    calls = min(max(parser.parse_args().calls, 20), 5000)
    with tempfile.TemporaryDirectory() as tmp:
        bench_env(Path(tmp))
        from aiwallet.engine import listener
        from aiwallet.engine.client import reach
        from aiwallet.paths import DataDir
        from aiwallet.service import Wallet

        data_dir = DataDir(Path(tmp) / "wallet")
        wallet = Wallet.open(data_dir)
        engine = wallet.new_engine(port=0)
        engine.start()
        try:
            record = listener.read_record(data_dir.engine_file)
            assert record is not None
            url = engine.url

            def healthz() -> None:
                assert httpx.get(url + "/healthz", timeout=3).status_code == 200

            def admin() -> None:
                assert reach(data_dir, "GET", "/admin/v1/status").answered

            results = {
                "baseline: GET /healthz (new connection)": timed(healthz, calls),
                "listener check (process + /proc/net)": timed(
                    lambda: listener.verify(record), calls
                ),
                "admin call: check + challenge + signed GET": timed(admin, calls),
            }
        finally:
            engine.stop()
            wallet.close()
    print(f"{calls} calls each")
    for name, ms in results.items():
        print(line(name, ms))
    base = statistics.median(results["baseline: GET /healthz (new connection)"])
    full = statistics.median(results["admin call: check + challenge + signed GET"])
    print(f"admin call / baseline: {full / base:.1f}x")


if __name__ == "__main__":
    main()
