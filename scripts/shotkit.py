"""What the screenshot scripts share: the environment of their child processes (the test
keyring, the sources first on the path) and an X display (Xvfb when there is none)."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child_env(work: Path, *paths: Path) -> dict[str, str]:
    """The environment of a screenshot child: a keyring file in ``work`` (never the user's
    keyring), this checkout's sources first on the path."""
    env = dict(os.environ)
    env["PYTHON_KEYRING_BACKEND"] = "keyring_backend.TestFileKeyring"
    env["AIWALLET_TEST_KEYRING_FILE"] = str(work / "keyring.json")
    parts = [str(ROOT / "src"), str(ROOT / "tests"), *map(str, paths), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(p for p in parts if p)
    return env


@contextlib.contextmanager
def x_display(env: dict[str, str], size: str) -> Iterator[None]:
    """Set ``env`` up for Qt's xcb platform on the display it names, or on an Xvfb of
    ``size`` (``WxHxDEPTH``) started here and ended on exit. Xvfb picks a free display number
    and writes it to a pipe once it accepts clients (``-displayfd``), so nothing waits on a
    clock."""
    xvfb = None
    if not env.get("DISPLAY"):
        if shutil.which("Xvfb") is None:
            sys.exit("screenshots need a display or Debian's xvfb (apt-get install xvfb)")
        read, write = os.pipe()
        xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-screen", "0", size, "-nolisten", "tcp"],
            pass_fds=(write,),
        )
        os.close(write)
        with os.fdopen(read) as ready:
            number = ready.readline().strip()  # empty when Xvfb died before it was ready
        if not number:
            xvfb.wait(10)
            sys.exit(f"Xvfb did not start (exit status {xvfb.returncode})")
        env["DISPLAY"] = f":{number}"
    env["QT_QPA_PLATFORM"] = "xcb"
    try:
        yield
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)


def per_theme_main(
    script: str,
    child: Callable[[Path, Path, str], None],
    *,
    doc: str | None,
    what: str,
    size: str = "1600x1000x24",
    timeout_s: float = 240,
    work_per_theme: bool = False,
) -> None:
    """The ``main`` of a screenshot script: ``SCRIPT [OUT_DIR] [--themes light,dark]`` runs
    ``script --child OUT WORK THEME`` once per theme under an X display (Xvfb when there is
    none), and ``--child`` calls ``child(out, work, theme)`` in that process."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("out", nargs="?", default="docs/screenshots")
    parser.add_argument("--themes", default="light,dark")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        out, work, theme = args.child
        child(Path(out), Path(work), theme)
        return
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"aiwallet-{what.replace(' ', '-')}-shots-"))
    env = child_env(work)
    try:
        with x_display(env, size):
            for theme in args.themes.split(","):
                data = work / theme if work_per_theme else work
                subprocess.run(
                    [sys.executable, script, "--child", str(out), str(data), theme],
                    env=dict(env, AIWALLET_THEME=theme), check=True, timeout=timeout_s,
                )  # fmt: skip
                print(f"wrote {theme} {what} screenshots to {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
