"""Desktop app: cold start to a usable window, and the Activity page over a long request log.

    .venv/bin/python bench/gui.py [--rows 1000000] [--quick] [--runs 5] [--cache DIR]

Targets (from the issue): (a) cold start to a usable window <= 1.5 s; (b) the Activity page
refreshed over 1M request rows <= 200 ms. Each figure is compared in the same run with a
baseline: the floor any Qt app pays (import PySide6, a bare QMainWindow shown) and the CLI
without Qt for (a); the same page over a 10k-row wallet for (b).

Data dirs are seeded with ``scripts/seed_demo.py`` (rows spread over ``--days``, default a
year) and cached under ``--cache`` (default /tmp/aiwallet-bench-gui), so the next run skips
the seeding (1M rows take a minute or two). Everything runs offscreen (QT_QPA_PLATFORM) with
the tests' file keyring; the engine listens on a free loopback port. The in-process figures
run in child processes (``--harness``), one per data dir, so each starts cold.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

T_PROCESS = time.monotonic()  # first thing: harness children measure from here

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DEFAULT_CACHE = Path("/tmp/aiwallet-bench-gui")
BASELINE_ROWS = 10_000
COLD_TARGET_S, ACTIVITY_TARGET_S = 1.5, 0.200
CHILD_TIMEOUT_S = 120.0
POLL_LIMIT_S = 60.0


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        QT_QPA_PLATFORM="offscreen",
        PYTHON_KEYRING_BACKEND="keyring_backend.TestFileKeyring",
        AIWALLET_TEST_KEYRING_FILE=str(cache / "keyring.json"),
        PYTHONPATH=os.pathsep.join([str(ROOT / "tests"), str(ROOT / "scripts")]),
    )
    env.pop("AIWALLET_EXIT_AFTER_START", None)
    # An installed app runs from compiled bytecode: let the children cache theirs (outside
    # the source tree), even where the shell says PYTHONDONTWRITEBYTECODE.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(cache / "pycache")
    return env


# -- data dirs ------------------------------------------------------------------------------
def data_dir(cache: Path, rows: int, days: int) -> Path:
    """A seeded data dir of ``rows`` requests, made once and reused."""
    root = cache / f"rows-{rows}-days-{days}"
    if (root / ".bench-seeded").is_file():
        return root
    os.environ.update(_env(cache))
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "scripts")]
    from seed_demo import seed

    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"seeding {rows:,} requests over {days} days into {root} ...", flush=True)
    t0 = time.perf_counter()
    seed(tmp, rows, days).close()
    (tmp / ".bench-seeded").write_text(f"{rows}\n")
    tmp.rename(root)
    print(f"  seeded in {time.perf_counter() - t0:.1f} s", flush=True)
    return root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def set_port(cache: Path, root: Path, port: int) -> None:
    """The GUI engine's port preference (the CLI has no flag for it; 0 is not allowed)."""
    code = (
        "import sys; from pathlib import Path; from aiwallet.paths import DataDir\n"
        "from aiwallet.service import Wallet; from aiwallet.preferences import PORT\n"
        "w = Wallet.open(DataDir(Path(sys.argv[1])))\n"
        "w.set_pref(PORT, int(sys.argv[2])); w.close()\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(root), str(port)],
        env=_env(cache), check=True, timeout=CHILD_TIMEOUT_S,
    )  # fmt: skip


# -- (a) cold start -------------------------------------------------------------------------
IMPORT_QT = "import PySide6.QtWidgets"
BARE_QT = (
    "from PySide6.QtCore import QTimer\n"
    "from PySide6.QtWidgets import QApplication, QMainWindow\n"
    "app = QApplication([])\n"
    "w = QMainWindow(); w.resize(1200, 800); w.show()\n"
    "QTimer.singleShot(0, app.quit)\n"
    "app.exec()\n"
)


def wall(cmd: list[str], env: dict[str, str], runs: int) -> list[float]:
    out = []
    for i in range(runs + 1):  # the first, untimed, warms the bytecode and file caches
        t0 = time.perf_counter()
        r = subprocess.run(cmd, env=env, capture_output=True, timeout=CHILD_TIMEOUT_S)
        if i:
            out.append(time.perf_counter() - t0)
        if r.returncode != 0:
            raise SystemExit(f"{cmd} failed ({r.returncode}): {r.stderr.decode()[-2000:]}")
    return out


