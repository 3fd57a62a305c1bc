"""The `aiwallet` command, run as a user runs it."""

import http.server
import json
import os
import sqlite3
import subprocess
import sys
import threading

import pytest

from aiwallet.cli import main

KEY = "sk-proj-cli-SECRET-9f8e7d6c5b4a3210ZYXWVUTS"


def run(*args, stdin=None, env=None, check=True):
    """The real console script in a subprocess (stdin is a pipe, never a terminal)."""
    proc = subprocess.run(
        [sys.executable, "-m", "aiwallet", *args],
        input=stdin,
        capture_output=True,
        text=True,
        # tests/ on the path so that the test keyring backend can be imported
        env={**os.environ, "PYTHONPATH": os.path.dirname(__file__), **(env or {})},
        timeout=60,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def cli(capsys, *args):
    """In-process run, for speed; returns (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


class ModelsHandler(http.server.BaseHTTPRequestHandler):
    expected_key = KEY

    def do_GET(self):
        ok = self.headers.get("Authorization") == f"Bearer {self.expected_key}"
        body = json.dumps(
            {"object": "list", "data": [{"id": "gpt-4o-mini"}, {"id": "o3"}]}
            if ok
            else {"error": {"message": "bad key"}}
        ).encode()
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def upstream():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ModelsHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/v1"
    server.shutdown()
    server.server_close()


def test_add_list_test_remove_provider(capsys, upstream, monkeypatch):
    monkeypatch.setenv("MY_KEY", KEY)
    code, out, _ = cli(
        capsys,
        "providers",
        "add",
        "work",
        "--kind",
        "openai-compatible",
        "--base-url",
        upstream,
        "--api-key-env",
        "MY_KEY",
    )
    assert code == 0 and "Added provider work" in out and "OS keyring" in out
    code, out, _ = cli(capsys, "providers", "list", "--json")
    [p] = json.loads(out)
    assert p["name"] == "work" and p["key_hint"] == "sk-…VUTS" and p["base_url"] == upstream
    code, out, _ = cli(capsys, "providers", "test", "work")
    assert code == 0 and "accepted the key" in out and "2 models" in out
    code, out, _ = cli(capsys, "providers", "list")
    assert "ok" in out.splitlines()[1]
    # a wrong key: the provider says 401 and the CLI says so in one line, exit 1
    ModelsHandler.expected_key = "something-else"
    try:
        code, out, _ = cli(capsys, "providers", "test", "work", "--json")
    finally:
        ModelsHandler.expected_key = KEY
    result = json.loads(out)
    assert code == 1 and result["status"] == 401 and "refused the key" in result["message"]
    code, out, _ = cli(capsys, "providers", "remove", "work")
    assert code == 0
    code, out, _ = cli(capsys, "providers", "list", "--json")
    assert json.loads(out) == []


def test_key_from_stdin_and_never_as_argument():
    proc = run("providers", "add", "openai", stdin=KEY + "\n")
    assert "Added provider openai" in proc.stdout
    # there is no option that takes the key itself
    proc = run("providers", "add", "other", "--kind", "openai", "--api-key", KEY, check=False)
    assert proc.returncode == 2 and "No such option" in proc.stderr
    proc = run("providers", "add", "openai", stdin=KEY, check=False)
    assert (
        proc.returncode == 1
        and proc.stderr.startswith("aiwallet: error:")
        and "--replace" in proc.stderr
    )
    proc = run(
        "providers", "add", "openai", "--replace", stdin="sk-rotated-0000000000000000000000000"
    )
    assert "Replaced provider openai" in proc.stdout


def test_errors_are_one_line_without_traceback():
    cases = [
        (["providers", "remove", "ghost"], "no provider named 'ghost'"),
        (
            ["providers", "add", "openai", "--api-key-env", "UNSET_VAR_XYZ"],
            "UNSET_VAR_XYZ is not set",
        ),
        (["providers", "add", "Bad Name!", "--kind", "openai"], "not a usable provider name"),
        (["providers", "add", "local", "--kind", "openai-compatible"], "needs --base-url"),
        (["catalog", "show", "no-such-model"], "not in the pricing catalog"),
        (["catalog", "update", "--from", "/nonexistent/api.json"], "cannot read"),
    ]
    for args, message in cases:
        proc = run(*args, stdin="", check=False)
        assert proc.returncode == 1, (args, proc.stderr)
        assert proc.stderr.count("\n") == 1 and message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr + proc.stdout


def test_catalog_commands(capsys, tmp_path):
    code, out, _ = cli(capsys, "catalog", "show", "claude-sonnet-4-5")
    assert code == 0 and "$3.00 per 1M" in out and "$3.75 per 1M" in out and "200,000" in out
    code, out, _ = cli(capsys, "catalog", "list", "--provider", "anthropic", "--json")
    rows = json.loads(out)
    assert rows and {r["provider"] for r in rows} == {"anthropic"}
    assert all(isinstance(r["input"], int) for r in rows)
    broken = tmp_path / "api.json"
    broken.write_text('{"openai": {"models": {}}}')
    code, _, err = cli(capsys, "catalog", "update", "--from", str(broken))
    assert code == 1 and "partial" in err


def test_audit_verify_finds_an_edited_row(capsys, tmp_path):
    cli(capsys, "providers", "add", "ollama")
    cli(capsys, "providers", "remove", "ollama")
    code, out, _ = cli(capsys, "audit", "verify", "--json")
    assert code == 0 and json.loads(out) == {
        "ok": True,
        "checked": 2,
        "first_bad_seq": None,
        "problem": None,
    }
    db = sqlite3.connect(tmp_path / "home" / "wallet.sqlite3")
    db.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 1")
    db.commit()
    db.close()
    code, out, _ = cli(capsys, "audit", "verify")
    assert code == 2 and "BROKEN at entry 1" in out


def test_status_and_data_dir(capsys, tmp_path):
    code, out, _ = cli(capsys, "status")
    assert code == 0 and "secret store:  OS keyring" in out and str(tmp_path / "home") in out
    code, out, _ = cli(capsys, "--data-dir", str(tmp_path / "elsewhere"), "status", "--json")
    assert json.loads(out)["data_dir"] == str(tmp_path / "elsewhere")


def test_no_subcommand_without_a_display_says_how_to_run_headless(capsys, monkeypatch):
    # With no subcommand the desktop app starts; without a display it explains instead.
    monkeypatch.setattr("sys.platform", "linux")
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    code, _, err = cli(capsys)
    assert code == 1
    assert "no display" in err and "aiwallet serve" in err
