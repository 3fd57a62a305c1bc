"""One desktop app per data dir: a second ``aiwallet`` brings the first one's window up
instead of starting another engine (which could not bind the port anyway).

A ``QLocalServer`` named after the data dir listens while the app runs; a new instance first
tries to connect to it, sends ``show`` and exits.
"""

from __future__ import annotations

import getpass
import hashlib
from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtNetwork import QLocalServer, QLocalSocket

from aiwallet.paths import DataDir

CONNECT_MS = 500


def instance_name(data_dir: DataDir) -> str:
    """A per-user, per-data-dir name for the local socket."""
    digest = hashlib.sha256(str(data_dir.root).encode()).hexdigest()[:16]
    return f"aiwallet-{getpass.getuser()}-{digest}"


def signal_running(name: str) -> bool:
    """True when another instance answered (and was asked to show its window)."""
    socket = QLocalSocket()
    socket.connectToServer(name)
    if not socket.waitForConnected(CONNECT_MS):
        return False
    socket.write(b"show\n")
    socket.flush()
    socket.waitForBytesWritten(CONNECT_MS)
    socket.disconnectFromServer()
    return True


class InstanceServer(QObject):
    """Listens for later instances; calls ``on_show`` when one asks."""

    def __init__(self, name: str, on_show: Callable[[], None]) -> None:
        super().__init__()
        self._on_show = on_show
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        if not self.server.listen(name):
            # A stale socket file from a crashed instance (nobody answered signal_running).
            QLocalServer.removeServer(name)
            self.server.listen(name)
        self.server.newConnection.connect(self._accept)

    @property
    def listening(self) -> bool:
        return self.server.isListening()

    def _accept(self) -> None:
        while self.server.hasPendingConnections():
            conn = self.server.nextPendingConnection()
            if conn is None:
                return
            conn.readyRead.connect(lambda c=conn: self._read(c))
            conn.disconnected.connect(conn.deleteLater)

    def _read(self, conn: QLocalSocket) -> None:
        if bytes(conn.readAll().data()).strip() == b"show":
            self._on_show()

    def close(self) -> None:
        self.server.close()
