"""The cost of scrubbing the wallet's secrets from what apps receive (engine/scrub.py).

    .venv/bin/python bench/scrub.py [--quick]

Two parts, in one run:

* per call: ``Scrubber.scrub`` on a whole answer (a 0.6 KB chat completion, a 1 MB one) and
  on one stream event (a 0.2 KB chunk, a 64 KB one), clean and with a key in it, with the
  secrets of a wallet with 1 and 10 provider keys (each also holds the admin token, the
  session-token key and the receipt-signing key: 7 more text forms), for the matcher as built
  (one Aho-Corasick pass, ahocorasick_rs, over the 8-byte blocks of each secret's body) and,
  for comparison, its fallback (one ``bytes.find`` per block) and one compiled regex
  alternation of the same blocks;
* the proxy: an engine in this process in front of the in-process fake upstream, requests/s
  at concurrency 16 (whole and streamed chat completions) with the scrubber emptied (the
  baseline: nothing to look for) and with 1 and 10 keys, the phases alternated three times
  in the same run. Every phase is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import secrets
import statistics
import string
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from benchkit import bench_env  # noqa: E402

from aiwallet.domain import secretforms  # noqa: E402
from aiwallet.domain.money import parse_budget_spec  # noqa: E402
from aiwallet.domain.secretforms import BLOCK, bytes_forms, public_prefix_len  # noqa: E402
from aiwallet.engine.scrub import Scrubber  # noqa: E402
from aiwallet.paths import DataDir  # noqa: E402
from aiwallet.service import Wallet  # noqa: E402
from fakeupstream import OPENAI_KEY, FakeUpstream  # noqa: E402

ALPHABET = string.ascii_letters + string.digits


def key(prefix: str = "sk-proj-", n: int = 156) -> str:
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(n))


def wallet_secrets(n_keys: int) -> list[tuple[str, str]]:
    keys = [(f"provider {i}", key()) for i in range(n_keys)]
    engine = [
        ("the admin token", secrets.token_urlsafe(32)),
        *(("the session-token key", f) for f in bytes_forms(secrets.token_bytes(32))),
        ("signing key", secrets.token_bytes(32).hex()),
    ]
    return keys + engine


def chat_answer(words: int) -> bytes:
    text = " ".join("word" for _ in range(words))
    return json.dumps(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": words, "total_tokens": 10 + words},
        }
    ).encode()


def chat_event(chars: int) -> bytes:
    chunk = {"id": "c", "choices": [{"index": 0, "delta": {"content": "x" * chars}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


class RegexVariant:
    """The same blocks found by one compiled alternation (the comparison)."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        blocks: set[bytes] = set()
        for _, s in pairs:
            b = s.encode()
            start = public_prefix_len(s)
            if len(b) - start < 2 * BLOCK:
                blocks.add(b)
            else:
                blocks.update(b[o : o + BLOCK] for o in range(start, len(b) - BLOCK + 1, BLOCK))
        self.pattern = re.compile(b"|".join(re.escape(b) for b in sorted(blocks)))

    def scrub(self, data: bytes) -> bytes:
        return data if self.pattern.search(data) is None else b"(slow path)"


