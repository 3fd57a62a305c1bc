"""Bounded admission: pending prompts per process / OS user / in total, the connect rate limit,
the server's header-read and idle timeout, and peer lookups (one per keep-alive connection,
one pass for every lookup waiting at once, bounded in time)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import httpx
import pytest

from aiwallet.engine import peer
from aiwallet.engine.admission import AdmissionLimits
from aiwallet.engine.peer import PeerLookup
from engine.conftest import make_rig
from waiting import wait_until

MANY = 1000


@pytest.fixture
def patient(tmp_path, fake):
    fake.reset()
    rig = make_rig(tmp_path / "patient", fake, consent_timeout_s=30, idle_timeout_s=1.0)
    yield rig
    rig.engine.stop()
    rig.wallet.close()


def limit(rig, **kw) -> None:
    base = {
        "per_process": MANY,
        "per_user": MANY,
        "total": MANY,
        "connect_burst": MANY,
        "connect_per_min": float(MANY),
    }
    rig.engine.consent.set_limits(AdmissionLimits(**{**base, **kw}))


def connect(url: str, name: str = "asker") -> httpx.Response:
    return httpx.post(url + "/wallet/v1/connect", json={"app_name": name})


ASK = textwrap.dedent("""
    import httpx, sys
    r = httpx.post(sys.argv[1] + "/wallet/v1/connect", json={"app_name": "child"})
    h = r.headers
    print(r.status_code, h.get("x-aiwallet-error-code", ""), h.get("retry-after", ""))
""")


def ask_from_another_process(rig) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", ASK, rig.url], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def assert_too_many(resp: httpx.Response, whose: str) -> None:
    assert resp.status_code == 429, resp.text
    assert resp.headers["x-aiwallet-error-code"] == "too_many_pending"
    assert int(resp.headers["Retry-After"]) >= 1
    message = resp.json()["error"]["message"]
    assert whose in message and "wait for an answer" in message


def test_pending_prompts_are_bounded_per_process(patient):
    assert patient.engine.consent.limits == AdmissionLimits()  # the defaults: 4 / 16 / 64
    for i in range(4):
        assert connect(patient.url, f"a{i}").status_code == 202
    assert_too_many(connect(patient.url, "a4"), "this program")
    # another process of the same user still may ask
    assert ask_from_another_process(patient)[0] == "202"
    assert len(patient.engine.consent.pending()) == 5


def test_pending_prompts_are_bounded_per_user_and_in_total(patient):
    limit(patient, per_user=2)
    assert connect(patient.url).status_code == 202
    assert ask_from_another_process(patient)[0] == "202"
    status, code, retry = ask_from_another_process(patient)
    assert (status, code) == ("429", "too_many_pending") and int(retry) >= 1
    assert_too_many(connect(patient.url), "this OS user")
    limit(patient, total=3)
    assert connect(patient.url).status_code == 202
    assert_too_many(connect(patient.url), "the wallet")
    assert len(patient.engine.consent.pending()) == 3


KEYLESS = textwrap.dedent("""
    import json, sys, openai
    client = openai.OpenAI(base_url=sys.argv[1], api_key="none", max_retries=0, timeout=60)
    try:
        msgs = [{"role": "user", "content": "hi"}]
        client.chat.completions.create(model="gpt-4o-mini", messages=msgs)
        print(json.dumps({"status": 200}))
    except openai.APIStatusError as e:
        print(json.dumps({"status": e.status_code, "body": e.body,
                          "retry": e.response.headers.get("retry-after")}))
