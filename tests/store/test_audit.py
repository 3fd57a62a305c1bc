"""The audit chain finds any edited, removed or reordered entry."""

import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import delete, select, update

from aiwallet.domain.audit import GENESIS_HASH
from aiwallet.store import schema as t
from aiwallet.store.audit import AuditLog
from aiwallet.store.db import open_database


@pytest.fixture
def log(db_url):
    db = open_database(db_url)
    audit = AuditLog(db)
    for i in range(1, 6):
        audit.append("user", "test.action", f"thing:{i}", {"n": i, "note": f"entry {i}"})
    yield audit
    db.dispose()


def test_intact_chain_verifies(log):
    result = log.verify()
    assert result.ok and result.checked == 5
    entries = log.entries()
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(entries))


def test_edited_details_are_found(log):
    with log.db.begin() as conn:
        conn.execute(update(t.audit).where(t.audit.c.seq == 3).values(details={"n": 99}))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 3 and "edited" in result.problem


def test_edited_hash_is_found(log):
    with log.db.begin() as conn:
        conn.execute(update(t.audit).where(t.audit.c.seq == 2).values(hash="f" * 64))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 2


def test_rehashed_edit_breaks_the_next_link(log):
    # An editor who recomputes the edited entry's own hash still breaks entry 4's link.
    from aiwallet.domain.audit import entry_hash

    e = log.entries()[2]
    forged = entry_hash(e.prev_hash, e.seq, e.ts, e.actor, e.action, e.subject, {"n": 0})
    with log.db.begin() as conn:
        conn.execute(
            update(t.audit).where(t.audit.c.seq == 3).values(details={"n": 0}, hash=forged)
        )
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 4 and "link" in result.problem


def test_removed_entry_is_found(log):
    with log.db.begin() as conn:
        conn.execute(delete(t.audit).where(t.audit.c.seq == 2))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 2 and "removed" in result.problem


def test_removed_tail_is_found(log):
    with log.db.begin() as conn:
        conn.execute(delete(t.audit).where(t.audit.c.seq >= 4))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 4 and "removed" in result.problem


def test_swapped_entries_are_found(log):
    cols = [c for c in t.audit.c if c.name != "seq"]
    with log.db.begin() as conn:
        two = conn.execute(select(*cols).where(t.audit.c.seq == 2)).mappings().one()
        four = conn.execute(select(*cols).where(t.audit.c.seq == 4)).mappings().one()
        conn.execute(update(t.audit).where(t.audit.c.seq == 2).values(**four))
        conn.execute(update(t.audit).where(t.audit.c.seq == 4).values(**two))
    result = log.verify()
    assert not result.ok and result.first_bad_seq == 2


def test_concurrent_appends_keep_one_chain(db_url):
    db = open_database(db_url)
    audit = AuditLog(db)
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda i: audit.append("engine", "race", f"r:{i}", {"i": i}), range(100)))
    result = audit.verify()
    assert result.ok and result.checked == 100
    db.dispose()


def test_migrations_are_idempotent(db_url):
    first = open_database(db_url)
    AuditLog(first).append("user", "a", "b", {})
    first.dispose()
    again = open_database(db_url)  # runs the migrations again: nothing to do, nothing lost
    assert AuditLog(again).verify().checked == 1
    again.dispose()
