"""Screenshots of the consent prompt facing a hostile caller: a real program whose name,
purpose and command line are rich-text markup, line breaks, ESC sequences and a bidi
override, asking a real engine through ``POST /wallet/v1/connect``. Under Xvfb when there
is no display; light and dark; writes ``prompt-hostile-<theme>.png``.

    python scripts/prompt_screenshots.py [OUT_DIR] [--themes light,dark]

Needs Debian's ``xvfb`` (and the Qt xcb libraries); each theme runs in its own process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

NAME = "<b>Program</b><br>Verified: Microsoft Corporation"
PURPOSE = (
    "<table><tr><td><b>Program</b></td><td>C:\\Windows\\explorer.exe</td></tr>"
    "<tr><td><b>Verified</b></td><td>Microsoft Corporation</td></tr></table>"
    "<font color=red size=6>click Allow</font>\nProgram   /usr/bin/gnome-shell\n"
    "\x1b[2J\u202eexe.txt"
)
ARGS = ["--note", "<font color=red>click Allow</font>", "two\nlines", "A" * 400]

CALLER = """
import sys, httpx
url, name, purpose = sys.argv[1:4]
r = httpx.post(url + "/wallet/v1/connect", timeout=10,
               json={"app_name": name, "purpose": purpose, "models": ["gpt-4o-mini"],
                     "budget": "5/day"})
print(r.status_code, flush=True)
sys.stdin.read()
"""


def _child(out: Path, data: Path, theme: str) -> None:
    import asyncio

    import qasync
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from aiwallet.gui import theme as look
    from aiwallet.gui.app import DesktopApp
    from aiwallet.paths import DataDir
    from aiwallet.service import Wallet

    app = QApplication(sys.argv)
    look.apply(app)
    wallet = Wallet.open(DataDir(data))
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    desk = DesktopApp(wallet, use_tray=False)
    caller: subprocess.Popen[str] | None = None

    async def shoot() -> None:
        nonlocal caller
        desk.start(port=0)
        deadline = time.monotonic() + 30
        while desk.controller.engine is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        engine = desk.controller.engine
        assert engine is not None, desk.controller.engine_error
        caller = subprocess.Popen(
            [sys.executable, "-c", CALLER, engine.url, NAME, PURPOSE, *ARGS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while desk.prompts.current is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        prompt = desk.prompts.current
        assert prompt is not None, "no prompt appeared"
        await asyncio.sleep(1.0)  # shown, laid out, painted
        prompt.grab().save(str(out / f"prompt-hostile-{theme}.png"))
        prompt.deny_once()
        app.quit()

    QTimer.singleShot(0, lambda: asyncio.ensure_future(shoot()))
    with loop:
        loop.run_forever()
    if caller is not None:
        assert caller.stdin is not None
        caller.stdin.close()
        caller.wait(10)
    desk.shutdown()
    wallet.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", nargs="?", default="docs/screenshots")
    parser.add_argument("--themes", default="light,dark")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        out, data, theme = args.child
        _child(Path(out), Path(data), theme)
        return
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="aiwallet-prompt-shots-"))
    env = dict(os.environ)
    env["PYTHON_KEYRING_BACKEND"] = "keyring_backend.TestFileKeyring"
    env["AIWALLET_TEST_KEYRING_FILE"] = str(work / "keyring.json")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT / "src"), str(ROOT / "tests"), env.get("PYTHONPATH", "")]
    )
    xvfb = None
    if not env.get("DISPLAY"):
        if shutil.which("Xvfb") is None:
            sys.exit("screenshots need a display or Debian's xvfb (apt-get install xvfb)")
        display = ":96"
        xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1200x24", "-nolisten",
                                 "tcp"])  # fmt: skip
        env["DISPLAY"] = display
        time.sleep(1.0)
    env["QT_QPA_PLATFORM"] = "xcb"
    try:
        for theme in args.themes.split(","):
            child_env = dict(env, AIWALLET_THEME=theme)
            subprocess.run(
                [sys.executable, __file__, "--child", str(out), str(work / theme), theme],
                env=child_env, check=True, timeout=120,
            )  # fmt: skip
            print(f"wrote {out / f'prompt-hostile-{theme}.png'}")
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait(10)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
