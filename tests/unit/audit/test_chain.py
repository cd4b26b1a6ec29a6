"""The hash-chained audit log over a real Store; tampering done with a raw SQLCipher connection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlcipher3

from node.audit.chain import GENESIS, AuditQuery, HashChainLog, canonical_json, entry_hash
from node.store.sqlcipher import Store

KEY = bytes(range(100, 132))
T0 = 1_763_900_000_000
EVENTS: list[dict[str, Any]] = [
    {"event": "lookup", "requester": "KGZ-BS", "purpose": "border_check", "outcome": "answered"},
    {"event": "lookup", "requester": "UZB-BS", "purpose": "visa_application",
     "outcome": "denied", "reason": "purpose_not_agreed"},
    {"event": "lookup_sent", "peer": "KGZ-BS", "purpose": "criminal_investigation",
     "outcome": "answered"},
    {"event": "lookup", "requester": "KGZ-BS", "purpose": "border_check", "outcome": "rejected",
     "reason": "bad_signature"},
    {"event": "watchlist_import", "documents": 3, "persons": 1, "operator": "Ержан"},
]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "node.db"
    store = Store.open(path, KEY, create=True)
    log = HashChainLog(store=store)
    with store.transaction():
        for i, e in enumerate(EVENTS):
            assert log.append(e, time_ms=T0 + i * 1000) == i + 1
    store.close()
    return path


@pytest.fixture
def log(db: Path) -> Iterator[HashChainLog]:
    store = Store.open(db, KEY)
    yield HashChainLog(store=store)
    store.close()


def _raw(db: Path) -> sqlcipher3.Connection:
    conn = sqlcipher3.connect(str(db), isolation_level=None)
    conn.execute(f"PRAGMA key = \"x'{KEY.hex()}'\"")
    return conn


def _verify(db: Path) -> tuple[bool, int | None, str]:
    store = Store.open(db, KEY)
    try:
        r = HashChainLog(store=store).verify()
    finally:
        store.close()
    return r.ok, r.first_bad_seq, r.problem


def _body(conn: sqlcipher3.Connection, seq: int) -> dict[str, Any]:
    row = conn.execute("SELECT body FROM audit WHERE seq=?", (seq,)).fetchone()
    result: dict[str, Any] = json.loads(row[0])
    return result


def test_append_and_verify(log: HashChainLog) -> None:
    r = log.verify()
    assert (r.ok, r.entries, r.first_bad_seq, r.problem) == (True, 5, None, "")
    rows = list(log._store.audit_rows())
    assert r.head == rows[-1].hash.hex()
    prev = GENESIS
    for i, row in enumerate(rows):
        assert row.prev_hash == prev
        assert row.hash == hashlib.sha256(b"bxnode-audit-v1\x00" + prev + row.body).digest()
        assert row.hash == entry_hash(prev, row.body)
        assert row.body == canonical_json({**EVENTS[i], "seq": i + 1, "time_ms": T0 + i * 1000,
                                           "v": 1})
        prev = row.hash


def test_body_is_canonical_ascii_json(log: HashChainLog) -> None:
    body = list(log._store.audit_rows())[4].body
    assert body == (b'{"documents":3,"event":"watchlist_import","operator":'
                    b'"\\u0415\\u0440\\u0436\\u0430\\u043d","persons":1,"seq":5,'
                    b'"time_ms":1763900004000,"v":1}')


def test_empty_log_verifies(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "e.db", KEY, create=True)
    try:
        r = HashChainLog(store=store).verify()
        assert (r.ok, r.entries, r.head) == (True, 0, "00" * 32)
    finally:
        store.close()


def test_append_rolls_back_with_the_transaction(log: HashChainLog) -> None:
    with pytest.raises(RuntimeError), log._store.transaction():
        assert log.append({"event": "x"}, time_ms=T0) == 6
        raise RuntimeError
    assert log.verify().entries == 5
    with log._store.transaction():
        assert log.append({"event": "x"}, time_ms=T0) == 6
    assert log.verify().ok


# --- tampering ------------------------------------------------------------------------------


def test_changed_body_is_detected(db: Path) -> None:
    conn = _raw(db)
    body = _body(conn, 2)
    body["outcome"] = "answered"
    conn.execute("UPDATE audit SET body=? WHERE seq=2", (canonical_json(body),))
    conn.close()
    assert _verify(db) == (False, 2, "entry 2 was changed after it was written")


def test_changed_body_with_recomputed_hash_breaks_the_next_link(db: Path) -> None:
    conn = _raw(db)
    body = _body(conn, 3)
    body["purpose"] = "border_check"
    new = canonical_json(body)
    prev = conn.execute("SELECT prev_hash FROM audit WHERE seq=3").fetchone()[0]
    conn.execute("UPDATE audit SET body=?, hash=? WHERE seq=3", (new, entry_hash(prev, new)))
    conn.close()
    assert _verify(db) == (False, 4, "entry 4 does not link to entry 3")


def test_changed_time_is_detected(db: Path) -> None:
    conn = _raw(db)
    conn.execute("UPDATE audit SET time_ms = time_ms + 1 WHERE seq=4")
    conn.close()
    assert _verify(db) == (False, 4, "entry 4 time was changed")


def test_deleted_middle_row_is_detected(db: Path) -> None:
    conn = _raw(db)
    conn.execute("DELETE FROM audit WHERE seq=3")
    conn.close()
    assert _verify(db) == (False, 3, "entry 3 is missing (next stored entry is 4)")


def test_deleted_first_row_is_detected(db: Path) -> None:
    conn = _raw(db)
    conn.execute("DELETE FROM audit WHERE seq=1")
    conn.close()
    assert _verify(db) == (False, 1, "entry 1 is missing (next stored entry is 2)")


def test_swapped_bodies_are_detected(db: Path) -> None:
    conn = _raw(db)
    b2, b3 = (conn.execute("SELECT body FROM audit WHERE seq=?", (s,)).fetchone()[0]
              for s in (2, 3))
    conn.execute("UPDATE audit SET body=? WHERE seq=2", (b3,))
    conn.execute("UPDATE audit SET body=? WHERE seq=3", (b2,))
    conn.close()
    assert _verify(db) == (False, 2, "entry 2 holds the body of another entry "
                                     "(reordered or copied)")


def test_swapped_rows_with_their_hashes_are_detected(db: Path) -> None:
    """Moving whole rows (body, prev_hash, hash) still breaks the order check."""
    conn = _raw(db)
    conn.execute("UPDATE audit SET seq = 100 WHERE seq=2")
    conn.execute("UPDATE audit SET seq = 2 WHERE seq=3")
    conn.execute("UPDATE audit SET seq = 3 WHERE seq=100")
    conn.execute("UPDATE audit SET time_ms = (SELECT time_ms FROM audit a WHERE a.seq=3) "
                 "WHERE seq=2")
    conn.close()
    ok, first, problem = _verify(db)
    assert (ok, first) == (False, 2)
    assert problem == "entry 2 holds the body of another entry (reordered or copied)"


def test_inserted_row_is_detected(db: Path) -> None:
    """A forged entry 3, chained correctly to entry 2, with later rows renumbered."""
    conn = _raw(db)
    for seq in (5, 4, 3):
        conn.execute("UPDATE audit SET seq = seq + 1 WHERE seq=?", (seq,))
    prev = conn.execute("SELECT hash FROM audit WHERE seq=2").fetchone()[0]
    body = canonical_json({"event": "lookup", "requester": "TJK-BS", "seq": 3,
                           "time_ms": T0 + 1500, "v": 1})
    conn.execute("INSERT INTO audit VALUES (3, ?, ?, ?, ?)",
                 (T0 + 1500, body, prev, entry_hash(prev, body)))
    conn.close()
    assert _verify(db) == (False, 4, "entry 4 holds the body of another entry "
                                     "(reordered or copied)")


def test_inserted_row_before_the_first_is_detected(db: Path) -> None:
    conn = _raw(db)
    body = canonical_json({"event": "x", "seq": 0, "time_ms": T0, "v": 1})
    conn.execute("INSERT INTO audit VALUES (0, ?, ?, ?, ?)",
                 (T0, body, GENESIS, entry_hash(GENESIS, body)))
    conn.close()
    assert _verify(db) == (False, 0, "entry 0 is out of order")


def test_forged_last_row_with_a_wrong_link_is_detected(db: Path) -> None:
    conn = _raw(db)
    body = canonical_json({"event": "x", "seq": 6, "time_ms": T0 + 9000, "v": 1})
    conn.execute("INSERT INTO audit VALUES (6, ?, ?, ?, ?)",
                 (T0 + 9000, body, GENESIS, entry_hash(GENESIS, body)))
    conn.close()
    assert _verify(db) == (False, 6, "entry 6 does not link to entry 5")


def test_body_that_is_not_json_is_detected(db: Path) -> None:
    conn = _raw(db)
    conn.execute("UPDATE audit SET body=? WHERE seq=5", (b"\x00garbage",))
    conn.close()
    assert _verify(db) == (False, 5, "entry 5 body is not valid JSON")


def test_report_counts_the_good_prefix(db: Path) -> None:
    conn = _raw(db)
    conn.execute("UPDATE audit SET time_ms = 0 WHERE seq=4")
    conn.close()
    store = Store.open(db, KEY)
    try:
        r = HashChainLog(store=store).verify()
        good = list(store.audit_rows())[2]
    finally:
        store.close()
    assert (r.ok, r.entries, r.head) == (False, 3, good.hash.hex())


# --- search ---------------------------------------------------------------------------------


def _seqs(log: HashChainLog, **q: Any) -> list[int]:
    return [e["seq"] for e in log.search(AuditQuery(**q))]


def test_search_all(log: HashChainLog) -> None:
    entries = list(log.search(AuditQuery()))
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[1] == {**EVENTS[1], "seq": 2, "time_ms": T0 + 1000, "v": 1}


def test_search_filters(log: HashChainLog) -> None:
    assert _seqs(log, peer="KGZ-BS") == [1, 3, 4]  # requester or peer
    assert _seqs(log, peer="UZB-BS") == [2]
    assert _seqs(log, peer="TJK-BS") == []
    assert _seqs(log, purpose="border_check") == [1, 4]
    assert _seqs(log, outcome="answered") == [1, 3]
    assert _seqs(log, outcome="denied") == [2]
    assert _seqs(log, peer="KGZ-BS", outcome="answered", purpose="border_check") == [1]


def test_search_time_bounds_are_inclusive(log: HashChainLog) -> None:
    assert _seqs(log, from_ms=T0 + 1000) == [2, 3, 4, 5]
    assert _seqs(log, to_ms=T0 + 1000) == [1, 2]
    assert _seqs(log, from_ms=T0 + 1000, to_ms=T0 + 3000) == [2, 3, 4]
    assert _seqs(log, from_ms=T0 + 1001, to_ms=T0 + 1999) == []


def test_search_limit(log: HashChainLog) -> None:
    assert _seqs(log, limit=2) == [1, 2]
    assert _seqs(log, limit=1, peer="KGZ-BS", from_ms=T0 + 1) == [3]
    assert _seqs(log, limit=100) == [1, 2, 3, 4, 5]