def per_call(fn: Callable[[bytes], object], data: bytes, budget_s: float) -> float:
    """Median microseconds per call over batches, within ``budget_s``."""
    batch = max(1, int(2e5 // max(len(data), 1)))
    times: list[float] = []
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline and len(times) < 50:
        t0 = time.perf_counter()
        for _ in range(batch):
            fn(data)
        times.append((time.perf_counter() - t0) / batch * 1e6)
    return statistics.median(times)


def micro(quick: bool) -> None:
    budget = 0.3 if quick else 1.0
    cases = {
        "answer 0.6 KB": chat_answer(80),
        "answer 1 MB": chat_answer(200_000),
        "event 0.2 KB": chat_event(120),
        "event 64 KB": chat_event(64 * 1024),
    }
    print("\nper call, microseconds (median)")
    print(
        f"{'data':<16}{'keys':>5}{'AC: clean':>12}{'with key':>11}"
        f"{'find: clean':>14}{'regex: clean':>15}"
    )
    for n_keys in (1, 10):
        pairs = wallet_secrets(n_keys)
        s = Scrubber(pairs)
        fast = secretforms.MultiSearch
        secretforms.MultiSearch = None
        try:
            fallback = Scrubber(pairs)
        finally:
            secretforms.MultiSearch = fast
        rx = RegexVariant(pairs)
        leaked = pairs[0][1].encode()
        for name, data in cases.items():
            dirty = data[: len(data) // 2] + leaked + data[len(data) // 2 :]
            clean_us = per_call(s.scrub, data, budget)
            hit_us = per_call(s.scrub, dirty, budget)
            find_us = per_call(fallback.scrub, data, budget)
            rx_us = per_call(rx.scrub, data, budget)
            print(
                f"{name:<16}{n_keys:>5}{clean_us:>12.1f}{hit_us:>11.1f}"
                f"{find_us:>14.1f}{rx_us:>15.1f}"
            )


def per_app_keys(quick: bool) -> None:
    """What per-app OpenRouter keys (issue 16: one per app, ``sk-or-v1-`` + 64 hex, so also
    in base64 forms) add to every scrub: 10 provider keys alone, then with 25 and 100 app
    keys, the same data, alternated."""
    budget = 0.3 if quick else 1.0
    base = wallet_secrets(10)
    apps = [(f"app {i}", "sk-or-v1-" + secrets.token_hex(32)) for i in range(100)]
    configs = {"10 keys": base, "+25 app keys": base + apps[:25], "+100 app keys": base + apps}
    scrubbers = {name: Scrubber(pairs) for name, pairs in configs.items()}
    cases = {"answer 0.6 KB": chat_answer(80), "event 0.2 KB": chat_event(120),
             "event 64 KB": chat_event(64 * 1024)}  # fmt: skip
    print("\nper-app keys: per call, microseconds (median of 3 alternated rounds)")
    print("secret forms: " + ", ".join(f"{k} {len(v.secrets)}" for k, v in scrubbers.items()))
    print(f"{'data':<16}" + "".join(f"{name:>16}" for name in configs))
    for name, data in cases.items():
        rounds: dict[str, list[float]] = {k: [] for k in configs}
        for _ in range(3):
            for k, s in scrubbers.items():
                rounds[k].append(per_call(s.scrub, data, budget / 3))
        cells = "".join(f"{statistics.median(v):>16.1f}" for v in rounds.values())
        print(f"{name:<16}{cells}")


async def load(
    url: str, headers: dict[str, str], body: dict, conc: int, n: int, limit_s: float
) -> float:
    done = 0
    ok = 0
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            nonlocal done, ok
            while done < n and time.monotonic() < deadline:
                done += 1
                async with session.post(url, json=body, headers=headers) as r:
                    await r.read()
                    assert r.status == 200, r.status
                    ok += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        return ok / (time.perf_counter() - t0)


def proxy(quick: bool) -> None:
    n, limit_s = (300, 8.0) if quick else (1500, 20.0)
    with tempfile.TemporaryDirectory() as tmp:
        bench_env(Path(tmp))
        fake = FakeUpstream()
        fake.start_in_thread()
        wallet = Wallet.open(DataDir(Path(tmp) / "wallet"))
        wallet.add_provider(
            "openai", kind="openai", api_key=OPENAI_KEY, base_url=fake.base_url + "/v1"
        )
        _, app_key = wallet.create_app("bench", budget=parse_budget_spec("100000/day"))
        engine = wallet.new_engine(port=0)
        engine.start()
        try:
            real = engine.state.scrubber
            extra = [(f"provider {i}", key()) for i in range(9)]
            variants = {
                "baseline (nothing to find)": Scrubber(),
                f"scrubbing ({len(real)} secrets: 1 key)": real,
                "scrubbing (10 keys)": real.with_secrets(extra),
            }
            url = engine.url + "/v1/chat/completions"
            headers = {"Authorization": f"Bearer {app_key}"}
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
            figures: dict[tuple[str, str], list[float]] = {}
            for _ in range(3):
                for name, scrubber in variants.items():
                    engine.state.scrubber = scrubber
                    for kind, b in (("whole", body), ("stream", {**body, "stream": True})):
                        rps = asyncio.run(load(url, headers, b, 16, n, limit_s))
                        figures.setdefault((name, kind), []).append(rps)
                    fake.reset()
            print("\nproxy, requests/s at concurrency 16 (best of 3 alternated rounds)")
            base = {k: max(figures[("baseline (nothing to find)", k)]) for k in ("whole", "stream")}
            for name in variants:
                row = []
                for kind in ("whole", "stream"):
                    best = max(figures[(name, kind)])
                    row.append(f"{kind} {best:7.0f} ({best / base[kind] - 1:+.1%})")
                print(f"{name:<34}" + "   ".join(row))
        finally:
            engine.stop()
            wallet.close()
            fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--per-app", action="store_true", help="only what per-app provider keys add"
    )
    args = parser.parse_args()
    if args.per_app:
        per_app_keys(args.quick)
        return
    micro(args.quick)
    per_app_keys(args.quick)
    proxy(args.quick)


if __name__ == "__main__":
    main()
