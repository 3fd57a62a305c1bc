"""Things that listen where the engine should: an impostor that records every byte it is sent
(and answers like an engine that does not know the token), and a man in the middle that
forwards bytes to the real engine and records them. Plain sockets on loopback, each on its own
thread, stopped by :meth:`close`; every loop is bounded by a stop flag and socket timeouts."""

from __future__ import annotations

import json
import select
import socket
import threading


class _Server:
    def __init__(self, port: int = 0) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.1)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[bytes] = []  # every byte sent to it, one entry per connection
        self.connections = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                index = len(self.received)
                self.received.append(b"")
            th = threading.Thread(target=self._serve, args=(conn, index), daemon=True)
            th.start()
            self._threads.append(th)

    def _record(self, index: int, data: bytes) -> None:
        with self._lock:
            self.received[index] += data

    def _serve(self, conn: socket.socket, index: int) -> None:
        raise NotImplementedError

    @property
    def everything(self) -> bytes:
        with self._lock:
            return b"".join(self.received)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._accepter.join(5)
        for th in self._threads:
            th.join(5)


class Impostor(_Server):
    """Answers every request with 200 and a challenge whose proof is made up."""

    ANSWER = json.dumps(
        {"nonce": "A" * 32, "instance": "fake", "proof": "0" * 64, "expires_in_s": 30}
    ).encode()

    def _serve(self, conn: socket.socket, index: int) -> None:
        conn.settimeout(0.2)
        with conn:
            buf = b""
            for _ in range(200):  # at most ~40 s of a connection, then it is dropped
                if self._stop.is_set():
                    return
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                self._record(index, data)
                buf += data
                while b"\r\n\r\n" in buf:  # one answer per request head (no bodies expected)
                    _, buf = buf.split(b"\r\n\r\n", 1)
                    head = (
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: " + str(len(self.ANSWER)).encode() + b"\r\n\r\n"
                    )
                    conn.sendall(head + self.ANSWER)


class Forwarder(_Server):
    """Forwards each connection to ``127.0.0.1:target`` byte for byte (but the Host header),
    recording what it forwarded from the client."""

    def __init__(self, target: int) -> None:
        self.target = target
        super().__init__()

    def _serve(self, conn: socket.socket, index: int) -> None:
        own_host = f"Host: 127.0.0.1:{self.port}".encode()
        target_host = f"Host: 127.0.0.1:{self.target}".encode()
        with conn, socket.create_connection(("127.0.0.1", self.target), timeout=5) as up:
            for _ in range(2000):  # each select waits at most 0.05 s
                if self._stop.is_set():
                    return
                ready, _, _ = select.select([conn, up], [], [], 0.05)
                for s in ready:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    if s is conn:  # with the Host the engine wants (it checks it)
                        data = data.replace(own_host, target_host)
                        self._record(index, data)
                        up.sendall(data)
                    else:
                        conn.sendall(data)


def split_requests(stream: bytes) -> list[bytes]:
    """The HTTP/1.1 requests in what a client sent on one connection (heads + bodies)."""
    out: list[bytes] = []
    while stream:
        head, sep, rest = stream.partition(b"\r\n\r\n")
        if not sep:
            break
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        out.append(head + sep + rest[:length])
        stream = rest[length:]
    return out
