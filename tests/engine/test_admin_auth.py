"""The CLI talks only to the real engine (issue 12): it checks the listener named by
engine.json (pid, start time, socket owner), never sends the admin token (a challenge whose
proof it checks, then one signed request per single-use nonce), and the token is new at every
engine start. Impostors here are real sockets on loopback; the crashed engine is a real
`aiwallet serve` killed with SIGKILL by its pid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from aiwallet.cli import main
from aiwallet.domain.money import parse_budget_spec
from aiwallet.engine import adminauth, listener
from aiwallet.engine.admin import CHALLENGES
from aiwallet.engine.client import AdminAuth, ProofRefused, reach
from aiwallet.notebook.wallet import engine_url
from aiwallet.paths import DataDir
from aiwallet.service import Wallet
from engine.conftest import make_rig
from engine.listeners import Forwarder, Impostor, split_requests
from fakeupstream import OPENAI_KEY
from waiting import wait_until

TESTS = Path(__file__).resolve().parent.parent
SRC = TESTS.parent / "src"


def run_cli(capsys, data_dir: DataDir, *args: str) -> tuple[int, str, str]:
    try:
        main(["--data-dir", str(data_dir.root), *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def point_engine_file_at(data_dir: DataDir, port: int) -> dict:
    """Rewrite engine.json's port (the rest, pid and instance included, stays): what a
    listener on another port would look like to the CLI."""
    info = json.loads(data_dir.engine_file.read_text())
    data_dir.engine_file.write_text(json.dumps({**info, "port": port}))
    return info


# -- the scheme --------------------------------------------------------------------------------
def test_challenge_store_is_single_use_expiring_and_bounded():
    now = [100.0]
    store = adminauth.ChallengeStore(ttl_s=30, capacity=4, clock=lambda: now[0])
    a = store.issue()
    assert store.consume(a) and not store.consume(a)  # single use
    b = store.issue()
    now[0] += 31
    assert not store.consume(b)  # expired
    first = [store.issue() for _ in range(4)]
    later = [store.issue() for _ in range(3)]
    assert len(store) == 4  # bounded: the oldest were dropped
    assert not any(store.consume(n) for n in first[:3])
    assert store.consume(first[3]) and all(store.consume(n) for n in later)
    assert not store.consume("never-issued-nonce-xxxx")


def test_the_proof_and_the_request_mac_are_bound_and_distinct():
    token, nonce = "t" * 43, "n" * 32
    mac = adminauth.request_mac(token, nonce, "POST", "/admin/v1/reload", b"")
    assert mac == adminauth.request_mac(token, nonce, "post", "/admin/v1/reload", b"")
    others = {
        adminauth.request_mac(token, nonce, "GET", "/admin/v1/reload", b""),
        adminauth.request_mac(token, nonce, "POST", "/admin/v1/status", b""),
        adminauth.request_mac(token, nonce, "POST", "/admin/v1/reload", b"{}"),
        adminauth.request_mac(token, "m" * 32, "POST", "/admin/v1/reload", b""),
        adminauth.request_mac("u" * 43, nonce, "POST", "/admin/v1/reload", b""),
    }
    assert mac not in others and len(others) == 5
    # what the engine hands anyone who asks is never a request MAC
    assert adminauth.engine_proof(token, nonce, nonce, "POST") != mac
    header = adminauth.auth_header(nonce, mac)
    assert adminauth.parse_auth_header(header) == (nonce, mac)
    for bad in ("", f"Bearer {token}", header.replace("mac=", "mec="), header + ", x=1"):
        assert adminauth.parse_auth_header(bad) is None


def test_the_engine_takes_signed_requests_once(rig):
    token = rig.engine.admin_token
    nonce_resp = httpx.get(
        rig.url + adminauth.CHALLENGE_PATH, params={"client_nonce": adminauth.new_nonce()}
    )
    nonce = nonce_resp.json()["nonce"]
    mac = adminauth.request_mac(token, nonce, "GET", "/admin/v1/status", b"")
    headers = {"Authorization": adminauth.auth_header(nonce, mac)}
    assert httpx.get(rig.url + "/admin/v1/status", headers=headers).status_code == 200
    again = httpx.get(rig.url + "/admin/v1/status", headers=headers)  # a replay
    assert again.status_code == 401 and "nonce" in again.json()["error"]["message"]
    # a MAC for another target, or under another key, is refused (and uses up its nonce)
    for target, key in (("/admin/v1/reload", token), ("/admin/v1/status", "x" * 43)):
        n = httpx.get(
            rig.url + adminauth.CHALLENGE_PATH, params={"client_nonce": adminauth.new_nonce()}
        ).json()["nonce"]
        forged = adminauth.auth_header(n, adminauth.request_mac(key, n, "GET", target, b""))
        resp = httpx.get(rig.url + "/admin/v1/status", headers={"Authorization": forged})
        assert resp.status_code == 401 and resp.json()["error"]["code"] == "admin_token_required"
        assert (
            httpx.get(rig.url + "/admin/v1/status", headers={"Authorization": forged})
            .json()["error"]["message"]
            .startswith("unknown, used or expired nonce")
        )
    for bad in ("", "x", "ä" * 20, "a" * 129):
        resp = httpx.get(rig.url + adminauth.CHALLENGE_PATH, params={"client_nonce": bad})
        assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_request"


def test_the_engines_challenge_store_is_bounded(rig):
    store = rig.engine._runner.app[CHALLENGES]
    params = {"client_nonce": adminauth.new_nonce()}
    with httpx.Client(base_url=rig.url) as client:
        first = client.get(adminauth.CHALLENGE_PATH, params=params).json()["nonce"]
        for _ in range(adminauth.MAX_NONCES + 50):
            assert client.get(adminauth.CHALLENGE_PATH, params=params).status_code == 200
    assert len(store) == adminauth.MAX_NONCES
    token = rig.engine.admin_token
    mac = adminauth.request_mac(token, first, "GET", "/admin/v1/status", b"")
    resp = httpx.get(
        rig.url + "/admin/v1/status", headers={"Authorization": adminauth.auth_header(first, mac)}
    )
    assert resp.status_code == 401  # pushed out by the flood
    assert httpx.get(rig.url + "/admin/v1/status", auth=AdminAuth(token)).status_code == 200


# -- impostors ---------------------------------------------------------------------------------
def test_a_wrong_proof_is_refused_and_nothing_usable_is_sent(rig, capsys):
    """An impostor listening in this very process (so the socket checks pass) answers the
    challenge without knowing the token: the CLI stops there. It received one challenge
    request with a random client nonce: no token, no MAC."""
    token = rig.engine.admin_token
    app_key = rig.app("notebook", budget="2/day")
    impostor = Impostor()
    try:
        with pytest.raises(ProofRefused):
            httpx.get(f"http://127.0.0.1:{impostor.port}/admin/v1/status", auth=AdminAuth(token))
        point_engine_file_at(rig.data_dir, impostor.port)
        code, _, err = run_cli(capsys, rig.data_dir, "consent", "pending")
        assert code == 1
        assert "no verified engine is running" in err and "does not know the admin token" in err
        code, _, err = run_cli(capsys, rig.data_dir, "budget", "set", "notebook", "0.5/day")
        assert code == 0  # the change is made in the database all the same
        assert "warning" in err and "does not know the admin token" in err
        app = rig.wallet.apps.get("notebook")
        assert rig.wallet.budgets.app_budget(app.id).amount_nano == 500_000_000
        seen = impostor.everything
        requests = [r for conn in impostor.received for r in split_requests(conn)]
        assert requests and all(r.startswith(b"GET /admin/v1/challenge?") for r in requests)
        assert token.encode() not in seen and b"Authorization" not in seen
        assert b"AW-HMAC" not in seen and app_key.encode() not in seen
    finally:
        impostor.close()


def test_a_man_in_the_middle_cannot_replay_or_alter_a_request(tmp_path, fake, capsys):
    """A forwarder between the CLI and the real engine passes the proof along, so the CLI's
    request gets through; but what it captured is good for nothing afterwards."""
    rig = make_rig(tmp_path, fake, consent_timeout_s=30)
    mitm = Forwarder(rig.engine.port)
    try:
        asked = httpx.post(rig.url + "/wallet/v1/connect", json={"app_name": "asker"})
        req_id = asked.json()["id"]
        point_engine_file_at(rig.data_dir, mitm.port)
        code, _, err = run_cli(capsys, rig.data_dir, "consent", "deny", req_id)  # via the mitm
        assert code == 0, err
        assert rig.engine.consent.pending() == []
        captured = [r for conn in mitm.received for r in split_requests(conn)]
        signed = [r for r in captured if r.startswith(b"POST /admin/v1/consent/")]
        assert len(signed) == 1 and rig.engine.admin_token.encode() not in mitm.everything
        (request,) = signed
        asked = httpx.post(rig.url + "/wallet/v1/connect", json={"app_name": "asker2"})
        other_id = asked.json()["id"]
        replays = [
            request,  # as captured
            request.replace(req_id.encode(), other_id.encode()),  # at another request
        ]
        with socket_to(rig.engine.port) as send:
            for replay in replays:
                answer = send(replay)
                assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
                assert b"unknown, used or expired nonce" in answer
        assert [r.id for r in rig.engine.consent.pending()] == [other_id]
    finally:
        mitm.close()
        rig.engine.stop()
        rig.wallet.close()


class socket_to:
    """One connection per request to the engine; returns the raw answer."""

    def __init__(self, port: int) -> None:
        self.port = port

    def __enter__(self):
        import socket

        def send(data: bytes) -> bytes:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                data = data.replace(b"Connection: keep-alive", b"Connection: close")
                if b"Connection: close" not in data:
                    head, sep, body = data.partition(b"\r\n\r\n")
                    data = head + b"\r\nConnection: close" + sep + body
                s.sendall(data)
                chunks = []
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                return b"".join(chunks)

        return send

    def __exit__(self, *exc: object) -> None:
        return None


# -- a crashed engine and what takes its port ------------------------------------------------
class Serve:
    """`aiwallet serve` from this checkout as a subprocess; ended only by its own pid."""

    def __init__(self, data_dir: DataDir, log: Path) -> None:
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aiwallet", "--data-dir", str(data_dir.root), "serve",
             "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env={**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{TESTS}"},
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.kill()
            raise AssertionError(f"serve did not start: {line!r}; see {log}")
        self.port = int(line)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(20)

    def terminate(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        finally:
            self.kill()
            self.log.close()


def test_an_impostor_on_a_crashed_engines_port_gets_nothing(tmp_path, fake, capsys):
    data_dir = DataDir(tmp_path / "wallet")
    wallet = Wallet.open(data_dir)
    try:
        wallet.add_provider("openai", kind="openai", api_key=OPENAI_KEY, base_url=fake.base_url)
        app, _ = wallet.create_app("notebook", budget=parse_budget_spec("1/day"))
        serve = Serve(data_dir, tmp_path / "serve.log")
        try:
            crashed = json.loads(data_dir.engine_file.read_text())
            old_token = data_dir.admin_token.read_text()
            assert stat.S_IMODE(data_dir.admin_token.stat().st_mode) == 0o600
            assert crashed["pid"] == serve.proc.pid and crashed["port"] == serve.port
            code, out, err = run_cli(capsys, data_dir, "consent", "pending", "--json")
            assert code == 0 and json.loads(out) == [], err
            assert engine_url(data_dir.root) == f"http://127.0.0.1:{serve.port}"  # notebooks
        finally:
            serve.kill()  # SIGKILL: engine.json and admin.token stay behind
        assert data_dir.engine_file.exists() and data_dir.admin_token.exists()
        impostor = Impostor(port=crashed["port"])  # another program takes the port
        try:
            code, _, err = run_cli(capsys, data_dir, "budget", "set", "notebook", "3/day")
            assert code == 0 and "warning" not in err  # no engine runs: nothing to tell
            assert wallet.budgets.app_budget(app.id).amount_nano == 3_000_000_000
            code, _, err = run_cli(capsys, data_dir, "consent", "pending")
            assert code == 1 and "no verified engine is running" in err
            assert "engine.json is stale" in err and f"pid {crashed['pid']}" in err
            # the notebook helper, which would send an app key, ignores the file too
            assert engine_url(data_dir.root) is None
            assert impostor.connections == 0 and impostor.everything == b""
        finally:
            impostor.close()
        restarted = Serve(data_dir, tmp_path / "serve.log")
        try:
            again = json.loads(data_dir.engine_file.read_text())
            assert data_dir.admin_token.read_text() != old_token  # never reused
            assert again["instance"] != crashed["instance"]
            code, out, err = run_cli(capsys, data_dir, "consent", "pending", "--json")
            assert code == 0 and json.loads(out) == [], err
        finally:
            restarted.terminate()  # a clean stop removes both files
        assert not data_dir.engine_file.exists() and not data_dir.admin_token.exists()
    finally:
        wallet.close()


def test_a_new_token_at_every_start_and_a_leftover_is_replaced(tmp_path, fake):
    rig = make_rig(tmp_path, fake)
    first = rig.engine.admin_token
    assert rig.data_dir.admin_token.read_text() == first
    rig.engine.stop()
    assert not rig.data_dir.admin_token.exists() and not rig.data_dir.engine_file.exists()
    rig.data_dir.admin_token.write_text("leftover-token-from-a-crash")
    engine = rig.wallet.new_engine(port=0)
    engine.start()
    try:
        token = rig.data_dir.admin_token.read_text()
        assert token == engine.admin_token and token not in (first, "leftover-token-from-a-crash")
        assert stat.S_IMODE(rig.data_dir.admin_token.stat().st_mode) == 0o600
        assert reach(rig.data_dir, "GET", "/admin/v1/status").answered
    finally:
        engine.stop()
        rig.wallet.close()


# -- the listener checks -----------------------------------------------------------------------
def _record(port: int, pid: int | None = None, **kw) -> listener.EngineRecord:
    pid = pid or os.getpid()
    started = listener.process_started(pid)
    assert started is not None
    fields = {"host": "127.0.0.1", "port": port, "pid": pid, "process_started": started,
              "instance": "i"} | kw  # fmt: skip
    return listener.EngineRecord(**fields)


def test_the_process_check():
    listener.check_process(_record(1))  # this test process: Python, this user, its start time
    with pytest.raises(listener.Refusal, match="another process now") as err:
        listener.check_process(_record(1, process_started=12345.0))  # the pid was reused
    assert err.value.stale
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        wait_until(lambda: listener.process_started(sleeper.pid), what="sleep started")
        with pytest.raises(listener.Refusal, match="not an aiwallet engine"):
            listener.check_process(_record(1, pid=sleeper.pid))
        gone = _record(1, pid=sleeper.pid)
    finally:
        os.kill(sleeper.pid, signal.SIGKILL)
        sleeper.wait(10)
    with pytest.raises(listener.Refusal, match="not running") as err:
        listener.check_process(gone)
    assert err.value.stale
    assert listener.looks_like_engine("/usr/bin/python3.11", ["python3", "-m", "aiwallet"])
    assert listener.looks_like_engine("/opt/aiwallet/bin/aiwallet", ["aiwallet", "serve"])
    assert not listener.looks_like_engine("/usr/bin/nc", ["nc", "-l", "8402"])


def test_the_socket_check_on_this_machine(rig):
    """Real sockets: the engine's listener is this process's; a socket this process does not
    hold (a forwarder's in a child) or none at all is refused."""
    assert listener.check_listener(_record(rig.engine.port)) == "proc"
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(listener.Refusal, match="not the engine's") as err:
            listener.check_listener(_record(rig.engine.port, pid=sleeper.pid))
        assert not err.value.stale
    finally:
        os.kill(sleeper.pid, signal.SIGKILL)
        sleeper.wait(10)
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
        with pytest.raises(listener.Refusal, match="nothing listens") as err:
            listener.check_listener(_record(free))
        assert err.value.stale


def _tcp_line(addr_hex: str, port: int, uid: int, inode: int, state: str = "0A") -> str:
    return (
        f"   0: {addr_hex}:{port:04X} 00000000:0000 {state} 00000000:00000000 00:00000000 "
        f"00000000 {uid:5d}        0 {inode} 1 0000000000000000 100 0 0 10 0"
    )


HEADER = (
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout "
    "inode"
)


def test_the_socket_owner_check_reads_proc_net(tmp_path):
    """/proc/net/tcp{,6} as the kernel writes them (addresses in host byte order): a listener
    of another uid on the engine's address, or on the wildcard, is refused."""
    if sys.byteorder != "little":
        pytest.skip("the lines below are written as a little-endian kernel writes them")
    proc_net = tmp_path / "net"
    proc_net.mkdir()
    uid = os.getuid()
    port = 8402
    loop4, any4, loop6 = "0100007F", "00000000", "00000000000000000000000001000000"

    def write(v4: list[str], v6: list[str] = ()) -> None:
        (proc_net / "tcp").write_text("\n".join([HEADER, *v4]) + "\n")
        (proc_net / "tcp6").write_text("\n".join([HEADER, *v6]) + "\n")

    listeners_seen = listener.proc_listeners
    write([_tcp_line(loop4, port, 65534, 111)], [_tcp_line(loop6, port, 0, 222)])
    found = listeners_seen(proc_net)
    assert {(s.address, s.port, s.uid, s.inode) for s in found} == {
        ("127.0.0.1", port, 65534, 111),
        ("::1", port, 0, 222),
    }
    record = _record(port)
    with pytest.raises(listener.Refusal, match=r"another user \(uid 65534\)") as err:
        listener.check_listener(record, proc_net)
    assert not err.value.stale
    write([_tcp_line(any4, port, 65534, 111)])  # the wildcard takes 127.0.0.1 too
    with pytest.raises(listener.Refusal, match="another user"):
        listener.check_listener(record, proc_net)
    write([], [_tcp_line("0" * 32, port, 65534, 111)])  # so may "::"
    with pytest.raises(listener.Refusal, match="another user"):
        listener.check_listener(record, proc_net)
    write([_tcp_line(loop4, port, uid, 999_999_999)])  # ours, but not a socket of that pid
    with pytest.raises(listener.Refusal, match="not the engine's"):
        listener.check_listener(record, proc_net)
    write([_tcp_line(loop4, port, 65534, 111, state="01")])  # established, not listening
    with pytest.raises(listener.Refusal, match="nothing listens") as err:
        listener.check_listener(record, proc_net)
    assert err.value.stale


NOBODY_LISTENER = r"""
import socket, sys
s = socket.create_server(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
s.settimeout(60)
while True:
    conn, _ = s.accept()
    conn.settimeout(5)
    try:
        data = conn.recv(65536)
    except OSError:
        data = b""
    print("GOT", data.hex(), flush=True)
    conn.close()
"""


def test_another_users_listener_is_refused(rig, capsys):
    """An impostor running as `nobody` on the address engine.json names: the socket-owner
    check refuses it before any byte is sent."""
    setpriv, python = shutil.which("setpriv"), "/usr/bin/python3"
    if os.geteuid() != 0 or setpriv is None or not os.access(python, os.X_OK):
        pytest.skip("needs root, setpriv and a system python to run a listener as nobody")
    proc = subprocess.Popen(
        [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", python, "-c",
         NOBODY_LISTENER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd="/",
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.isdigit(), proc.stderr.read() if proc.poll() is not None else line
        port = int(line)
        with pytest.raises(listener.Refusal, match=r"another user \(uid 65534\)") as err:
            listener.check_listener(_record(port))
        assert not err.value.stale
        point_engine_file_at(rig.data_dir, port)
        code, _, err_text = run_cli(capsys, rig.data_dir, "consent", "pending")
        assert code == 1 and "belongs to another user (uid 65534)" in err_text
        code, _, err_text = run_cli(capsys, rig.data_dir, "pause")
        assert code == 0 and "warning" in err_text and rig.wallet.paused
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=10)
    assert "GOT" not in out  # it never saw a connection
