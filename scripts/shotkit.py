"""What the screenshot scripts share: the environment of their child processes (the test
keyring, the sources first on the path) and an X display (Xvfb when there is none)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
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
