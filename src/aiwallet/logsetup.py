"""Logging for the wallet: one file per data dir, and a filter that scrubs secrets.

Secrets should never reach a log call in the first place; the redactor is the second line:
every secret the vault hands out (and the engine's own: admin token, session-token key) is
registered here, and any log record whose text contains one, in any of the forms
``domain/secretforms.py`` knows (as is, a long fragment, JSON-escaped, URL-encoded), has it
replaced by ``[redacted]`` before a handler sees it. The engine's scrubber of what apps
receive (``engine/scrub.py``) uses the same matcher.
"""

from __future__ import annotations

import logging
import logging.handlers
import threading
from pathlib import Path

from aiwallet.domain.secretforms import MIN_SECRET_LEN, SecretMatcher, text_forms


class SecretRedactor(logging.Filter):
    """Replaces every registered secret in a record's message and arguments."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: frozenset[str] = frozenset()
        self._matcher: SecretMatcher | None = SecretMatcher()

    def register(self, secret: str) -> None:
        if len(secret) < MIN_SECRET_LEN or secret in self._secrets:
            return
        with self._lock:
            self._secrets = self._secrets | set(text_forms(secret))
            self._matcher = None  # rebuilt when next needed: registrations come in bursts

    def scrub(self, text: str) -> str:
        matcher = self._matcher
        if matcher is None:
            with self._lock:
                matcher = SecretMatcher(("secret", s) for s in sorted(self._secrets))
                self._matcher = matcher
        return matcher.redact_text(text)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        message = record.getMessage()
        scrubbed = self.scrub(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrub(record.exc_text)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        return True


REDACTOR = SecretRedactor()


def setup_logging(log_dir: Path | None, *, level: int = logging.INFO) -> None:
    """Log to ``log_dir/aiwallet.log`` (rotated, 0600) with secrets scrubbed."""
    root = logging.getLogger("aiwallet")
    root.setLevel(level)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    if log_dir is None:
        root.addHandler(logging.NullHandler())
        return
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = log_dir / "aiwallet.log"
    path.touch(mode=0o600, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=5_000_000, backupCount=3, encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(REDACTOR)
    root.addHandler(handler)
