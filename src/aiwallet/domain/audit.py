"""The audit log's hash chain (pure).

Each entry's hash covers its own fields and the previous entry's hash, so editing, removing
or reordering any entry breaks every hash after it, and :func:`verify_chain` names the first
entry where that happens. Entry details must never hold secrets (callers' duty).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, ASCII only: one text per value, on every platform."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _ts_text(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def entry_hash(
    prev_hash: str,
    seq: int,
    ts: datetime,
    actor: str,
    action: str,
    subject: str,
    details: Mapping[str, Any],
) -> str:
    body = canonical_json(
        {
            "prev": prev_hash,
            "seq": seq,
            "ts": _ts_text(ts),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
        }
    )
    return hashlib.sha256(body.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    ts: datetime
    actor: str
    action: str
    subject: str
    details: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ts": _ts_text(self.ts),
            "actor": self.actor,
            "action": self.action,
            "subject": self.subject,
            "details": dict(self.details),
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class AuditVerification:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_bad_seq": self.first_bad_seq,
            "problem": self.problem,
        }


def verify_chain(
    entries: Iterable[AuditEntry], head_seq: int | None = None, head_hash: str | None = None
) -> AuditVerification:
    """Check entries in storage order; report the first edited, removed or reordered one.

    ``head_seq``/``head_hash`` (kept separately) reveal entries removed from the end.
    """
    prev_hash, expected_seq, checked = GENESIS_HASH, 1, 0
    for e in entries:
        if e.seq != expected_seq:
            kind = "removed" if e.seq > expected_seq else "reordered or duplicated"
            return AuditVerification(
                False,
                checked,
                expected_seq if e.seq > expected_seq else e.seq,
                f"entry {expected_seq} is {kind} (found entry {e.seq} in its place)",
            )
        if e.prev_hash != prev_hash:
            return AuditVerification(
                False, checked, e.seq, f"entry {e.seq} does not link to the entry before it"
            )
        actual = entry_hash(e.prev_hash, e.seq, e.ts, e.actor, e.action, e.subject, e.details)
        if actual != e.hash:
            return AuditVerification(
                False, checked, e.seq, f"entry {e.seq} was edited (its hash does not match)"
            )
        prev_hash, expected_seq, checked = e.hash, expected_seq + 1, checked + 1
    if head_seq is not None and head_seq != checked:
        return AuditVerification(
            False,
            checked,
            checked + 1,
            f"the log ends at entry {checked} but {head_seq} were written; the rest were removed",
        )
    if head_hash is not None and head_seq == checked and head_hash != prev_hash:
        return AuditVerification(
            False, checked, checked, f"entry {checked} differs from the recorded chain head"
        )
    return AuditVerification(True, checked)
