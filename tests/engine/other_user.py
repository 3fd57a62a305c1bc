"""Running a small stdlib HTTP client as another OS user (``nobody``), for tests of what a
second local user can and cannot get from the engine.

The client is the system Python (readable by every user, unlike this suite's virtualenv) with
only the standard library; ``setpriv`` drops to the user's uid and gid with no supplementary
groups. Tests skip, saying why, where the suite does not run as root or the tools are absent.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import textwrap

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"

CLIENT = textwrap.dedent("""
    import http.client, json, sys
    host, port, method, path, token, body = sys.argv[1:7]
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    conn.request(method, path, body=body or None, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = raw.decode("utf-8", "replace")
    print(json.dumps({"status": resp.status, "body": parsed}))
""")


def second_user() -> pwd.struct_passwd:
    """``nobody``, when this suite may act as it; else the test is skipped with the reason."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a client as a second OS user")
    if shutil.which("setpriv") is None or not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip("needs setpriv and a system python3 to run a client as a second OS user")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("this machine has no 'nobody' user")


def as_user(user: pwd.struct_passwd | None, args: list[str]) -> list[str]:
    """``args`` run as ``user`` (None: as this suite's user)."""
    if user is None:
        return args
    return [
        "setpriv",
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--clear-groups",
        "--",
        *args,
    ]


def start_call(
    user: pwd.struct_passwd | None,
    url: str,
    method: str,
    path: str,
    *,
    token: str = "",
    body: object = None,
) -> subprocess.Popen[str]:
    """Start one HTTP call to the engine at ``url`` from the system Python, as ``user``."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    payload = json.dumps(body) if body is not None else ""
    args = [SYSTEM_PYTHON, "-c", CLIENT, host, port, method, path, token, payload]
    return subprocess.Popen(as_user(user, args), stdout=subprocess.PIPE, text=True, cwd="/")


def call(
    user: pwd.struct_passwd | None,
    url: str,
    method: str,
    path: str,
    *,
    token: str = "",
    body: object = None,
) -> dict[str, object]:
    """One HTTP call as ``user``: ``{"status": ..., "body": ...}``."""
    proc = start_call(user, url, method, path, token=token, body=body)
    out, _ = proc.communicate(timeout=90)
    assert proc.returncode == 0, out
    result: dict[str, object] = json.loads(out)
    return result
