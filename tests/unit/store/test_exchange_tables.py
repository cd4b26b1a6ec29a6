"""The pipeline's ledgers and the watchlist's tables on both backends: the same results on
SQLCipher and PostgreSQL, a nonce refused across connections (a constraint, not a cache),
and no plaintext identifier in PostgreSQL's columns."""

from __future__ import annotations

from typing import Any

import pytest

from node.core.ports import Receipt
from node.store.db import Database
from node.store.exchange import SqlNonceLedger, SqlReceiptStore, SqlUsageLedger
from node.store.watchlist import SqlWatchlistStore

DOCS = [("KAZ", "PLAINDOC4711", "P", "KAZ-SLTD-1", "seize_document", "desk kaz", "2036-01-31",
         "stolen"),
        ("KAZ", "PLAINDOC4711", "P", "KAZ-SLTD-0", "inform", "", "2036-01-31", "lost"),
        ("UZB", "FA1002003", "P", "UZB-SLTD-2", "refuse_entry", "", "2020-01-01", "")]
PERSONS = [("UZB-WNT-1", "Каримова", "Дилноза", "Шухратовна", "1995-08-21", "UZB", "F",
            "refuse_entry", "+998 71 000", "2031-01-01"),
           ("UZB-WNT-2", "Rahimov", "Jasur", "Oybek o`g`li", "1990", "UZB", "M", "arrest", "",
            "2020-01-01")]
SECRETS = ("PLAINDOC4711", "FA1002003", "KAZ-SLTD-1", "UZB-WNT-1", "Каримова", "Дилноза",
           "Шухратовна", "Rahimov", "1995-08-21", "+998 71 000", "desk kaz", "req-body")


def text_of(db: Database, table: str) -> str:
    out: list[str] = []
    for row in db.query(f"SELECT * FROM {table}"):
        out.extend(bytes(v).decode("utf-8", "replace") if isinstance(v, bytes | memoryview)
                   else str(v) for v in row)
    return "\x00".join(out)


def test_nonces_are_refused_once_seen_and_free_again_after_expiry(any_db: Database) -> None:
    n = SqlNonceLedger(any_db)
    with any_db.transaction():
        assert n.remember("KGZ-BS", b"n" * 24, expires_ms=10_000, now_ms=1_000) is True
    with any_db.transaction():
        assert n.remember("KGZ-BS", b"n" * 24, expires_ms=10_000, now_ms=1_001) is False
        assert n.remember("UZB-BS", b"n" * 24, expires_ms=10_000, now_ms=1_001) is True
    with any_db.transaction():  # expiry is inclusive ...
        assert n.remember("KGZ-BS", b"n" * 24, expires_ms=20_000, now_ms=10_000) is False
    with any_db.transaction():  # ... after it the nonce may be recorded afresh
        assert n.remember("KGZ-BS", b"n" * 24, expires_ms=20_000, now_ms=10_001) is True


def test_a_nonce_is_refused_through_another_connection(any_db: Database) -> None:
    """What replicas rely on: the refusal comes from the database, not from memory."""
    other_db = any_db.pool.database() if hasattr(any_db, "pool") else any_db
    first, second = SqlNonceLedger(any_db), SqlNonceLedger(other_db)
    with any_db.transaction():
        assert first.remember("KGZ-BS", b"x" * 16, expires_ms=9_000, now_ms=1_000)
    with other_db.transaction():
        assert second.remember("KGZ-BS", b"x" * 16, expires_ms=9_000, now_ms=1_500) is False


def test_usage_accumulates_per_node_and_day(any_db: Database) -> None:
    u = SqlUsageLedger(any_db)
    with any_db.transaction():
        for node, day, n in (("KGZ-BS", "2026-11-23", 3), ("KGZ-BS", "2026-11-23", 4),
                             ("KGZ-BS", "2026-11-24", 1), ("UZB-BS", "2026-11-23", 10)):
            u.add(node, day, n)
    assert [u.items_today(*k) for k in (("KGZ-BS", "2026-11-23"), ("KGZ-BS", "2026-11-24"),
                                        ("UZB-BS", "2026-11-23"), ("TJK-BS", "2026-11-23"))] \
        == [7, 1, 10, 0]


