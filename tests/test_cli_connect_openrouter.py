"""``aiwallet providers connect openrouter``, run as a user runs it: the real console script
in a subprocess, with httpx as the browser the user pastes the printed URL into."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from leakscan import register_key
from orkit.auth import AuthFakeServer
from waiting import wait_until

SRC = Path(__file__).resolve().parent.parent / "src"
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def auth():
    with AuthFakeServer() as server:
        yield server
    for key in server.fake.issued:
        register_key(key)


class Cli:
    """The console script, its stderr read as it comes (the URL is printed before it waits)."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiwallet", *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def url(self) -> str:
        def printed() -> str | None:
            return next((ln.strip() for ln in self.err if ln.strip().startswith("http")), None)

        return wait_until(printed, timeout_s=30, what="the sign-in URL on stderr")

    def finish(self) -> tuple[int, str, str]:
        self.proc.wait(timeout=30)  # not communicate(): it would read stderr too
        self._reader.join(10)
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.proc.stdout.close()
        return self.proc.returncode, out, "".join(self.err)


def browse(url: str) -> httpx.Response:
    with httpx.Client(follow_redirects=True, timeout=15) as client:
        return client.get(url)


def test_connect_prints_the_url_waits_and_stores_the_key(auth, tmp_path):
    cli = Cli(
        "providers",
        "connect",
        "openrouter",
        "--no-browser",
        "--port",
        "0",
        "--auth-url",
        auth.auth_url,
        "--api-base",
        auth.api_base,
    )
    url = cli.url()
    assert url.startswith(auth.auth_url + "?callback_url=http%3A%2F%2Flocalhost%3A")
    page = browse(url)
    assert page.status_code == 200 and "Connected" in page.text
    code, out, err = cli.finish()
    assert code == 0, err
    [key] = auth.fake.issued
    hint = f"{key[:3]}…{key[-4:]}"
    assert out.startswith(f"Connected OpenRouter as provider openrouter; key {hint} is in the ")
    assert "OS keyring" in out
    assert key not in out and key not in err
    # and it is a provider like any other now
    listed = subprocess.run(
        [sys.executable, "-m", "aiwallet", "providers", "list", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])},
        timeout=60,
        check=True,
    )
    [row] = json.loads(listed.stdout)
    assert (row["name"], row["kind"], row["base_url"], row["key_hint"]) == (
        "openrouter",
        "openrouter",
        auth.api_base,
        hint,
    )


def test_connect_json_under_another_name(auth):
    cli = Cli(
        "providers",
        "connect",
        "openrouter",
        "--name",
        "or-work",
        "--no-browser",
        "--port",
        "0",
        "--auth-url",
        auth.auth_url,
        "--api-base",
        auth.api_base,
        "--json",
    )
    browse(cli.url())
    code, out, err = cli.finish()
    assert code == 0, err
    doc = json.loads(out)  # stdout is the document alone; the URL went to stderr
    assert doc["name"] == "or-work" and doc["kind"] == "openrouter"


def test_ctrl_c_cancels_cleanly_and_stores_nothing(auth):
    cli = Cli(
        "providers",
        "connect",
        "openrouter",
        "--no-browser",
        "--port",
        "0",
        "--auth-url",
        auth.auth_url,
        "--api-base",
        auth.api_base,
    )
    url = cli.url()
    callback = parse_qs(urlsplit(url).query)["callback_url"][0]
    port = urlsplit(callback).port
    cli.proc.send_signal(signal.SIGINT)
    code, out, err = cli.finish()
    assert code == 1 and out == "", err
    assert "cancelled; nothing was stored" in err and "Traceback" not in err
    with pytest.raises(httpx.ConnectError):  # the callback server is gone
        browse(callback)
    listed = subprocess.run(
        [sys.executable, "-m", "aiwallet", "providers", "list", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])},
        timeout=60,
        check=True,
    )
    assert json.loads(listed.stdout) == []
    with socket.socket() as sock:  # nobody holds the callback's port any more
        sock.bind(("127.0.0.1", port))


def test_a_bad_name_is_refused_before_any_url_is_printed(auth):
    cli = Cli("providers", "connect", "openrouter", "--name", "Not A Name", "--no-browser")
    code, out, err = cli.finish()
    assert code == 1 and out == "" and "usable provider name" in err and "http" not in err
