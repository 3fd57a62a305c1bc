"""Photograph the notebook helper in JupyterLab (light and dark) for the README.

    python scripts/notebook_screenshots.py [OUT_DIR]      # default docs/screenshots

What it does, all on loopback:
- installs JupyterLab and anywidget into a throw-away environment of their own
  (``scripts/.venv-jupyterlab``; JupyterLab is not one of the project's dependencies);
- starts the fake upstream (tests/fakeupstream) and a real engine on a fresh data dir whose
  notebook app already spent a little earlier today (so the chart has a history);
- starts JupyterLab with a kernel running this project's Python (so ``aiwallet.notebook`` is
  the one in this checkout), and answers the notebook's connect request itself, as the
  wallet's owner would with ``aiwallet consent approve``;
- drives headless Chromium over the DevTools protocol: opens the notebook, runs every cell,
  waits for the widget, and saves ``notebook-light.png`` and ``notebook-dark.png``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import httpx
import nbformat
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from aiwallet.domain.cost import cost_of  # noqa: E402
from aiwallet.domain.money import parse_budget_spec  # noqa: E402
from aiwallet.domain.usage import TokenSource, Usage  # noqa: E402
from aiwallet.domain.windows import window_for  # noqa: E402
from aiwallet.engine.client import AdminAuth  # noqa: E402
from aiwallet.notebook.grants import GrantStore, Remembered  # noqa: E402
from aiwallet.paths import DataDir  # noqa: E402
from aiwallet.service import Wallet  # noqa: E402
from aiwallet.store import schema as t  # noqa: E402
from aiwallet.store.budgets import counter_key  # noqa: E402
from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY, FakeUpstream  # noqa: E402

LAB_ENV = ROOT / "scripts" / ".venv-jupyterlab"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
APP = "sales-analysis"
PURPOSE = "summarise the weekly sales notes"
NOTEBOOK = [
    "%load_ext aiwallet",
    f'aw.connect("{APP}", budget="1/day", models=["gpt-4o-mini", "claude-sonnet-4-5"],\n'
    f'           purpose="{PURPOSE}", show_budget=False)',
    "from openai import OpenAI\n\n"
    "client = OpenAI()\n"
    'reply = client.chat.completions.create(model="gpt-4o-mini",\n'
    '    messages=[{"role": "user", "content": "Summarise: sales up 4% in the north."}])\n'
    "print(reply.choices[0].message.content)",
    "import anthropic\n\n"
    'msg = anthropic.Anthropic().messages.create(model="claude-sonnet-4-5", max_tokens=200,\n'
    '    messages=[{"role": "user", "content": "Three risks for next quarter."}])\n'
    "print(msg.content[0].text)",
    "aw.budget()",
]


def lab_python() -> Path:
    """JupyterLab's own environment, with the same anywidget as the kernel's."""
    py = LAB_ENV / "bin" / "python"
    if not (LAB_ENV / ".ready").exists():
        import anywidget

        subprocess.run([sys.executable, "-m", "venv", str(LAB_ENV)], check=True)
        subprocess.run(
            [str(py), "-m", "pip", "install", "--quiet", "jupyterlab>=4.2,<5",
             f"anywidget=={anywidget.__version__}"],
            check=True,
        )  # fmt: skip
        (LAB_ENV / ".ready").write_text("ok\n")
    return py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed_history(wallet: Wallet, app_id: int) -> None:
    """Spend earlier in today's window (the chart's history), with the counter the engine
    would have left."""
    price = wallet.catalog.get("openai", "gpt-4o-mini")
    assert price is not None
    budget = wallet.budgets.app_budget(app_id)
    assert budget is not None
    now = datetime.now(UTC)
    window = window_for(budget.period, now, wallet.timezone)
    span = (now - window.start).total_seconds()
    ledger, requests = [], []
    for i, share in enumerate((0.12, 0.2, 0.34, 0.41, 0.55, 0.62, 0.7, 0.78, 0.985)):
        ts = window.start + timedelta(seconds=span * share)
        usage = Usage(input_tokens=200_000 + 30_000 * i, output_tokens=40_000 + 5000 * i,
                      source=TokenSource.PROVIDER)  # fmt: skip
        cost = cost_of(usage, price).nano
        rid = "req_" + uuid.uuid4().hex
        requests.append({
            "id": rid, "ts": ts, "app_id": app_id, "endpoint": "/v1/chat/completions",
            "model": "gpt-4o-mini", "provider": "openai", "input_tokens": usage.input_tokens,
            "cache_read_tokens": 0, "cache_write_tokens": 0,
            "output_tokens": usage.output_tokens, "reasoning_tokens": 0, "cost_nano": cost,
            "token_source": "provider", "latency_ms": 900, "ttfb_ms": 200, "status": 200,
            "error_code": None, "stream": False,
        })  # fmt: skip
        ledger.append({
            "ts": ts, "kind": "spend", "app_id": app_id, "request_id": rid,
            "amount_nano": cost, "provider": "openai", "model": "gpt-4o-mini",
            "price_row_ref": price.ref, "price_row": price.to_json(),
            "token_source": "provider", "note": None,
        })  # fmt: skip
    with wallet.db.begin() as conn:
        conn.execute(insert(t.requests), requests)
        conn.execute(insert(t.ledger), ledger)
        conn.execute(
            insert(t.budget_counters).values(
                budget_id=budget.id, window_key=counter_key(budget, window),
                window_end=window.end, spent_nano=sum(int(e["amount_nano"]) for e in ledger),
                reserved_nano=0,
            )
        )  # fmt: skip


def approver(url: str, token: str, stop: threading.Event) -> None:
    """The wallet's owner: approves the notebook's request (as `aiwallet consent approve`)."""
    auth = AdminAuth(token)  # each request signed for its own challenge
    while not stop.is_set():
        pending = httpx.get(url + "/admin/v1/consent/pending", auth=auth).json()
        for req in pending:
            httpx.post(url + f"/admin/v1/consent/{req['id']}/approve", auth=auth, json={})
        stop.wait(0.2)


class Page:
    """A Chromium tab over the DevTools protocol."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.n = 0

    async def send(self, method: str, **params: object) -> dict:
        self.n += 1
        my = self.n
        await self.ws.send_json({"id": my, "method": method, "params": params})
        while True:
            msg = await self.ws.receive_json()
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def js(self, expr: str) -> object:
        out = await self.send(
            "Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True
        )
        if "exceptionDetails" in out:
            raise RuntimeError(f"{expr[:60]}: {out['exceptionDetails']}")
        return out.get("result", {}).get("value")

    async def until(self, expr: str, what: str, timeout_s: float = 90.0) -> object:
        print(f"  waiting for {what}", flush=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = await self.js(expr)
            if value:
                return value
            await asyncio.sleep(0.25)
        shot = await self.send("Page.captureScreenshot", format="png")
        Path("notebook-screenshot-failed.png").write_bytes(base64.b64decode(shot["data"]))
        raise RuntimeError(f"waited {timeout_s:g} s for {what} (notebook-screenshot-failed.png)")


async def shoot(devtools: str, lab_url: str, out: Path) -> None:
    async with aiohttp.ClientSession() as http:
        targets = await (await http.get(devtools + "/json/list")).json()
        page_ws = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        async with http.ws_connect(page_ws, max_msg_size=64 * 2**20) as ws:
            page = Page(ws)
            await page.send("Emulation.setDeviceMetricsOverride", width=1180, height=1000,
                            deviceScaleFactor=1, mobile=False)  # fmt: skip
            await page.send("Page.enable")
            await page.send("Page.navigate", url=lab_url)
            await page.until(
                "!!(window.jupyterapp && document.querySelector('.jp-Notebook'))", "JupyterLab"
            )
            # should JupyterLab ask which kernel to start: the notebook's own (preselected)
            await page.until(
                "(() => { const ok = document.querySelector('.jp-Dialog .jp-mod-accept');"
                " if (ok) { ok.click(); return false; }"
                " const ws = [...window.jupyterapp.shell.widgets('main')];"
                " return ws.some(w => w.sessionContext && w.sessionContext.session"
                " && w.sessionContext.session.kernel"
                " && w.sessionContext.session.kernel.status === 'idle')"
                " && !document.querySelector('.jp-Dialog'); })()",
                "an idle kernel",
            )
            await page.js("window.jupyterapp.shell.collapseLeft(); true")
            await page.js("void window.jupyterapp.commands.execute('notebook:run-all-cells'); true")
            await page.until(
                "(() => { const p = [...document.querySelectorAll('.jp-InputArea-prompt')]"
                ".map(n => n.textContent); return p.length >= 5 && !p.some(t => t.includes('*'))"
                " && p.every(t => /\\[\\d+\\]/.test(t)); })()",
                "every cell run",
                timeout_s=180,
            )
            await page.until("!!document.querySelector('.aiw .aiw-line')", "the widget's chart")
            await page.js("document.querySelector('.jp-NotebookPanel-notebook')"
                          ".scrollTo(0, 0); true")  # fmt: skip
            for theme, name in (("JupyterLab Light", "light"), ("JupyterLab Dark", "dark")):
                await page.js(
                    f"window.jupyterapp.commands.execute('apputils:change-theme', "
                    f"{{theme: {json.dumps(theme)}}})"
                )
                want = "true" if name == "light" else "false"
                await page.until(f"document.body.dataset.jpThemeLight === '{want}'", theme)
                await asyncio.sleep(1.0)  # let the theme's CSS variables settle
                shot = await page.send("Page.captureScreenshot", format="png")
                path = out / f"notebook-{name}.png"
                path.write_bytes(base64.b64decode(shot["data"]))
                print(f"wrote {path}")


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    if CHROMIUM is None:
        sys.exit("needs Chromium (Debian: apt-get install chromium)")
    py = lab_python()
    work = Path(tempfile.mkdtemp(prefix="aiwallet-nbshots-"))
    env = {
        **os.environ,
        "AIWALLET_HOME": str(work / "wallet"),
        "PYTHON_KEYRING_BACKEND": "keyring_backend.TestFileKeyring",
        "AIWALLET_TEST_KEYRING_FILE": str(work / "os-keyring.json"),
        "PYTHONPATH": str(ROOT / "tests"),
    }
    os.environ.update({k: env[k] for k in ("AIWALLET_HOME", "PYTHON_KEYRING_BACKEND",
                                             "AIWALLET_TEST_KEYRING_FILE")})  # fmt: skip
    fake = FakeUpstream()
    fake.start_in_thread()
    wallet = Wallet.open(DataDir(work / "wallet"))
    wallet.add_provider("openai", kind="openai", api_key=OPENAI_KEY, base_url=fake.base_url + "/v1")
    wallet.add_provider("anthropic", kind="anthropic", api_key=ANTHROPIC_KEY,
                        base_url=fake.base_url)  # fmt: skip
    # the notebook's grant, remembered from an earlier run (as aw.connect leaves it), whose
    # spend earlier today the chart shows
    models = ["gpt-4o-mini", "claude-sonnet-4-5"]
    app, key = wallet.create_app(APP, budget=parse_budget_spec("1/day"), models=models)
    seed_history(wallet, app.id)
    GrantStore(work / "wallet").put(
        Remembered(
            notebook=str(work / "weekly-sales.ipynb"), app=APP, models=models,
            budget="1.00/day", expires_at=None, granted_at=datetime.now(UTC).isoformat(),
            key_prefix=key[:12],
            asked={"name": APP, "budget": "1/day", "models": models, "purpose": PURPOSE},
        ),
        key,
    )  # fmt: skip
    engine = wallet.new_engine(port=0)
    engine.start()
    stop = threading.Event()
    threading.Thread(target=approver, args=(engine.url, engine.admin_token, stop),
                     daemon=True).start()  # fmt: skip

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in NOTEBOOK]
    nb.metadata["kernelspec"] = {"name": "aiwallet", "display_name": "aiwallet (this checkout)",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, work / "weekly-sales.ipynb")
    kdir = work / "jupyter" / "kernels" / "aiwallet"
    kdir.mkdir(parents=True)
    (kdir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "aiwallet (this checkout)", "language": "python",
        "env": {k: env[k] for k in ("AIWALLET_HOME", "PYTHON_KEYRING_BACKEND",
                                    "AIWALLET_TEST_KEYRING_FILE", "PYTHONPATH")},
    }))  # fmt: skip
    settings = work / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    port, token = free_port(), secrets.token_hex(16)
    lab_env = {**env, "JUPYTER_PATH": str(work / "jupyter"),
               "JUPYTER_CONFIG_DIR": str(work / "jupyter-config"),
               "JUPYTER_DATA_DIR": str(work / "jupyter-data")}  # fmt: skip
    lab_log = (work / "jupyterlab.log").open("w")
    lab = subprocess.Popen(
        [str(py), "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
         "--allow-root", "--LabApp.expose_app_in_browser=True",
         f"--LabApp.user_settings_dir={work / 'lab-settings'}",
         f"--LabApp.workspaces_dir={work / 'workspaces'}", "--ServerApp.open_browser=False"],
        env=lab_env, stdout=subprocess.DEVNULL, stderr=lab_log,
    )  # fmt: skip
    browser = None
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{base}/api/status?token={token}", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or lab.poll() is not None:
                raise RuntimeError("JupyterLab did not start")
            time.sleep(0.3)
        log = (work / "chromium.log").open("w+")
        browser = subprocess.Popen(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--no-first-run", "--disable-sync",
             "--disable-component-update", f"--user-data-dir={work / 'chromium'}",
             "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=log,  # a file: a full pipe would stall it
        )  # fmt: skip
        devtools = None
        deadline = time.monotonic() + 30
        while devtools is None and time.monotonic() < deadline:
            m = re.search(r"DevTools listening on ws://([^/]+)/", Path(log.name).read_text())
            if m:
                devtools = f"http://{m.group(1)}"
            else:
                time.sleep(0.1)
        if devtools is None:
            raise RuntimeError("Chromium did not open its DevTools port")
        # a session for the notebook before the page opens: JupyterLab joins it rather than
        # asking which kernel to start
        httpx.post(
            f"{base}/api/sessions?token={token}",
            json={"path": "weekly-sales.ipynb", "type": "notebook", "name": "weekly-sales.ipynb",
                  "kernel": {"name": "aiwallet"}},
            timeout=60,
        ).raise_for_status()  # fmt: skip
        url = f"{base}/lab/tree/weekly-sales.ipynb?token={token}"
        print(f"JupyterLab at {base}, Chromium at {devtools}", flush=True)
        asyncio.run(shoot(devtools, url, out))
    finally:
        stop.set()
        if browser is not None:
            browser.terminate()
            browser.wait(10)
        lab.terminate()
        lab.wait(20)
        engine.stop()
        wallet.close()
        fake.stop()
        if os.environ.get("KEEP_WORK"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