def test_receipts_round_trip_in_order_and_filter(any_db: Database) -> None:
    r = SqlReceiptStore(any_db)
    a = Receipt("sent", "KAZ-BS", b"\x01" * 32, b"req-body", b"resp", 10)
    b = Receipt("received", "KGZ-BS", b"\x02" * 32, b"req2", b"resp2", 11)
    with any_db.transaction():
        r.put(a)
        r.put(b)
    assert r.all() == [a, b] and r.all(direction="received") == [b]
    if any_db.codec.protects:
        assert "req-body" not in text_of(any_db, "receipts")


def test_watchlist_finds_live_records_only(any_db: Database) -> None:
    w = SqlWatchlistStore(any_db)
    with any_db.transaction():
        assert w.insert_documents(DOCS) == 3
        assert w.insert_persons(PERSONS) == 2
        w.bump_generation("7")
    assert w.counts() == (3, 2) and w.generation() == "7"
    keys = [("PLAINDOC4711", "KAZ", "P"), ("FA1002003", "UZB", "P"),
            ("PLAINDOC4711", "KAZ", "I"), ("PLAINDOC4711", "KAZ", "P")]
    # two live records for one document, sorted by reference; FA1002003 has expired;
    # another document type is another document
    assert w.find_documents_many(keys, "2026-11-23") == {("PLAINDOC4711", "KAZ", "P"): [
        ("KAZ-SLTD-0", "inform", ""), ("KAZ-SLTD-1", "seize_document", "desk kaz")]}
    assert w.person("UZB-WNT-1") == PERSONS[0] and w.person("NOPE") is None
    assert list(w.iter_persons("2026-11-23")) == [PERSONS[0]]
    assert w.live_persons(["UZB-WNT-2", "UZB-WNT-1", "NOPE"], "2026-11-23") == {
        "UZB-WNT-1": PERSONS[0]}
    assert w.document_of("KAZ-SLTD-1") == ("PLAINDOC4711", "KAZ", "P", "stolen")
    assert w.document_of("UZB-WNT-1") is None


def test_a_number_under_another_issuing_state_or_type_is_another_document(
        any_db: Database) -> None:
    """The batch's statement asks for the numbers; the issuing state and type still decide."""
    w = SqlWatchlistStore(any_db)
    with any_db.transaction():
        w.insert_documents([("KAZ", "N77", "P", "R-KAZ-P", "inform", "", "2036-01-31", ""),
                            ("UZB", "N77", "P", "R-UZB-P", "arrest", "", "2036-01-31", ""),
                            ("KAZ", "N77", "I", "R-KAZ-I", "monitor", "c", "2036-01-31", "")])
    assert w.find_documents_many([("N77", "UZB", "P")], "2026-11-23") == {
        ("N77", "UZB", "P"): [("R-UZB-P", "arrest", "")]}
    assert w.find_documents_many([("N77", "KAZ", "I"), ("N77", "KGZ", "P"), ("N78", "KAZ", "P")],
                                 "2026-11-23") == {("N77", "KAZ", "I"): [("R-KAZ-I", "monitor",
                                                                          "c")]}


def test_a_record_imported_again_replaces_the_earlier_one(any_db: Database) -> None:
    w = SqlWatchlistStore(any_db)
    with any_db.transaction():
        w.insert_documents(DOCS[:1])
        w.insert_persons(PERSONS[:1])
    with any_db.transaction():
        w.insert_documents([(*DOCS[0][:4], "arrest", "", "2020-01-01", "stolen")])
        w.insert_persons([(*PERSONS[0][:7], "arrest", "", "2020-01-01")])
    assert w.counts() == (1, 1)
    assert w.find_documents_many([("PLAINDOC4711", "KAZ", "P")], "2026-11-23") == {}
    assert w.live_persons(["UZB-WNT-1"], "2026-11-23") == {}


def test_a_rolled_back_import_leaves_nothing(any_db: Database) -> None:
    w, u = SqlWatchlistStore(any_db), SqlUsageLedger(any_db)
    with pytest.raises(RuntimeError, match="boom"), any_db.transaction():
        w.insert_documents(DOCS)
        w.insert_persons(PERSONS)
        w.bump_generation("1")
        u.add("KGZ-BS", "2026-11-23", 5)
        raise RuntimeError("boom")
    assert w.counts() == (0, 0) and w.generation() is None
    assert u.items_today("KGZ-BS", "2026-11-23") == 0


