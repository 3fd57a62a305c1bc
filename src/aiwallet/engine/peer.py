"""Which local process is on the other end of a loopback connection, found without blocking
the engine.

On Linux the client socket's owner (uid) and inode come from the kernel by the connection's
exact 4-tuple (netlink ``sock_diag``, else ``/proc/net/tcp{,6}``), and the pid from the
``/proc/<pid>/fd`` links of that uid's processes only. Elsewhere psutil's socket table is the
fallback. :class:`PeerLookup` runs every lookup on its own worker thread (never the database
pool), answers every lookup waiting at one moment with one pass (single flight), remembers
the answer per connection (its transport) until that connection closes, and gives up after a
bounded time: a lookup that takes too long is "unknown process" (no remembered rule serves
it, and it collects no key bound to a user).
"""

# The /proc scan uses os.* on plain strings: it runs for every new connection, and pathlib's
# objects would double its cost.
# ruff: noqa: PTH115, PTH116, PTH123, PTH208

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import socket
import struct
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiwallet.domain.programs import INLINE, base_name, display_name, is_resolved, script_of

log = logging.getLogger(__name__)

LOOKUP_TIMEOUT_S = 2.0  # a lookup not answered by then is "unknown process"
MAX_BATCH = 256  # lookups answered by one pass
MAX_CACHED = 4096  # connections remembered (closed ones are swept first)

Addr = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int | None
    exe: str | None
    cmdline: tuple[str, ...]
    user: str | None
    uid: int | None = None
    # the script, module or launched command an interpreter runs (domain/programs.py)
    script: str | None = None
    started: float | None = None  # the process's start time (a reused pid has another)

    @property
    def name(self) -> str:
        """What its app is called: the script or module, else the executable's name."""
        return display_name(self.exe, self.script)

    @property
    def label(self) -> str:
        """The name with the interpreter and pid as detail: ``a.py (python3.11, pid 42)``."""
        program = base_name(self.exe or "") or "unknown program"
        if self.script is None:
            name, detail = program, []
        elif self.script == INLINE:
            name, detail = program, [INLINE]
        else:
            name, detail = self.name, [program]
        if self.pid is not None:
            detail.append(f"pid {self.pid}")
        return f"{name} ({', '.join(detail)})" if detail else name

    @property
    def owner(self) -> str | None:
        """The OS user, as compared between a request and whoever polls its answer: the uid
        where the platform has one, else the user name; None when unknown."""
        if self.uid is not None:
            return f"uid:{self.uid}"
        return f"user:{self.user}" if self.user else None

    @property
    def rule_subject(self) -> str | None:
        """What a remembered keyless decision is about: the program, the script it runs
        (null for none) and its OS user, as canonical JSON. None when the program or the user
        is unknown, or the script could not be resolved: then no remembered rule applies."""
        if not self.exe or self.owner is None or not is_resolved(self.script):
            return None
        return program_subject(self.exe, self.owner, self.script)

    @property
    def any_script_subject(self) -> str | None:
        """The subject of a rule widened to any script of this interpreter (``"script": "*"``)."""
        if not self.exe or self.owner is None:
            return None
        return program_subject(self.exe, self.owner, ANY_SCRIPT)

    @property
    def legacy_subject(self) -> str | None:
        """The subject of rules from before the script was part of it (issue 12): only their
        denials apply."""
        if not self.exe or self.owner is None:
            return None
        return json.dumps({"exe": self.exe, "owner": self.owner}, sort_keys=True)

    def same_process(self, other: ProcessInfo | None) -> bool:
        return (
            other is not None
            and self.pid is not None
            and (self.pid, self.exe, self.owner, self.started)
            == (other.pid, other.exe, other.owner, other.started)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "exe": self.exe,
            "cmdline": list(self.cmdline),
            "user": self.user,
            "uid": self.uid,
            "script": self.script,
            "name": self.name,
        }


ANY_SCRIPT = "*"


def program_subject(exe: str, owner: str, script: str | None) -> str:
    """The canonical JSON subject of a ``program`` rule."""
    return json.dumps({"exe": exe, "owner": owner, "script": script}, sort_keys=True)


# -- Linux: the socket's owner from the kernel, the pid from /proc -----------------------------
NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
_NLMSGHDR = struct.Struct("=IHHII")
# inet_diag_req_v2: family, protocol, ext, pad, states; inet_diag_sockid: sport, dport (big
# endian), src[4], dst[4] (big endian words), interface, cookie[2]
_REQ = struct.Struct("=BBBBI")
_SOCKID = struct.Struct(">HH16s16s")
_SOCKID_TAIL = struct.Struct("=III")
_NOCOOKIE = 0xFFFFFFFF
# inet_diag_msg after the header: family, state, timer, retrans, sockid (48), expires,
# rqueue, wqueue, uid, inode
_MSG_UID_INODE = struct.Struct("=II")
_MSG_UID_OFFSET = 4 + 48 + 12


def _packed(ip: str) -> tuple[int, bytes]:
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    family = socket.AF_INET if addr.version == 4 else socket.AF_INET6
    return family, addr.packed.ljust(16, b"\0")


