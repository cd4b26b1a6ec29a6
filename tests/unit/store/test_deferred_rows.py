"""Deferred rows and lazy savepoints (node/store/deferred.py), on both backends: the
exchange's rows are written once per transaction and table, and every check stays exact --
a nonce deferred earlier in the same transaction is a replay, usage counts at once, a
savepoint that rolls back leaves nothing (buffered or written), a read sees every row
deferred before it, and a deferred row that does not insert fails the transaction."""

from __future__ import annotations

from typing import Any

import pytest

from node.audit.log import MerkleAuditLog
from node.core.ports import Receipt
from node.store.db import Database
from node.store.deferred import DeferredWriteConflict
from node.store.exchange import SqlNonceLedger, SqlReceiptStore, SqlUsageLedger
from tests.unit.store.test_audit_sequence import _count_statements

DAY = "2026-12-02"


def _receipt(i: int) -> Receipt:
    return Receipt("received", "KGZ-BS", bytes([i]) * 32, b"req-%d" % i, b"resp-%d" % i, i)


def _writes(seen: list[str]) -> list[str]:
    return [s for s in seen if not s.lstrip().upper().startswith("SELECT")]


def test_a_transaction_writes_each_table_once_and_issues_no_savepoint(
        any_db: Database) -> None:
    nonces, usage, receipts = (SqlNonceLedger(any_db), SqlUsageLedger(any_db),
                               SqlReceiptStore(any_db))
    nonces.remember("KGZ-BS", b"warm" * 4, expires_ms=9_000, now_ms=1_000)  # the purge
    seen = _count_statements(any_db)
    with any_db.transaction():
        any_db.lock("audit")  # as every request's unit of work does first
        for i in range(3):
            with any_db.savepoint():  # a request's unit of work
                assert nonces.remember("KGZ-BS", bytes([i]) * 16, expires_ms=9_000,
                                       now_ms=1_000)
                with any_db.savepoint():  # its answer
                    assert usage.items_today("KGZ-BS", DAY) == i
                    usage.add("KGZ-BS", DAY, 1)
                receipts.put(_receipt(i))
        # nothing written yet, no savepoint issued: only reads (and BEGIN) so far
        assert [s for s in _writes(seen) if not s.upper().startswith("BEGIN")] == []
    assert sum("FROM usage" in s for s in seen) == 1  # read once: the writers' lock is held
    with any_db.transaction():  # without the lock (PostgreSQL) usage is read every time
        seen.clear()
        assert [usage.items_today("KGZ-BS", DAY) for _ in range(2)] == [3, 3]
        assert sum("FROM usage" in s for s in seen) == (1 if any_db.dialect == "sqlite" else 2)
    assert usage.items_today("KGZ-BS", DAY) == 3
    assert [r.created_ms for r in receipts.all()] == [0, 1, 2]
    with any_db.transaction():
        assert not nonces.remember("KGZ-BS", b"\x02" * 16, expires_ms=9_000, now_ms=1_001)


def test_a_nonce_deferred_in_the_same_transaction_is_a_replay(any_db: Database) -> None:
    nonces = SqlNonceLedger(any_db)
    with any_db.transaction():
        assert nonces.remember("KGZ-BS", b"n" * 16, expires_ms=9_000, now_ms=1_000) is True
        assert nonces.remember("KGZ-BS", b"n" * 16, expires_ms=9_000, now_ms=1_000) is False
        assert nonces.remember("UZB-BS", b"n" * 16, expires_ms=9_000, now_ms=1_000) is True
    assert any_db.query("SELECT node_id FROM nonces ORDER BY node_id") == [
        ("KGZ-BS",), ("UZB-BS",)]


def test_a_rolled_back_savepoint_drops_its_deferred_rows_and_frees_its_nonce(
        any_db: Database) -> None:
    nonces, usage, receipts = (SqlNonceLedger(any_db), SqlUsageLedger(any_db),
                               SqlReceiptStore(any_db))
    with any_db.transaction():
        usage.add("KGZ-BS", DAY, 2)
        receipts.put(_receipt(1))
        with pytest.raises(RuntimeError), any_db.savepoint():
            assert nonces.remember("KGZ-BS", b"r" * 16, expires_ms=9_000, now_ms=1_000)
            usage.add("KGZ-BS", DAY, 5)
            receipts.put(_receipt(2))
            assert usage.items_today("KGZ-BS", DAY) == 7
            raise RuntimeError("the request fails")
        assert usage.items_today("KGZ-BS", DAY) == 2
        # the failed request's nonce was never stored: the retry is not a replay
        assert nonces.remember("KGZ-BS", b"r" * 16, expires_ms=9_000, now_ms=1_000) is True
    assert usage.items_today("KGZ-BS", DAY) == 2
    assert [r.created_ms for r in receipts.all()] == [1]
    assert any_db.query("SELECT count(*) FROM nonces") == [(1,)]