""")


def test_keyless_prompts_are_bounded_per_user(patient):
    limit(patient, per_user=2)
    held = [
        subprocess.Popen(
            [sys.executable, "-c", KEYLESS, patient.url + "/v1"], stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    wait_until(lambda: len(patient.engine.consent.pending()) == 2, what="two held programs")
    third = subprocess.run(
        [sys.executable, "-c", KEYLESS, patient.url + "/v1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    out = json.loads(third.stdout)
    assert out["status"] == 429 and out["body"]["code"] == "too_many_pending"
    assert int(out["retry"]) >= 1
    for req in list(patient.engine.consent.pending()):
        asyncio.run_coroutine_threadsafe(
            patient.engine.consent.deny(req.id), patient.engine.loop
        ).result(10)
    assert all(json.loads(p.communicate(timeout=60)[0])["status"] == 403 for p in held)
    assert patient.fake.served == []


def test_connect_requests_are_rate_limited_per_user(patient):
    limit(patient, connect_burst=3, connect_per_min=1.0)
    for i in range(3):
        assert connect(patient.url, f"r{i}").status_code == 202
    refused = connect(patient.url, "r3")
    assert refused.status_code == 429 and refused.headers["x-aiwallet-error-code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "connect requests" in refused.json()["error"]["message"]
    # the same OS user from another process shares the bucket
    assert ask_from_another_process(patient)[:2] == ["429", "rate_limited"]
    assert len(patient.engine.consent.pending()) == 3


def _closed_by_server(sock: socket.socket) -> bool:
    """True once the engine has closed ``sock`` (an EOF or a reset), within 10 s."""
    sock.settimeout(10)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_slow_headers_and_idle_connections_are_dropped(patient):
    port = patient.engine.port  # idle_timeout_s=1.0
    idle = socket.create_connection(("127.0.0.1", port))
    slow = socket.create_connection(("127.0.0.1", port))
    stop = threading.Event()
    dropped = threading.Event()

    def slowloris() -> None:
        head = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-Slow: ".encode()
        slow.sendall(head)
        started = time.monotonic()
        # a header byte every 0.1 s, never finishing the head (for at most 20 s)
        while not stop.wait(0.1) and time.monotonic() - started < 20:
            try:
                slow.sendall(b"a")
            except OSError:
                dropped.set()
                return

    sender = threading.Thread(target=slowloris, daemon=True)
    sender.start()
    try:
        # meanwhile a normal request is served, and a long-poll longer than the timeout holds
        assert httpx.get(patient.url + "/healthz").json() == {"ok": True}
        asked = connect(patient.url).json()
        held = httpx.get(
            patient.url + f"/wallet/v1/connect/{asked['id']}",
            params={"wait": 2.5},
            headers={"Authorization": f"Bearer {asked['poll_secret']}"},
            timeout=10,
        )
        assert held.status_code == 200 and held.json()["status"] == "pending"
        assert _closed_by_server(idle)
        assert _closed_by_server(slow) or dropped.wait(10)
    finally:
        stop.set()
        sender.join(10)
        idle.close()
        slow.close()
    # a keep-alive connection answered once is closed after sitting idle
    with socket.create_connection(("127.0.0.1", port)) as keep:
        keep.sendall(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        keep.settimeout(10)
        first = keep.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        assert _closed_by_server(keep)


def test_one_peer_lookup_per_keep_alive_connection(patient):
    peers = patient.engine.consent.peers
    before = peers.lookups
    with httpx.Client() as client:
        for i in range(3):
            resp = client.post(patient.url + "/wallet/v1/connect", json={"app_name": f"k{i}"})
            assert resp.status_code == 202
    assert peers.lookups == before + 1
    assert connect(patient.url, "fresh").status_code == 202  # a new connection: a new lookup
    assert peers.lookups == before + 2


class _Conns:
    """``n`` real loopback connections to a server of this loop; their server-side
    transports are what the engine's lookups are keyed by."""

    def __init__(self) -> None:
        self.transports: list[asyncio.Transport] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def open(self, n: int) -> None:
        arrived = asyncio.Event()

        def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.transports.append(writer.transport)  # type: ignore[arg-type]
            if len(self.transports) == n:
                arrived.set()

        self.server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        for _ in range(n):
            _, w = await asyncio.open_connection("127.0.0.1", port)
            self.writers.append(w)
        await asyncio.wait_for(arrived.wait(), 10)

    async def close(self) -> None:
        for w in self.writers:
            w.close()
        for t in self.transports:
            t.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def test_concurrent_lookups_share_one_pass_and_closed_connections_are_forgotten():
    async def run() -> None:
        lookup = PeerLookup()
        conns = _Conns()
        try:
            await conns.open(80)
            found = await asyncio.gather(*(lookup.lookup(t) for t in conns.transports))
            assert lookup.passes == 1 and lookup.lookups == 80
            assert all(f is not None and f.pid == os.getpid() for f in found)
            assert all(f.uid == os.getuid() for f in found if f is not None)
            again = await lookup.lookup(conns.transports[0])  # cached: no new pass
            assert again == found[0] and lookup.passes == 1
            await conns.close()
            # the cache is swept of closed connections as it grows (amortized: when it has
            # doubled since the last sweep), so it holds about the open ones only
            more = _Conns()
            await more.open(60)
            await asyncio.gather(*(lookup.lookup(t) for t in more.transports))
            assert not any(lookup.cached(t) for t in conns.transports)
            assert all(lookup.cached(t) for t in more.transports)
            await more.close()
        finally:
            lookup.close()

    asyncio.run(run())


def test_a_slow_lookup_is_an_unknown_process_then_the_answer_is_kept(monkeypatch):
    gate = threading.Event()
    real = peer.resolve

    def slow(pairs):
        gate.wait(30)
        return real(pairs)

    monkeypatch.setattr(peer, "resolve", slow)

    async def run() -> None:
        lookup = PeerLookup(timeout_s=0.1)
        conns = _Conns()
        try:
            await conns.open(1)
            assert await lookup.lookup(conns.transports[0]) is None  # took too long
            gate.set()
            lookup.timeout_s = 10
            info = await lookup.lookup(conns.transports[0])
            assert info is not None and info.pid == os.getpid() and lookup.lookups == 1
            await conns.close()
        finally:
            gate.set()
            lookup.close()

    asyncio.run(run())


def test_the_socket_owner_from_the_kernel_matches_the_socket():
    if not sys.platform.startswith("linux"):
        pytest.skip("netlink sock_diag and /proc/net/tcp are Linux's")
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        with socket.socket(family) as srv:
            try:
                srv.bind((host, 0))
            except OSError:
                continue  # no IPv6 loopback here
            srv.listen()
            with socket.create_connection(srv.getsockname()[:2]) as client:
                conn, _ = srv.accept()
                with conn:
                    pair = (conn.getpeername(), conn.getsockname())
                    inode = os.fstat(client.fileno()).st_ino
                    assert peer.netlink_owner(*pair) == (os.getuid(), inode)
                    assert peer.proc_net_owner(*pair) == (os.getuid(), inode)
                    [info] = peer.linux_peers([pair])
                    assert info is not None and info.pid == os.getpid()
                    [fallback] = peer.psutil_peers([pair])
                    assert fallback is not None and fallback.pid == os.getpid()
                    assert fallback.uid == info.uid
