"""The leak scan (tests/leakscan.py) really finds keys, reports them safely, and fails runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import leakscan
from fakeupstream import ANTHROPIC_KEY, OPENAI_KEY

TESTS = Path(__file__).resolve().parent


def planted_key() -> str:
    # built, never written as one literal: the source scan must not pick it up as a real key
    return "sk-" + "planted-" + uuid.uuid4().hex


def test_scanner_finds_planted_keys_at_their_offsets_and_skips_the_os_keyring(
    tmp_path, monkeypatch
):
    key = planted_key()
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "wallet.sqlite3-wal").write_bytes(b"\x00" * 100 + key.encode())
    (tmp_path / "clean.log").write_text("nothing to see " * 100)
    keyring = tmp_path / "os-keyring" / "keyring.json"
    keyring.parent.mkdir()
    keyring.write_text(json.dumps({"aiwallet/w\0provider:openai": key}))
    # a key straddling a chunk boundary, and twice in one file
    monkeypatch.setattr(leakscan, "CHUNK", 64)
    (tmp_path / "big.bin").write_bytes(b"x" * 50 + key.encode() + b"y" * 200 + key.encode())

    hits = leakscan.scan_paths([tmp_path], [key, OPENAI_KEY])
    found = sorted((Path(h.where).name, h.offset) for h in hits)
    assert found == [("big.bin", 50), ("big.bin", 250 + len(key)), ("wallet.sqlite3-wal", 100)]
    assert all(h.key == key for h in hits)
    assert key not in str(hits[0]) and "at byte" in str(hits[0])  # reported by hint only
    # the keyring stand-in is the only exclusion, and only under its own name
    assert leakscan.is_excluded(keyring)
    assert not leakscan.is_excluded(tmp_path / "keyring.json")


def test_the_key_list_holds_every_configured_provider_key():
    keys = leakscan.provider_keys()
    assert {OPENAI_KEY, ANTHROPIC_KEY} <= keys
    from test_cli import KEY as CLI_KEY
    from test_key_leak import KEYS as LEAK_KEYS
    from vault.test_vault import KEY as VAULT_KEY

    assert {CLI_KEY, VAULT_KEY, *LEAK_KEYS} <= keys
    assert not keys & leakscan.NOT_PROVIDER_KEYS


def test_the_shared_fake_upstream_is_teed(fake):
    """The session's ``fake`` (tests/conftest.py) is the fixture every in-process test talks
    to: what it serves reaches the scan."""
    import httpx

    before = len(leakscan._recorded)
    resp = httpx.get(
        fake.base_url + "/v1/models", headers={"Authorization": f"Bearer {OPENAI_KEY}"}, timeout=5
    )
    assert resp.status_code == 200
    assert len(leakscan._recorded) == before + 1
    assert leakscan._recorded[-1] is fake.served[-1]


INNER_TEST = """
import types

import pytest

import leakscan

KEY = {key!r}


class FakeUpstream:  # stands in for fakeupstream.FakeUpstream: its record gets teed
    def __init__(self):
        self.record = types.SimpleNamespace(add=lambda served: None)


@pytest.fixture
def upstream():
    return FakeUpstream()


def test_writes(tmp_path, upstream):
    leakscan.register_key(KEY)
    answer = ("data: " + (KEY if {leak!r} else "hello") + "\\n\\n").encode()
    upstream.record.add(types.SimpleNamespace(path="/v1/chat/completions", raw_out=answer))
    (tmp_path / "os-keyring").mkdir()
    (tmp_path / "os-keyring" / "keyring.json").write_text(KEY)  # allowed: the OS keyring
    (tmp_path / "audit.log").write_text("prefix " + (KEY if {leak!r} else "no key here"))
"""


def run_inner(tmp_path: Path, leak: bool) -> subprocess.CompletedProcess[str]:
    key = planted_key()
    root = tmp_path / ("leaky" if leak else "clean")
    root.mkdir()
    (root / "test_inner.py").write_text(INNER_TEST.format(key=key, leak=leak))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "leakscan",
            "-p",
            "no:cacheprovider",
            f"--basetemp={root / 'base'}",
            str(root / "test_inner.py"),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(TESTS), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        timeout=120,
    )
    assert key not in proc.stdout + proc.stderr  # never the whole key
    return proc


def test_a_session_that_leaks_a_key_fails_and_names_the_file(tmp_path):
    proc = run_inner(tmp_path, leak=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "1 passed" in out  # the test itself passed: the session fails on the leak
    assert "audit.log at byte 7: provider key sk-plan" in out
    assert "response /v1/chat/completions #0 at byte 6: provider key sk-plan" in out
    assert "keyring.json" not in out


def test_a_clean_session_passes(tmp_path):
    proc = run_inner(tmp_path, leak=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "leakscan: no provider key" in out and " in 1 files" in out
    assert ", 1 fake upstream records or " in out


RECEIVING_TEST = """
import http.server
import threading

import httpx
import pytest

import leakscan

KEY = {key!r}


class Leaky(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("a" * 100 + KEY).encode() if self.path == "/body" else b"{{}}"
        self.send_response(200)
        if self.path == "/header":
            self.send_header("x-request-id", KEY)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    srv = http.server.HTTPServer(("127.0.0.1", 0), Leaky)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv
    srv.shutdown()


def test_receives(server):
    leakscan.register_key(KEY)
    base = f"http://127.0.0.1:{{server.server_port}}"
    assert httpx.get(base + "/body").status_code == 200
    assert httpx.get(base + "/header").status_code == 200
"""


def test_a_key_in_a_response_a_test_received_fails_the_session(tmp_path):
    """Everything an httpx client (so the openai and anthropic SDKs) received is scanned:
    the body at its byte offset, and the header lines."""
    key = planted_key()
    root = tmp_path / "receiving"
    root.mkdir()
    (root / "test_inner.py").write_text(RECEIVING_TEST.format(key=key))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "leakscan", "-p", "no:cacheprovider",
         f"--basetemp={root / 'base'}", str(root / "test_inner.py")],
        cwd=root, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(TESTS), "PYTHONDONTWRITEBYTECODE": "1",
             "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert key not in out
    assert proc.returncode == 1 and "1 passed" in out, out
    assert re.search(r"response from http://127\.0\.0\.1:\d+/body at byte 100: provider key", out)
    assert re.search(r"response from http://127\.0\.0\.1:\d+/header \(headers\) at byte", out)


def test_the_received_scan_finds_a_key_cut_across_chunks_and_exempts_only_echoing_fakes(fake):
    import httpx

    key = planted_key()
    leakscan.register_key(key)
    scan = leakscan.ReceivedScan("response from test", leakscan.provider_keys())
    before = len(leakscan._received_hits)
    data = b"x" * 10 + key.encode() + b"y" * 10
    for i in range(0, len(data), 7):  # 7-byte chunks: the key is cut many times
        scan.feed(data[i : i + 7])
    found = leakscan._received_hits[before:]
    del leakscan._received_hits[before:]  # planted on purpose: not a leak of this session
    assert [(h.offset, h.key) for h in found] == [(10, key)]
    echoing = httpx.Headers({"x-fake-echoes-key": "1"})
    # a fake in echo mode, on its own port: exempt; the same header from any other port: not
    assert leakscan.received_scan(httpx.URL(fake.base_url + "/v1/x"), echoing) is None
    other = leakscan.received_scan(httpx.URL("http://127.0.0.1:1/v1/x"), echoing)
    assert other is not None