@pytest.mark.parametrize("any_db", ["postgresql"], indirect=True)
def test_postgresql_columns_hold_no_identifier(any_db: Database) -> None:
    """(SQLCipher encrypts the whole file: tests/unit/store/test_store.py searches it.)"""
    assert any_db.codec.protects
    w = SqlWatchlistStore(any_db)
    with any_db.transaction():
        w.insert_documents(DOCS)
        w.insert_persons(PERSONS)
    text = text_of(any_db, "documents") + text_of(any_db, "persons")
    assert "seize_document" in text  # the rows are there; their identifiers are not
    for secret in SECRETS:
        assert secret not in text, secret


def _counted(db: Database, table: str) -> list[str]:
    """The statements that read ``table``'s rows from now on (counted at the driver)."""
    seen: list[str] = []
    for name in ("query_past_deferred", "rows_past_deferred"):
        real = getattr(db, name)

        def spy(sql: str, args: Any = (), *, _real: Any = real) -> Any:
            if f"FROM {table}" in sql:
                seen.append(sql)
            return _real(sql, args)

        setattr(db, name, spy)
    return seen


def test_a_batchs_announced_nonces_are_read_in_one_statement(any_db: Database) -> None:
    """The batch announces its nonces before its transaction (``expect``); under the lock
    the first ``remember`` reads all of them at once, and every answer is the one a read
    per nonce gives: stored and live (refused), stored and expired (free again), earlier
    in the same batch (refused), and new."""
    n = SqlNonceLedger(any_db)
    with any_db.transaction():
        assert n.remember("KGZ-BS", b"old-live", expires_ms=50_000, now_ms=1_000)
        assert n.remember("KGZ-BS", b"old-gone", expires_ms=2_000, now_ms=1_000)
    asked = [("KGZ-BS", b"old-live"), ("KGZ-BS", b"old-gone"), ("KGZ-BS", b"new-1"),
             ("UZB-BS", b"old-live"), ("KGZ-BS", b"new-1"), ("UZB-BS", b"new-2")]
    for node_id, nonce in asked:
        n.expect(node_id, nonce)
    reads = _counted(any_db, "nonces")
    with any_db.transaction():
        any_db.lock("audit")  # the writers' lock, as every request's unit of work takes it
        got = [n.remember(node_id, nonce, expires_ms=90_000, now_ms=3_000)
               for node_id, nonce in asked]
    assert got == [False, True, True, True, False, True]
    assert len(reads) == 2  # one statement per peer, for all of its nonces
    with any_db.transaction():  # what was accepted is stored: refused next time
        any_db.lock("audit")
        assert [n.remember(node_id, nonce, expires_ms=90_000, now_ms=4_000)
                for node_id, nonce in asked[1:4]] == [False, False, False]
    assert len(reads) == 5  # not announced: read one by one


def test_an_announced_nonce_is_read_again_after_a_direct_write(any_db: Database) -> None:
    """A direct write in the transaction (the once-a-second purge of expired nonces is
    one) may change what was read: the next ``remember`` reads the announced nonces
    again."""
    n = SqlNonceLedger(any_db)
    with any_db.transaction():
        assert n.remember("KGZ-BS", b"a", expires_ms=9_000, now_ms=1_000)
    for nonce in (b"a", b"b", b"c"):
        n.expect("KGZ-BS", nonce)
    reads = _counted(any_db, "nonces")
    with any_db.transaction():
        any_db.lock("audit")
        assert n.remember("KGZ-BS", b"b", expires_ms=9_000, now_ms=2_000) is True
        assert len(reads) == 1
        any_db.execute("DELETE FROM nonces WHERE node_id = ? AND nonce = ?", ("KGZ-BS", b"a"))
        assert n.remember("KGZ-BS", b"a", expires_ms=9_000, now_ms=2_000) is True  # gone now
        assert n.remember("KGZ-BS", b"c", expires_ms=9_000, now_ms=2_000) is True
        assert len(reads) == 2
