"""Is the process and the socket that ``engine.json`` names really this wallet's engine?

The CLI runs these checks before it talks to an engine (blocking: it reads /proc or asks
psutil; never call them on an event loop):

- the record is whole: host, port, pid, the process's start time and the engine's instance id;
- the pid is alive, belongs to this OS user, started when the record says (so a pid reused after
  a crash is not taken for the engine) and runs Python or an ``aiwallet`` program;
- every listening socket that could take a connection to host:port belongs to this OS user and
  is open in that pid (Linux: ``/proc/net/tcp{,6}`` gives each listener's uid and inode, and
  ``/proc/<pid>/fd`` holds ``socket:[inode]``; elsewhere psutil, which can list the pid's own
  sockets but not always other users'; then the challenge's proof, adminauth.py, is what
  tells).

A failed check is a :class:`Refusal`: ``stale`` when nothing of the engine is left (its pid is
gone or is another program now, nothing listens), so the record is ignored quietly; not stale
when something else holds the engine's port.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

START_TOLERANCE_S = 1.0  # psutil derives start times from the boot time, which may drift 1 s
_LISTEN = "0A"
_PYTHON = re.compile(r"^(python|pypy)[0-9.]*(\.exe)?$", re.IGNORECASE)


class Refusal(Exception):
    """Why ``engine.json`` does not lead to this wallet's engine."""

    def __init__(self, reason: str, *, stale: bool) -> None:
        super().__init__(reason)
        self.reason, self.stale = reason, stale


@dataclass(frozen=True, slots=True)
class EngineRecord:
    """What a running engine wrote into ``engine.json``."""

    host: str
    port: int
    pid: int
    process_started: float
    instance: str

    @property
    def connect_host(self) -> str:
        """The address the CLI connects to (``localhost`` is taken as 127.0.0.1)."""
        return "127.0.0.1" if self.host == "localhost" else self.host