def netlink_owner(client: Addr, server: Addr) -> tuple[int, int] | None:
    """(uid, inode) of the socket ``client`` → ``server`` from sock_diag, by exact 4-tuple;
    None when the kernel does not know it (or netlink is unavailable)."""
    family, src = _packed(str(client[0]))
    family2, dst = _packed(str(server[0]))
    if family != family2:
        return None
    body = (
        _REQ.pack(family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF)
        + _SOCKID.pack(int(client[1]), int(server[1]), src, dst)
        + _SOCKID_TAIL.pack(0, _NOCOOKIE, _NOCOOKIE)
    )
    msg = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, 1, 0)
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG) as nl:
            nl.settimeout(1.0)
            nl.send(msg + body)
            data = nl.recv(65536)
    except OSError:
        return None
    if len(data) < _NLMSGHDR.size:
        return None
    length, kind, _flags, _seq, _pid = _NLMSGHDR.unpack_from(data)
    if kind != SOCK_DIAG_BY_FAMILY or length < _NLMSGHDR.size + _MSG_UID_OFFSET + 8:
        return None  # NLMSG_ERROR: no such socket
    uid, inode = _MSG_UID_INODE.unpack_from(data, _NLMSGHDR.size + _MSG_UID_OFFSET)
    return uid, inode


def _proc_hex(ip: str, port: int) -> str:
    """An address as /proc/net/tcp{,6} prints it (host-order words, upper-case hex)."""
    family, packed = _packed(ip)
    raw = packed[:4] if family == socket.AF_INET else packed
    words = [raw[i : i + 4] for i in range(0, len(raw), 4)]
    text = "".join(struct.pack("=I", int.from_bytes(w, "big")).hex() for w in words)
    return f"{text.upper()}:{port:04X}"


def proc_net_owner(client: Addr, server: Addr) -> tuple[int, int] | None:
    """(uid, inode) of the socket ``client`` → ``server`` from /proc/net/tcp{,6}."""
    family, _ = _packed(str(client[0]))
    name = "/proc/net/tcp" if family == socket.AF_INET else "/proc/net/tcp6"
    local, remote = (
        _proc_hex(str(client[0]), int(client[1])),
        _proc_hex(str(server[0]), int(server[1])),
    )
    try:
        with open(name) as fh:
            next(fh, None)
            for line in fh:
                f = line.split()
                if len(f) > 9 and f[1] == local and f[2] == remote:
                    return int(f[7]), int(f[9])
    except OSError:
        return None
    return None


