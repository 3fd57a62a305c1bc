"""Secrets in a file sealed with a passphrase: Argon2id → XSalsa20-Poly1305 (pynacl SecretBox).

Used only where no secure OS keyring exists, and the UI says so. The file holds one sealed
JSON map of all secrets; it is rewritten atomically (0600) on every change with a fresh
nonce. The derived key is cached in memory after unlock; the passphrase is not kept.

KDF cost: Argon2id MODERATE (3 passes, 256 MiB) took 0.56 s on the 2-core build machine
(INTERACTIVE 0.07 s, SENSITIVE 5.3 s); the vault runs it once per unlock, off the event loop.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from aiwallet.domain.errors import VaultError

FORMAT = "aiwallet-sealed-vault/1"
OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MODERATE


class WrongPassphrase(VaultError):
    """The passphrase does not open the sealed file (or the file was altered): the desktop
    app asks again instead of starting an engine that cannot read its keys."""

    code = "vault_passphrase_wrong"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise VaultError(f"the sealed vault file is damaged ({what} missing)")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise VaultError(f"the sealed vault file is damaged ({what} unreadable)") from None


class SealedFileStore:
    kind = "sealed-file"

    def __init__(
        self,
        path: Path,
        passphrase_provider: Callable[[], str],
        *,
        opslimit: int = OPSLIMIT,
        memlimit: int = MEMLIMIT,
    ) -> None:
        self.path = path
        self.description = f"passphrase-sealed file {path} (no OS keyring available)"
        self._provider = passphrase_provider
        self._opslimit, self._memlimit = opslimit, memlimit
        self._lock = threading.RLock()
        self._box: nacl.secret.SecretBox | None = None
        self._salt: bytes | None = None
        self._data: dict[str, str] | None = None

    # -- unlocking ------------------------------------------------------------------------
    def _derive(self, salt: bytes, opslimit: int, memlimit: int) -> nacl.secret.SecretBox:
        passphrase = self._provider()
        if not passphrase:
            raise VaultError("an empty passphrase cannot seal the vault")
        key = nacl.pwhash.argon2id.kdf(
            nacl.secret.SecretBox.KEY_SIZE,
            passphrase.encode("utf-8"),
            salt,
            opslimit=opslimit,
            memlimit=memlimit,
        )
        return nacl.secret.SecretBox(key)

    def unlock(self) -> None:
        """Derive the key (slow, by design) and read the file; creates it when absent."""
        with self._lock:
            if self._data is not None:
                return
            if not self.path.exists():
                self._salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
                self._box = self._derive(self._salt, self._opslimit, self._memlimit)
                self._data = {}
                self._write()
                return
            try:
                doc = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                raise VaultError(
                    f"the sealed vault file {self.path} is damaged or unreadable"
                ) from None
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise VaultError(f"{self.path} is not an aiwallet sealed vault")
            salt = _unb64(doc.get("salt"), "salt")
            ops, mem = doc.get("opslimit"), doc.get("memlimit")
            if not isinstance(ops, int) or not isinstance(mem, int):
                raise VaultError("the sealed vault file is damaged (KDF parameters)")
            box = self._derive(salt, ops, mem)
            try:
                plain = box.decrypt(_unb64(doc.get("box"), "box"))
            except nacl.exceptions.CryptoError:
                raise WrongPassphrase(
                    "the vault passphrase is wrong, or the sealed vault file was altered"
                ) from None
            data = json.loads(plain.decode("utf-8"))
            if not isinstance(data, dict):
                raise VaultError("the sealed vault file is damaged (contents)")
            self._salt, self._box, self._opslimit, self._memlimit = salt, box, ops, mem
            self._data = {str(k): str(v) for k, v in data.items()}

    def _write(self) -> None:
        assert self._box is not None and self._salt is not None and self._data is not None
        sealed = self._box.encrypt(json.dumps(self._data).encode("utf-8"))
        doc = {
            "format": FORMAT,
            "kdf": "argon2id",
            "opslimit": self._opslimit,
            "memlimit": self._memlimit,
            "salt": _b64(self._salt),
            "box": _b64(bytes(sealed)),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(prefix=".vault.", dir=self.path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    # -- the backend protocol ---------------------------------------------------------------
    def get(self, name: str) -> str | None:
        with self._lock:
            self.unlock()
            assert self._data is not None
            return self._data.get(name)

    def set(self, name: str, secret: str) -> None:
        with self._lock:
            self.unlock()
            assert self._data is not None
            self._data[name] = secret
            self._write()

    def delete(self, name: str) -> None:
        with self._lock:
            self.unlock()
            assert self._data is not None
            if self._data.pop(name, None) is not None:
                self._write()

    def names(self) -> list[str]:
        with self._lock:
            self.unlock()
            assert self._data is not None
            return sorted(self._data)
