"""The budget widget's front end in real headless Chromium: a page loads the widget's module
(static/widget.js, as anywidget would), renders it with a model holding the state Python
computed, then changes the model as the kernel would (paused, revoked) and reports what the
DOM shows."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import threading
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path

import pytest

from aiwallet.notebook.status import BudgetView, budget_view
from aiwallet.notebook.widget import view_state

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="widget.css"></head><body>
<div id="host"></div><pre id="out">pending</pre>
<script type="module">
import widget from "./widget.js";
const state = %(state)s;
const handlers = {};
const model = {
  get: (k) => state[k],
  set: (k, v) => { state[k] = v; },
  on: (ev, cb) => { (handlers[ev] ||= []).push(cb); },
  off: (ev, cb) => { handlers[ev] = (handlers[ev] || []).filter((f) => f !== cb); },
  save_changes() {},
  send() {},
};
const tick = () => new Promise((r) => setTimeout(r, 0));
const host = document.getElementById("host");
const report = {};
function look(name) {
  const q = (s) => host.querySelector(s);
  report[name] = {
    state: q(".aiw").dataset.state,
    text: q(".aiw").textContent,
    values: [...host.querySelectorAll(".aiw-value")].map((n) => n.textContent),
    banner: q(".aiw-banner") ? q(".aiw-banner").textContent : null,
    line: q(".aiw-line") ? q(".aiw-line").getAttribute("d") : null,
    projection: q(".aiw-projection") ? q(".aiw-projection").getAttribute("d") : null,
    bar: q(".aiw-fill") ? q(".aiw-fill").style.width : null,
    imgs: host.querySelectorAll("img").length,
    width: q(".aiw").getBoundingClientRect().width,
  };
}
function change(update) {
  Object.assign(state, update);
  for (const k of Object.keys(update)) (handlers["change:" + k] || []).forEach((cb) => cb());
}
const cleanup = widget.default ? widget.default.render({model, el: host})
                               : widget.render({model, el: host});
await tick();
look("ok");
change(%(paused)s);
await tick();
look("paused");
change(%(revoked)s);
await tick();
look("revoked");
if (typeof cleanup === "function") cleanup();
change({spent: "$9.99"});
await tick();
report.after_cleanup = host.textContent.includes("$9.99");
document.getElementById("out").textContent = "REPORT " + JSON.stringify(report);
</script></body></html>"""


def _me(now: datetime) -> dict:
    start = now - timedelta(hours=12)
    edges = [start + timedelta(hours=h) for h in range(25)]
    spent = ["0.000000000"] * 24
    spent[3], spent[9], spent[11] = "0.120000000", "0.085000000", "0.041235000"
    return {
        "app": 'notebook <img src=x onerror="document.title=1">',
        "models": ["gpt-4o-mini", "claude-sonnet-4-5"],
        "wallet_paused": False,
        "app_paused": False,
        "now": now.isoformat(),
        "budgets": [
            {
                "scope": "app",
                "budget": "1.00/day",
                "amount_nano": 10**9,
                "spent_usd": "0.246235000",
                "remaining_usd": "0.753765000",
                "window_start": start.isoformat(),
                "resets_at": edges[-1].isoformat(),
            }
        ],
        "series": {"edges": [e.isoformat() for e in edges], "spent_usd": spent},
        "last_hour": {"seconds": 3600, "spent_usd": "0.090000000"},
    }


def render_page(tmp_path: Path, state: dict, *, screenshot: Path | None = None) -> str:
    """Serve the widget's module and a page that renders it; Chromium's DOM after it ran."""
    static = resources.files("aiwallet.notebook").joinpath("static")
    paused = {
        "state": "paused",
        "message": "the wallet is paused: its owner stopped all AI spending",
    }
    revoked = {"state": "revoked", "message": "the wallet's owner revoked this app's access"}
    files = {
        "/page.html": (PAGE % {"state": json.dumps(state), "paused": json.dumps(paused),
                               "revoked": json.dumps(revoked)}).encode(),
        "/widget.js": static.joinpath("widget.js").read_bytes(),
        "/widget.css": static.joinpath("widget.css").read_bytes(),
    }  # fmt: skip
    types = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}

    class Files(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", types[Path(self.path).suffix])
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/page.html"
        args = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--virtual-time-budget=5000",
            "--window-size=520,420",
        ]
        if screenshot is not None:
            subprocess.run(
                [*args, f"--screenshot={screenshot}", url], capture_output=True, timeout=90
            )
        proc = subprocess.run(
            [*args, "--dump-dom", url], capture_output=True, text=True, timeout=90
        )
    finally:
        server.shutdown()
        server.server_close()
    return proc.stdout + "\n" + proc.stderr[-2000:]


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_the_widget_renders_and_follows_its_model_in_chromium(tmp_path):
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    view = budget_view(_me(now), now)
    dom = render_page(tmp_path, view_state(view))
    marker = dom.find("REPORT ")
    assert marker >= 0, dom[-3000:]
    end = dom.find("</pre>", marker)
    import html

    report = json.loads(html.unescape(dom[marker + len("REPORT ") : end]))
    ok, paused, revoked = report["ok"], report["paused"], report["revoked"]
    assert ok["state"] == "ok" and ok["banner"] is None
    assert ok["values"] == ["$0.246235", "$1.00/day", "$0.753765"]
    assert "resets in 12 h 0 min" in ok["text"] and "burning $0.09/h" in ok["text"]
    assert "runs out in 8 h 22 min" in ok["text"]
    assert ok["line"] and ok["line"].startswith("M0.0,") and ok["projection"]
    assert ok["bar"] == "25%"
    assert "models: gpt-4o-mini, claude-sonnet-4-5" in ok["text"]
    # the app's name is text, never markup
    assert ok["imgs"] == 0 and '<img src=x onerror="document.title=1">' in ok["text"]
    assert 300 <= ok["width"] <= 440
    assert paused["state"] == "paused" and paused["banner"].startswith("Paused")
    assert paused["values"] == ok["values"]  # the figures stay while paused
    assert revoked["state"] == "revoked" and revoked["banner"].startswith("Access revoked")
    assert revoked["values"] == []  # nothing to spend: no figures
    assert report["after_cleanup"] is False  # the view let go of the model


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_the_states_without_a_budget_render(tmp_path):
    view = BudgetView("no_wallet", message="No wallet is running")
    dom = render_page(tmp_path, view_state(view))
    assert "REPORT " in dom and "No wallet" in dom, dom[-2000:]