def pids_of_inodes(wanted: dict[int, int]) -> dict[int, int]:
    """inode → pid for the sockets in ``wanted`` (inode → uid): one pass over /proc that reads
    the fd links of the wanted uids' processes only."""
    found: dict[int, int] = {}
    uids = set(wanted.values())
    links = {f"socket:[{inode}]": inode for inode in wanted}
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return found
    # first the processes that owned the last sockets found (a flood, a busy client), then
    # the engine's own (tests, the desktop app's own calls), then the rest
    first = [*_recent, os.getpid()]
    rank = {pid: i for i, pid in reversed(list(enumerate(first)))}
    pids.sort(key=lambda p: rank.get(p, len(first)))
    for pid in pids:
        base = f"/proc/{pid}"
        try:
            if os.stat(base).st_uid not in uids:
                continue
            fds = os.listdir(base + "/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                inode = links.get(os.readlink(f"{base}/fd/{fd}"))
            except OSError:
                continue
            if inode is not None and inode not in found:
                found[inode] = pid
                _remember(pid)
                if len(found) == len(wanted):
                    return found
    return found


_recent: list[int] = []  # pids whose sockets were found last (most recent first)
RECENT = 8


def _remember(pid: int) -> None:
    if _recent[:1] != [pid]:
        if pid in _recent:
            _recent.remove(pid)
        _recent.insert(0, pid)
        del _recent[RECENT:]


def _describe(pid: int | None, uid: int | None) -> ProcessInfo:
    if pid is None:
        return ProcessInfo(None, None, (), _user_name(uid), uid)
    try:
        import psutil

        proc = psutil.Process(pid)
        with proc.oneshot():
            exe = _safe(proc.exe)
            cmdline = tuple(_safe(proc.cmdline) or ())
            user = _safe(proc.username)
            if uid is None:
                uids = _safe(proc.uids)
                uid = uids.real if uids is not None else None
            started = _safe(proc.create_time)
            cwd = _safe(proc.cwd)
        script = script_of(exe or (cmdline[0] if cmdline else ""), cmdline, cwd)
        return ProcessInfo(pid, exe, cmdline, user or _user_name(uid), uid, script, started)
    except Exception:
        return ProcessInfo(pid, None, (), _user_name(uid), uid)


def _user_name(uid: int | None) -> str | None:
    if uid is None:
        return None
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def linux_peers(pairs: Sequence[tuple[Addr, Addr]]) -> list[ProcessInfo | None]:
    """The processes behind ``pairs`` (client, server), answered together."""
    owners: list[tuple[int, int] | None] = []
    for client, server in pairs:
        owner = netlink_owner(client, server)
        owners.append(owner if owner is not None else proc_net_owner(client, server))
    pids = pids_of_inodes({o[1]: o[0] for o in owners if o is not None})
    return [None if o is None else _describe(pids.get(o[1]), o[0]) for o in owners]


def psutil_peers(pairs: Sequence[tuple[Addr, Addr]]) -> list[ProcessInfo | None]:
    """The fallback: one scan of psutil's socket table answers every pair."""
    try:
        import psutil

        conns = psutil.net_connections(kind="tcp")
    except Exception:
        return [None] * len(pairs)
    by_tuple: dict[tuple[Any, ...], int] = {}
    for c in conns:
        if c.laddr and c.raddr and c.pid is not None:
            by_tuple[(c.laddr.ip, c.laddr.port, c.raddr.ip, c.raddr.port)] = c.pid
    out: list[ProcessInfo | None] = []
    for client, server in pairs:
        pid = by_tuple.get((client[0], client[1], server[0], server[1]))
        out.append(None if pid is None else _describe(pid, None))
    return out


def resolve(pairs: Sequence[tuple[Addr, Addr]]) -> list[ProcessInfo | None]:
    """Blocking: the processes on the client end of each (client, server) TCP connection."""
    if sys.platform.startswith("linux"):
        return linux_peers(pairs)
    return psutil_peers(pairs)


def peer_process(client: Addr | None, server: Addr | None) -> ProcessInfo | None:
    """One connection's process (blocking); None where the platform will not tell."""
    if not client or not server:
        return None
    return resolve([(client, server)])[0]


def still_running(processes: Sequence[tuple[int, float | None]]) -> list[bool]:
    """Blocking: whether each (pid, start time) is still the same live process. A pid reused
    by another process has another start time, and a zombie has exited: neither counts."""
    import psutil

    out = []
    for pid, started in processes:
        try:
            proc = psutil.Process(pid)
            alive = proc.status() != psutil.STATUS_ZOMBIE and (
                started is None or abs(proc.create_time() - started) < 0.01
            )
        except psutil.Error:
            alive = False
        out.append(alive)
    return out


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception:
        return None


# -- the engine's side: a worker, single flight, a cache per connection, a time bound ----------
class PeerLookup:
    """Peer lookups for the engine's loop (one instance per engine)."""

    def __init__(self, timeout_s: float = LOOKUP_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.passes = 0  # resolve() passes run (one per batch)
        self.lookups = 0  # connections looked up (cache misses)
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._cache: dict[Any, asyncio.Future[ProcessInfo | None]] = {}
        self._swept_at = 0
        self._queue: list[tuple[Addr, Addr, asyncio.Future[ProcessInfo | None]]] = []
        self._running = False
        self._drainer: asyncio.Future[None] | None = None

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._cache.clear()

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aiwallet-peer")
            return self._pool

    async def alive(self, processes: Sequence[tuple[int, float | None]]) -> list[bool]:
        """:func:`still_running`, on this worker (never the engine's loop)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), still_running, list(processes))

    def cached(self, transport: Any) -> bool:
        return transport in self._cache

    async def lookup(self, transport: Any) -> ProcessInfo | None:
        """The process behind ``transport`` (looked up once per connection); None when the
        platform will not tell or the lookup took longer than ``timeout_s``."""
        if transport is None:
            return None
        fut = self._cache.get(transport)
        if fut is None:
            client, server = (
                transport.get_extra_info("peername"),
                transport.get_extra_info("sockname"),
            )
            if not client or not server:
                return None
            self._sweep()
            fut = asyncio.get_running_loop().create_future()
            self._cache[transport] = fut
            self.lookups += 1
            self._queue.append((tuple(client), tuple(server), fut))
            if not self._running:
                self._running = True
                self._drainer = asyncio.ensure_future(self._drain())
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.timeout_s)
        except TimeoutError:
            log.warning("peer lookup took over %.1f s: treated as unknown process", self.timeout_s)
            return None

    async def _drain(self) -> None:
        """Answer the queued lookups, a batch per pass, until none wait."""
        loop = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                self.passes += 1
                pairs = [(c, s) for c, s, _ in batch]
                try:
                    found = await loop.run_in_executor(self._executor(), resolve, pairs)
                except Exception:
                    log.exception("peer lookup failed")
                    found = [None] * len(batch)
                for (_, _, fut), info in zip(batch, found, strict=True):
                    if not fut.done():
                        fut.set_result(info)
        finally:
            self._running = False
            for _, _, fut in self._queue:  # cancelled mid-way (engine stopping)
                if not fut.done():
                    fut.set_result(None)
            self._queue = []

    def _sweep(self) -> None:
        """Forget connections that closed (checked when the cache has doubled since the last
        sweep, so the cost is amortized), and never keep more than ``MAX_CACHED``."""
        if len(self._cache) < max(64, 2 * self._swept_at):
            return
        for transport in [t for t in self._cache if t.is_closing()]:
            del self._cache[transport]
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._swept_at = len(self._cache)

    def forget(self, transport: Any) -> None:
        self._cache.pop(transport, None)
