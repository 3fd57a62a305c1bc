"""Which local process is on the other end of a loopback connection."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    exe: str | None
    cmdline: tuple[str, ...]
    user: str | None

    @property
    def label(self) -> str:
        name = (self.exe or "").rsplit("/", 1)[-1] or "unknown program"
        return f"{name} (pid {self.pid})"

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "exe": self.exe, "cmdline": list(self.cmdline), "user": self.user}


def peer_process(
    client: tuple[Any, ...] | None, server: tuple[Any, ...] | None
) -> ProcessInfo | None:
    """The process owning the client end of the TCP connection ``client`` → ``server``
    (blocking: scans the socket table; run it off the event loop). None where the platform
    will not tell (then the prompt says "unknown process")."""
    if not client or not server:
        return None
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a dependency
        return None
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for c in conns:
        if not c.laddr or not c.raddr or c.pid is None:
            continue
        if (c.laddr.ip, c.laddr.port) == tuple(client[:2]) and (c.raddr.ip, c.raddr.port) == tuple(
            server[:2]
        ):
            try:
                proc = psutil.Process(c.pid)
                with proc.oneshot():
                    exe = _safe(proc.exe)
                    cmdline = tuple(_safe(proc.cmdline) or ())
                    user = _safe(proc.username)
                return ProcessInfo(c.pid, exe, cmdline, user)
            except psutil.Error:
                return ProcessInfo(c.pid, None, (), None)
    return None


def _safe(fn: Any) -> Any:
    try:
        return fn()
    except Exception:
        return None