def test_a_direct_write_issues_the_savepoints_around_it_so_a_rollback_undoes_it(
        any_db: Database) -> None:
    receipts, usage = SqlReceiptStore(any_db), SqlUsageLedger(any_db)
    with any_db.transaction():
        receipts.put(_receipt(1))  # before the savepoint: kept
        with pytest.raises(RuntimeError), any_db.savepoint():
            receipts.put(_receipt(2))
            with any_db.savepoint():
                any_db.set_meta("direct", "write")  # issues both savepoints first
                receipts.put(_receipt(3))
            raise RuntimeError("rolled back after the direct write")
        usage.add("KGZ-BS", DAY, 1)
    assert [r.created_ms for r in receipts.all()] == [1]
    assert any_db.get_meta("direct") is None
    assert usage.items_today("KGZ-BS", DAY) == 1


def test_an_issued_savepoint_that_rolls_back_drops_what_was_deferred_after_it(
        any_db: Database) -> None:
    receipts = SqlReceiptStore(any_db)
    with any_db.transaction():
        with pytest.raises(RuntimeError), any_db.savepoint():
            any_db.set_meta("inside", "1")  # the savepoint is issued here
            receipts.put(_receipt(4))  # deferred after it
            with any_db.savepoint():
                receipts.put(_receipt(5))
            raise RuntimeError("rolled back")
        receipts.put(_receipt(6))
        with any_db.savepoint():  # released savepoints keep their rows
            receipts.put(_receipt(7))
    assert [r.created_ms for r in receipts.all()] == [6, 7]
    assert any_db.get_meta("inside") is None


def test_a_read_sees_every_row_deferred_before_it(any_db: Database) -> None:
    receipts = SqlReceiptStore(any_db)
    log = MerkleAuditLog(store=any_db)
    with any_db.transaction():
        receipts.put(_receipt(1))
        log.append({"event": "lookup"}, time_ms=5)
        assert [r.created_ms for r in receipts.all()] == [1]
        assert [e.seq for e in log.entries()] == [1]
        log.append({"event": "lookup"}, time_ms=6)
        with pytest.raises(RuntimeError), any_db.savepoint():
            log.append({"event": "lookup"}, time_ms=7)
            raise RuntimeError("rolled back")
        assert log.next_seq() == 3  # the deferred entry 2, not the rolled-back 3
        assert log.append({"event": "lookup"}, time_ms=8) == 3
    assert [(e.seq, e.time_ms) for e in log.entries()] == [(1, 5), (2, 6), (3, 8)]


def test_a_deferred_row_that_does_not_insert_fails_the_transaction(
        any_db: Database) -> None:
    """What would happen if a writer bypassed the writers' lock and stored a nonce between
    our check and our commit: the transaction fails, nothing of it commits."""
    nonces, receipts = SqlNonceLedger(any_db), SqlReceiptStore(any_db)
    with any_db.transaction():
        assert nonces.remember("KGZ-BS", b"c" * 16, expires_ms=9_000, now_ms=1_000)
    sql: Any = ("INSERT INTO nonces (node_id, nonce, expires_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (node_id, nonce) DO UPDATE SET expires_ms = excluded.expires_ms "
                "WHERE nonces.expires_ms < ?")
    with pytest.raises(DeferredWriteConflict, match="changed 0 of 1 rows"), \
            any_db.transaction():
        receipts.put(_receipt(9))
        any_db.defer("nonces", sql, ("KGZ-BS", b"c" * 16, 9_000, 1_000))
    assert receipts.all() == []
    assert not any_db.in_transaction


def test_outside_a_transaction_rows_are_written_at_once(any_db: Database) -> None:
    nonces, usage = SqlNonceLedger(any_db), SqlUsageLedger(any_db)
    assert nonces.remember("KGZ-BS", b"o" * 16, expires_ms=9_000, now_ms=1_000) is True
    assert nonces.remember("KGZ-BS", b"o" * 16, expires_ms=9_000, now_ms=1_000) is False
    usage.add("KGZ-BS", DAY, 4)
    assert usage.items_today("KGZ-BS", DAY) == 4
