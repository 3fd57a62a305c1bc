"""What the bench scripts share: the tests' file keyring and fake upstream in a temp dir, and
starting a process that prints its port (``python -m fakeupstream``, ``aiwallet serve``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_env(tmp: Path) -> dict[str, str]:
    """Child environment (and this process's) with the tests' file keyring under ``tmp``."""
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'tests'}",  # this checkout's code
        "PYTHON_KEYRING_BACKEND": "keyring_backend.TestFileKeyring",
        "AIWALLET_TEST_KEYRING_FILE": str(tmp / "keyring.json"),
    }
    os.environ.update({k: env[k] for k in ("PYTHON_KEYRING_BACKEND", "AIWALLET_TEST_KEYRING_FILE")})
    return env


def serve_args(data_dir: Path) -> list[str]:
    """``aiwallet serve`` on a free loopback port (it prints the port)."""
    return [sys.executable, "-m", "aiwallet", "--data-dir", str(data_dir), "serve", "--port", "0"]


FAKE_ARGS = [sys.executable, "-m", "fakeupstream", "--port", "0"]


def spawn_printing_port(
    args: list[str], env: dict[str, str], log: Path | None = None
) -> tuple[subprocess.Popen[str], int]:
    """Start a process that prints its port as its first stdout line; stderr to ``log``."""
    if log is None:
        proc = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env
        )
    else:
        with log.open("w") as err:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.isdigit():
        proc.kill()
        proc.wait(10)
        raise SystemExit(f"could not start {args}: {line!r}" + (f", see {log}" if log else ""))
    return proc, int(line)


LEAN_FAKE_ARGS = [sys.executable, str(ROOT / "bench" / "leanfake.py"), "--port", "0"]

# Run in the engine's own source tree (``--src``), so an older commit's wallet is set up by its
# own code: the provider on the fake, a wallet budget, and an app key (a grant for the model,
# an app budget). Prints the app key.
_SETUP_WALLET = """
import sys
from pathlib import Path
from aiwallet.domain.money import parse_budget_spec
from aiwallet.paths import DataDir
from aiwallet.service import Wallet
root, base_url, api_key = sys.argv[1:4]
w = Wallet.open(DataDir(Path(root)))
w.add_provider("openai", kind="openai", api_key=api_key, base_url=base_url)
w.set_budget(parse_budget_spec("100000/day"))
_, key = w.create_app("bench", budget=parse_budget_spec("100000/day"), models=["gpt-4o-mini"])
w.close()
print(key)
"""


def engine_env(env: dict[str, str], src: Path | None) -> dict[str, str]:
    """``env`` with the engine's code from ``src`` (a source tree: ``src/src`` holds aiwallet)
    instead of this checkout's; the tests' keyring backend still comes from this one."""
    if src is None:
        return dict(env)
    return {**env, "PYTHONPATH": f"{src.resolve() / 'src'}{os.pathsep}{ROOT / 'tests'}"}


def setup_wallet(env: dict[str, str], root: Path, base_url: str, api_key: str) -> str:
    """A wallet in ``root`` (ledger at ``AIWALLET_DATABASE_URL`` when ``env`` sets it) with
    the OpenAI provider at ``base_url``, set up by the code ``env`` runs; the app key."""
    out = subprocess.run(
        [sys.executable, "-c", _SETUP_WALLET, str(root), base_url, api_key],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"could not set up the wallet in {root}: {out.stderr.strip()[-800:]}")
    return out.stdout.strip().splitlines()[-1]


def billed(root: Path, url: str | None) -> dict[str, int]:
    """Spend rows in the ledger (SQLite in data dir ``root``, or the database at ``url``) by
    where their token counts came from (``provider``, ``injected``: the usage the provider
    reported; ``estimated``: counted by the engine because there was none)."""
    import sqlalchemy as sa

    db_url = url or f"sqlite:///file:{root / 'wallet.sqlite3'}?mode=ro&uri=true"
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT coalesce(token_source, 'none'), count(*) FROM ledger "
                    "WHERE kind = 'spend' GROUP BY 1"
                )
            ).all()
    finally:
        engine.dispose()
    return {str(source): int(n) for source, n in rows}


def billed_from_usage(counts: dict[str, int]) -> int:
    """Of ``billed()``'s rows, those priced from the provider's reported usage."""
    return sum(n for source, n in counts.items() if source not in ("estimated", "none"))


def wait_billed(root: Path, url: str | None, answered: int) -> dict[str, int]:
    """``billed()`` once (a bounded wait: 60 s) the ledger has a spend row priced from the
    provider's usage for each of ``answered`` answers, or at the deadline."""
    deadline = time.monotonic() + 60
    counts = billed(root, url)
    while billed_from_usage(counts) < answered and time.monotonic() < deadline:
        time.sleep(0.2)  # settlement is written behind the answer; poll until it lands
        counts = billed(root, url)
    return counts


def fmt(v: float) -> str:
    """A figure for a markdown table: blank for NaN, fewer decimals as it grows."""
    if v != v:  # NaN
        return ""
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    return f"{v:.2f}"


def tree_rss(pid: int) -> int:
    """RSS of ``pid`` and its children, bytes."""
    import psutil

    p = psutil.Process(pid)
    return p.memory_info().rss + sum(
        c.memory_info().rss for c in p.children(recursive=True) if c.is_running()
    )


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its children."""
    import psutil

    p = psutil.Process(pid)
    total = 0.0
    for q in [p, *p.children(recursive=True)]:
        t = q.cpu_times()
        total += t.user + t.system
    return total


def stop(proc: subprocess.Popen[str] | subprocess.Popen[bytes] | None) -> None:
    """Terminate a process this script started (by its handle), killing it after 15 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