def read_record(path: Path) -> EngineRecord | None:
    """The record in ``path``; None when there is none. A record without what the checks need
    (written by an older engine, or damaged) is a stale one."""
    try:
        text = path.read_text()
    except OSError:
        return None
    try:
        info = json.loads(text)
        return EngineRecord(
            host=str(info["host"]),
            port=int(info["port"]),
            pid=int(info["pid"]),
            process_started=float(info["process_started"]),
            instance=str(info["instance"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise Refusal(f"{path.name} is incomplete ({type(exc).__name__})", stale=True) from None


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch); None when it is not running."""
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _uid() -> int | None:
    getuid = getattr(os, "getuid", None)
    return int(getuid()) if getuid is not None else None


def check_process(record: EngineRecord) -> None:
    """The record's pid is alive, this user's, the process that wrote the record, and runs
    Python or an aiwallet program; else :class:`Refusal`."""
    pid = record.pid
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            started = proc.create_time()
            uid = _uid()
            if uid is not None:
                if proc.uids().real != uid:
                    raise Refusal(f"pid {pid} belongs to another user", stale=True)
            elif proc.username() != psutil.Process().username():  # pragma: no cover - Windows
                raise Refusal(f"pid {pid} belongs to another user", stale=True)
            if abs(started - record.process_started) > START_TOLERANCE_S:
                raise Refusal(f"pid {pid} is another process now (the engine exited)", stale=True)
            exe = _safe_exe(proc)
            cmdline = proc.cmdline()
    except psutil.NoSuchProcess:
        raise Refusal(f"pid {pid} is not running (the engine exited)", stale=True) from None
    except psutil.AccessDenied:
        raise Refusal(f"pid {pid} belongs to another user", stale=True) from None
    if not looks_like_engine(exe, cmdline):
        raise Refusal(f"pid {pid} is not an aiwallet engine ({Path(exe).name})", stale=True)


def _safe_exe(proc: psutil.Process) -> str:
    try:
        return str(proc.exe())
    except psutil.Error:
        return ""


def looks_like_engine(exe: str, cmdline: list[str]) -> bool:
    """A Python interpreter (``aiwallet serve``, ``python -m aiwallet``, a test running an
    Engine) or a program named aiwallet (the packaged app)."""
    names = [Path(exe).name, *(Path(arg).name for arg in cmdline[:1])]
    if any(_PYTHON.match(n) for n in names if n):
        return True
    return any("aiwallet" in part.lower() for part in [exe, *cmdline[:3]])


# -- the listening socket -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Listener:
    address: str
    port: int
    uid: int
    inode: int


def _decode_address(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    # the kernel prints each 32-bit word of the address in host byte order
    words = (raw[i : i + 4] for i in range(0, len(raw), 4))
    packed = b"".join(int.from_bytes(w, "big").to_bytes(4, sys.byteorder) for w in words)
    return str(ipaddress.ip_address(packed))


def proc_listeners(proc_net: Path = Path("/proc/net")) -> list[Listener] | None:
    """Every listening TCP socket of the machine (Linux); None where /proc does not tell."""
    out: list[Listener] = []
    seen = False
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc_net / name).read_text().splitlines()[1:]
        except OSError:
            continue
        seen = True
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            hexaddr, hexport = fields[1].split(":")
            out.append(
                Listener(_decode_address(hexaddr), int(hexport, 16), int(fields[7]), int(fields[9]))
            )
    return out if seen else None


def _takes(listener_address: str, target: str) -> bool:
    """Could a socket listening on ``listener_address`` take a connection to ``target``?"""
    bound = ipaddress.ip_address(listener_address)
    dest = ipaddress.ip_address(target)
    if isinstance(bound, ipaddress.IPv6Address) and bound.ipv4_mapped is not None:
        bound = bound.ipv4_mapped
    if bound == dest:
        return True
    if bound.is_unspecified:
        # "::" takes IPv4 too unless the socket is IPv6-only, which /proc does not show
        return bound.version == dest.version or bound.version == 6
    return False


def socket_inodes(pid: int) -> set[int]:
    """The inodes of the sockets open in ``pid`` (Linux)."""
    out: set[int] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    try:
        entries = list(os.scandir(fd_dir))
    except OSError:
        return out
    for entry in entries:
        try:
            target = str(Path(entry.path).readlink())
        except OSError:
            continue
        if target.startswith("socket:["):
            out.add(int(target[8:-1]))
    return out


def check_listener(record: EngineRecord, proc_net: Path = Path("/proc/net")) -> str:
    """Every listener that could take a connection to the record's address is this user's and
    open in the record's pid; else :class:`Refusal`. Returns how it was told (``proc``,
    ``psutil``, or ``psutil-own``: only the pid's own sockets could be seen)."""
    target = _resolve(record.connect_host)
    listeners = proc_listeners(proc_net)
    if listeners is None:
        return _check_with_psutil(record, target)
    candidates = [s for s in listeners if s.port == record.port and _takes(s.address, target)]
    where = f"{record.host}:{record.port}"
    if not candidates:
        raise Refusal(f"nothing listens on {where} (the engine exited)", stale=True)
    uid = _uid()
    others = [s for s in candidates if s.uid != uid]
    if others:
        raise Refusal(
            f"the listener on {where} belongs to another user (uid {others[0].uid}), "
            "not to this wallet's engine; nothing was sent to it",
            stale=False,
        )
    inodes = socket_inodes(record.pid)
    if any(s.inode not in inodes for s in candidates):
        raise Refusal(
            f"the listener on {where} is not the engine's (pid {record.pid}); "
            "nothing was sent to it",
            stale=False,
        )
    return "proc"


def _resolve(host: str) -> str:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return socket.gethostbyname(host)


def _laddr(conn: Any) -> tuple[str, int] | None:
    if not conn.laddr:
        return None
    return str(conn.laddr.ip), int(conn.laddr.port)


def _check_with_psutil(record: EngineRecord, target: str) -> str:
    where = f"{record.host}:{record.port}"
    try:
        every = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        every = None
    if every is not None:
        candidates = [
            c
            for c in every
            if c.status == psutil.CONN_LISTEN
            and (a := _laddr(c)) is not None
            and a[1] == record.port
            and _takes(a[0], target)
        ]
        if not candidates:
            raise Refusal(f"nothing listens on {where} (the engine exited)", stale=True)
        if any(c.pid != record.pid for c in candidates):
            raise Refusal(
                f"the listener on {where} is not the engine's (pid {record.pid}); "
                "nothing was sent to it",
                stale=False,
            )
        return "psutil"
    try:  # pragma: no cover - platforms that hide other processes' sockets (macOS)
        own = psutil.Process(record.pid).net_connections(kind="tcp")
    except psutil.Error:  # pragma: no cover
        own = []
    if not any(  # pragma: no cover
        c.status == psutil.CONN_LISTEN
        and (a := _laddr(c)) is not None
        and a[1] == record.port
        and _takes(a[0], target)
        for c in own
    ):
        raise Refusal(f"the engine (pid {record.pid}) does not listen on {where}", stale=True)
    return "psutil-own"  # pragma: no cover


def verify(record: EngineRecord) -> str:
    """Both checks; returns how the listener was told. Raises :class:`Refusal`."""
    check_process(record)
    return check_listener(record)
