"""Live engines in front of the fake upstream (the session's ``fake``, from tests/conftest.py)
for the fuzz tests (the engine tests' rig).

``AIWALLET_FUZZ_LONG=1`` multiplies the number of generated cases (see each module)."""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass

import pytest

from engine.conftest import make_rig

LONG = os.environ.get("AIWALLET_FUZZ_LONG", "") not in ("", "0")


def scaled(short: int, long: int) -> int:
    """A case count: ``short`` by default, ``long`` under AIWALLET_FUZZ_LONG=1."""
    return long if LONG else short


@pytest.fixture
def make_engine(tmp_path, fake):
    """``make_engine(consent_timeout_s=...)``: a fresh wallet and engine, stopped afterwards."""
    made = []

    def make(**engine_kw):
        fake.reset()
        r = make_rig(tmp_path / f"e{len(made)}", fake, **engine_kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.engine.stop()
        r.wallet.close()


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; a repeated header keeps its last value
    body: bytes

    def json(self):
        return json.loads(self.body)


def raw_request(
    port: int,
    method: str,
    path: str,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    host: bytes | None = None,
    timeout_s: float = 10.0,
) -> RawResponse:
    """One HTTP/1.1 request written byte for byte (any header bytes, duplicates, any body), on
    its own connection; the answer read to the end."""
    lines = [f"{method} {path} HTTP/1.1".encode()]
    lines.append(b"Host: " + (host if host is not None else f"127.0.0.1:{port}".encode()))
    lines += [name + b": " + value for name, value in headers]
    lines += [f"Content-Length: {len(body)}".encode(), b"Connection: close"]
    data = b"\r\n".join(lines) + b"\r\n\r\n" + body
    deadline = time.monotonic() + timeout_s
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        chunks = []
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    reply = b"".join(chunks)
    head, sep, rest = reply.partition(b"\r\n\r\n")
    assert sep, f"no complete HTTP answer: {reply[:200]!r}"
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed[name.strip().lower()] = value.strip()
    if parsed.get("transfer-encoding", "").lower() == "chunked":
        rest = _dechunk(rest)
    return RawResponse(int(status_line.split()[1]), parsed, rest)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def ledger_totals(rig) -> tuple[int, int]:
    """``SELECT count(*), sum(amount_nano) FROM ledger`` (0 for an empty sum)."""
    from sqlalchemy import text

    with rig.wallet.db.read() as conn:
        count, total = conn.execute(text("SELECT count(*), sum(amount_nano) FROM ledger")).one()
    return int(count), int(total or 0)


def assert_wire_error(api: str, resp: RawResponse, status: int | None = None) -> str:
    """The body is an error in ``api``'s wire shape ("openai" | "anthropic") with a stable
    code, also in ``x-aiwallet-error-code``; returns the code."""
    from aiwallet.engine.errors import CODES

    body = resp.json()
    if api == "anthropic":
        assert body["type"] == "error" and set(body) == {"type", "error"}, body
        err = body["error"]
        assert isinstance(err["type"], str) and isinstance(err["message"], str), body
    else:
        assert set(body) == {"error"}, body
        err = body["error"]
        assert set(err) == {"message", "type", "param", "code"}, body
    code = err["code"]
    assert code in CODES and resp.headers.get("x-aiwallet-error-code") == code, (body, resp)
    assert err["message"], body
    if status is not None:
        assert resp.status == status, (resp.status, body)
    else:
        assert resp.status == CODES[code][0], (resp.status, body)
    return code