def cold_start(cache: Path, roots: dict[str, Path], runs: int) -> list[tuple[str, list[float]]]:
    env = _env(cache)
    py = sys.executable
    aiwallet = str(VENV_BIN / "aiwallet")
    rows: list[tuple[str, list[float]]] = [
        ("python -c 'import PySide6.QtWidgets'", wall([py, "-c", IMPORT_QT], env, runs)),
        ("bare QApplication + QMainWindow shown", wall([py, "-c", BARE_QT], env, runs)),
    ]
    for label, root in roots.items():
        status = [aiwallet, "--data-dir", str(root), "status"]
        rows.append((f"aiwallet status, no Qt ({label})", wall(status, env, runs)))
    for label, root in roots.items():
        set_port(cache, root, free_port())
        gui_env = dict(env, AIWALLET_EXIT_AFTER_START="1")
        times = wall([aiwallet, "--data-dir", str(root)], gui_env, runs)
        rows.append((f"aiwallet GUI, window + engine up, exit ({label})", times))
    return rows


# -- in-process harness (child) ---------------------------------------------------------------
def harness(root: Path, runs: int) -> dict[str, Any]:
    """Start the desktop app in this process and time its milestones from the process's
    start, then time the Activity page's refresh and its reads. Prints JSON."""
    import asyncio

    marks: dict[str, float] = {}

    def mark(name: str) -> None:
        marks.setdefault(name, time.monotonic())

    mark("python up, bench module loaded")
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication

    mark("PySide6 imported")
    import qasync

    from aiwallet.gui import theme
    from aiwallet.gui.app import DesktopApp
    from aiwallet.paths import DataDir
    from aiwallet.service import Wallet

    mark("aiwallet.gui imported")
    app = QApplication([])
    theme.apply(app)
    mark("QApplication + theme")
    wallet = Wallet.open(DataDir(root))
    mark("wallet opened")
    loop = qasync.QEventLoop(app, already_running=False)
    asyncio.set_event_loop(loop)
    desktop = DesktopApp(wallet, use_tray=False)
    mark("window built")
    window = desktop.window

    class FirstPaint(QObject):
        def eventFilter(self, obj: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint and "first paint" not in marks:
                w = getattr(obj, "window", None)
                if callable(w) and w() is window:
                    mark("first paint")
            return False

    painted = FirstPaint()
    app.installEventFilter(painted)
    desktop.start(port=0)
    mark("shown, engine starting")

    async def until(cond: Any, what: str) -> None:
        deadline = time.monotonic() + POLL_LIMIT_S
        while not cond():
            if time.monotonic() > deadline:
                raise TimeoutError(what)
            await asyncio.sleep(0.005)
        mark(what)

    result: dict[str, Any] = {}

    async def main() -> None:
        await until(lambda: "first paint" in marks, "first paint")
        await until(lambda: window.overview.loads >= 1, "Overview loaded")
        await until(lambda: desktop.controller.engine is not None, "engine up")
        app.removeEventFilter(painted)
        result["activity"] = await activity(desktop, runs, until)

    try:
        loop.run_until_complete(main())
    finally:
        t_stop = time.monotonic()
        desktop.shutdown()
        wallet.close()
        loop.close()
    result["marks"] = {k: v - T_PROCESS for k, v in marks.items()}
    result["marks"]["(shutdown + wallet close, alone)"] = time.monotonic() - t_stop
    return result


async def activity(desktop: Any, runs: int, until: Any) -> dict[str, float]:
    """Median seconds of ``ActivityPage.refresh`` per chart range and grouping, and of the
    reads it makes, alone."""
    from datetime import UTC, datetime

    from aiwallet.domain.windows import CHART_RANGES, bucket_edges
    from aiwallet.store.reports import RequestFilter

    window, wallet = desktop.window, desktop.controller.wallet
    page = window.activity
    window.show_page(window.pages.index(page))  # shows it: its first load is the warm-up
    await until(lambda: page.loads >= 1, "Activity first load")
    out: dict[str, float] = {}

    async def timed_refresh() -> float:
        t0 = time.perf_counter()
        await page.refresh()
        return time.perf_counter() - t0

    for group in ("app", "model"):
        for name in CHART_RANGES:
            for combo, value in ((page.group, group), (page.range, name)):
                combo.blockSignals(True)  # no reload of their own: we time refresh() alone
                combo.setCurrentIndex(combo.findData(value))
                combo.blockSignals(False)
            await timed_refresh()  # warm-up
            out[f"refresh: {name}, by {group}"] = statistics.median(
                [await timed_refresh() for _ in range(runs)]
            )

    reports, now = wallet.reports, datetime.now(UTC)
    pieces = {
        "spend_series 30 days by day, app": lambda: reports.spend_series(
            bucket_edges("day", 30, now, wallet.timezone), "app"
        ),
        "spend_series 12 months by month, app": lambda: reports.spend_series(
            bucket_edges("month", 12, now, wallet.timezone), "app"
        ),
        "request_page (first 200)": lambda: reports.request_page(RequestFilter(), limit=200),
        "models_used": reports.models_used,
        "app_names": reports.app_names,
    }
    for label, fn in pieces.items():
        fn()
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        out[label] = statistics.median(times)
    return out


def run_harness(cache: Path, root: Path, runs: int) -> dict[str, Any]:
    r = subprocess.run(
        [sys.executable, __file__, "--harness", str(root), "--runs", str(runs)],
        env=_env(cache), capture_output=True, text=True, timeout=CHILD_TIMEOUT_S * 5,
    )  # fmt: skip
    if r.returncode != 0:
        raise SystemExit(f"harness on {root} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


# -- report ---------------------------------------------------------------------------------
def ms(s: float) -> str:
    return f"{s * 1000:,.0f} ms" if s >= 0.0995 else f"{s * 1000:.1f} ms"


def verdict(value: float, target: float) -> str:
    return "meets" if value <= target else "MISSES"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100,000 rows, 3 runs")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--harness", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    runs = max(1, min(args.runs, 50))
    if args.harness is not None:
        print(json.dumps(harness(args.harness, runs)))
        return
    if args.quick:
        args.rows, runs = 100_000, min(runs, 3)
    cache: Path = args.cache
    cache.mkdir(parents=True, exist_ok=True)
    big_label, base_label = f"{args.rows:,} rows", f"{BASELINE_ROWS:,} rows"
    roots = {
        base_label: data_dir(cache, BASELINE_ROWS, args.days),
        big_label: data_dir(cache, args.rows, args.days),
    }

    print(f"\n(a) cold start, wall time of the whole process, median of {runs}")
    cold = cold_start(cache, roots, runs)
    lines = ["| what | median | min | max |", "|---|---:|---:|---:|"]
    for label, times in cold:
        lines.append(
            f"| {label} | {ms(statistics.median(times))} | {ms(min(times))} | {ms(max(times))} |"
        )
    gui_big = statistics.median(cold[-1][1])
    print("\n".join(lines))

    results = {label: run_harness(cache, root, runs) for label, root in roots.items()}
    print("\n(a') in process: seconds from the Python process's start (one cold run each)")
    marks = [f"| milestone | {base_label} | {big_label} |", "|---|---:|---:|"]
    for name in results[big_label]["marks"]:
        marks.append(
            f"| {name} | {ms(results[base_label]['marks'].get(name, float('nan')))}"
            f" | {ms(results[big_label]['marks'][name])} |"
        )
    print("\n".join(marks))

    print(f"\n(b) Activity page: median of {runs} after a warm-up")
    act = [
        f"| what | {base_label} | {big_label} | target 200 ms |",
        "|---|---:|---:|---|",
    ]
    worst = 0.0
    for name, value in results[big_label]["activity"].items():
        base = results[base_label]["activity"][name]
        is_refresh = name.startswith("refresh")
        if is_refresh:
            worst = max(worst, value)
        act.append(
            f"| {name} | {ms(base)} | {ms(value)} | "
            f"{verdict(value, ACTIVITY_TARGET_S) if is_refresh else ''} |"
        )
    print("\n".join(act))
    print(
        f"\nverdicts: (a) cold start {ms(gui_big)} vs 1.5 s: {verdict(gui_big, COLD_TARGET_S)}; "
        f"(b) slowest Activity refresh {ms(worst)} vs 200 ms: "
        f"{verdict(worst, ACTIVITY_TARGET_S)}"
    )


if __name__ == "__main__":
    main()
