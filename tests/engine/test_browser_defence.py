"""Loopback means this machine, not the browser: foreign Origins and Hosts are refused."""

import http.server
import shutil
import subprocess
import threading

import httpx
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PAGE = """<!doctype html><html><body><pre id="out">pending</pre><script>
const out = document.getElementById("out");
const results = [];
async function attempt(name, init) {
  try {
    const r = await fetch("%(engine)s/v1/chat/completions", init);
    results.push(name + ":status=" + r.status);
  } catch (e) {
    results.push(name + ":blocked");
  }
}
(async () => {
  const body = JSON.stringify({model: "gpt-4o-mini", messages: [{role: "user", content: "hi"}]});
  await attempt("cors", {method: "POST", body,
    headers: {"Content-Type": "application/json", "Authorization": "Bearer %(key)s"}});
  await attempt("simple", {method: "POST", body, mode: "no-cors",
    headers: {"Content-Type": "text/plain"}});
  out.textContent = "done " + results.join(" ");
})();
</script></body></html>"""


@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_headless_chromium_page_cannot_use_the_wallet(rig, tmp_path):
    key = rig.app()
    html = (PAGE % {"engine": rig.url, "key": key}).encode()
    origin_hits: list[str] = []

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            origin_hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(html)))
            self.end_headers()
            self.wfile.write(html)

        def log_message(self, *args):
            pass

    page_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=page_server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{page_server.server_port}/attack.html"
        proc = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'chromium'}",
                "--virtual-time-budget=10000",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        page_server.shutdown()
        page_server.server_close()
    assert "/attack.html" in origin_hits
    dom = proc.stdout
    assert "done" in dom, (dom[-500:], proc.stderr[-500:])
    # the CORS request never gets an answer the page may read; the simple one is refused
    assert "cors:blocked" in dom
    assert "simple:status=0" in dom or "simple:blocked" in dom  # opaque to the page
    assert rig.fake.served == []  # nothing reached a provider
    assert rig.ledger_rows() == [] and rig.requests() == []


def test_dns_rebinding_host_is_refused(rig):
    key = rig.app()
    port = rig.engine.port
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    for host in (
        f"attacker.example:{port}",
        "127.0.0.1:1",
        f"localhost.attacker.example:{port}",
        "",
    ):
        resp = httpx.post(
            rig.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {key}", "Host": host},
        )
        assert resp.status_code == 403, host
        assert resp.json()["error"]["code"] == "forbidden_host"
    ok = httpx.post(
        rig.url + "/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}", "Host": f"localhost:{port}"},
    )
    assert ok.status_code == 200
    assert len(rig.fake.served) == 1


def test_browser_origin_refused_unless_allowed(rig):
    key = rig.app()
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    headers = {"Authorization": f"Bearer {key}", "Origin": "http://localhost:3000"}
    resp = httpx.post(rig.url + "/v1/chat/completions", json=body, headers=headers)
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "forbidden_origin"
    assert rig.fake.served == []
    rig.wallet.allow_origin("http://localhost:3000")
    assert (
        httpx.post(rig.url + "/v1/chat/completions", json=body, headers=headers).status_code == 200
    )
