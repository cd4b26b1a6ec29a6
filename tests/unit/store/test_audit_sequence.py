"""Fewer statements per request (issue 16), on both backends: the audit log's next sequence
number is read once per transaction and stays exact across savepoints, rollbacks and other
log handles over the same database; a PostgreSQL advisory lock already held is not asked
for again, but one released by a rolled-back savepoint is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node.audit.log import MerkleAuditLog
from node.store.db import Database
from node.store.sqlcipher import Store


def _count_statements(db: Database) -> list[str]:
    """Every SQL statement the handle sends from now on (at the driver)."""
    seen: list[str] = []
    conn: Any = getattr(db, "_conn", None)
    if hasattr(conn, "set_trace_callback"):
        conn.set_trace_callback(seen.append)
    else:
        real = db._run  # type: ignore[attr-defined]

        def run(sql: str, args: Any) -> Any:
            seen.append(sql)
            return real(sql, args)

        db._run = run  # type: ignore[attr-defined]
    return seen


def test_the_next_seq_is_read_once_per_transaction_and_follows_appends(
        any_db: Database) -> None:
    log = MerkleAuditLog(store=any_db)
    log.append({"event": "a"}, time_ms=1)
    with any_db.transaction():
        seen = _count_statements(any_db)
        assert [log.next_seq(), log.next_seq()] == [2, 2]
        assert sum("max(seq)" in s for s in seen) == 1  # read once
        assert log.append({"event": "b"}, time_ms=2, seq=2) == 2
        assert log.append({"event": "c"}, time_ms=3) == 3  # numbered without a read
        assert sum("max(seq)" in s for s in seen) == 1
    assert [e.seq for e in log.entries()] == [1, 2, 3]


def test_a_rolled_back_append_is_not_counted(any_db: Database) -> None:
    log = MerkleAuditLog(store=any_db)
    with any_db.transaction():
        assert log.append({"event": "a"}, time_ms=1) == 1
        with pytest.raises(RuntimeError), any_db.savepoint():
            assert log.append({"event": "b"}, time_ms=2) == 2
            raise RuntimeError("the request fails after its entry")
        assert log.next_seq() == 2  # read again: the savepoint took entry 2 with it
        assert log.append({"event": "c"}, time_ms=3) == 2
    assert [(e.seq, e.time_ms) for e in log.entries()] == [(1, 1), (2, 3)]


def test_another_log_over_the_same_database_numbers_after_this_one(
        any_db: Database) -> None:
    one, two = MerkleAuditLog(store=any_db), MerkleAuditLog(store=any_db)
    with any_db.transaction():
        assert one.next_seq() == 1
        assert two.append({"event": "desk"}, time_ms=1) == 1
        assert one.append({"event": "lookup"}, time_ms=2) == 2
    with any_db.transaction():  # a new transaction reads again
        assert one.next_seq() == two.next_seq() == 3


def test_a_wrong_seq_fails_instead_of_leaving_a_gap_or_a_duplicate(
        tmp_path: Path) -> None:
    import nacl.signing

    from node.audit.merkle import StoreCorrupt

    db = Store.open(tmp_path / "node.db", bytes(range(100, 132)), create=True)
    log = MerkleAuditLog(store=db, node_id="KAZ-BS",
                         signing_key=nacl.signing.SigningKey(bytes(32)))
    try:
        log.append({"event": "a"}, time_ms=1)
        with pytest.raises(Exception, match=r"UNIQUE constraint failed"):
            log.append({"event": "again"}, time_ms=2, seq=1)
        with pytest.raises(StoreCorrupt, match="numbered"):  # the seal refuses a gap
            log.append({"event": "gap"}, time_ms=3, seq=5)
        assert [e.seq for e in log.entries()] == [1]
    finally:
        db.close()


def test_postgresql_asks_for_a_held_lock_once_and_again_after_a_rollback(
        any_db: Database) -> None:
    if any_db.dialect != "postgresql":
        pytest.skip("SQLCipher's lock is the transaction's own (BEGIN IMMEDIATE)")
    seen = _count_statements(any_db)

    def locks() -> int:
        return sum("pg_advisory_xact_lock" in s for s in seen)

    with any_db.transaction():
        with any_db.savepoint():
            any_db.lock("audit")
        any_db.lock("audit")  # released into the transaction: still held
        assert locks() == 1
        with pytest.raises(RuntimeError), any_db.savepoint():
            any_db.lock("other")
            raise RuntimeError("rolled back")
        any_db.lock("other")  # the rollback released it: asked for again
        assert locks() == 3
    with any_db.transaction():  # a new transaction holds nothing
        any_db.lock("audit")
    assert locks() == 4
