"""The Merkle audit log over a real Store; tampering done with a raw SQLCipher connection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
import sqlcipher3

from node.audit.checkpoint import Checkpoint, open_checkpoint
from node.audit.log import (
    AuditQuery,
    ErasureRecord,
    MerkleAuditLog,
    body_commitment,
    canonical_json,
    decode_leaf,
    encode_leaf,
    log_origin,
)
from node.audit.merkle import (
    MerkleTree,
    StoreCorrupt,
    hash_leaf,
    verify_consistency,
    verify_inclusion,
)
from node.audit.note import parse_note
from node.store.sqlcipher import Store

KEY = bytes(range(100, 132))
SK = nacl.signing.SigningKey(bytes(range(32)))
T0 = 1_763_900_000_000
EVENTS: list[dict[str, Any]] = [
    {"event": "lookup", "requester": "KGZ-BS", "purpose": "border_check", "outcome": "answered",
     "operator": "kg-1", "case_ref": "C-1", "request_digest": "aa" * 32},
    {"event": "lookup", "requester": "UZB-BS", "purpose": "visa_application",
     "outcome": "denied", "reason": "purpose_not_agreed"},
    {"event": "lookup_sent", "peer": "KGZ-BS", "purpose": "criminal_investigation",
     "outcome": "answered"},
    {"event": "lookup", "requester": "KGZ-BS", "purpose": "border_check", "outcome": "rejected",
     "reason": "bad_signature"},
    {"event": "watchlist_import", "documents": 3, "persons": 1, "operator": "Ержан"},
]


def _log(store: Store) -> MerkleAuditLog:
    return MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Five entries in three commits: checkpoints of sizes 2, 4 and 5."""
    path = tmp_path / "node.db"
    store = Store.open(path, KEY, create=True)
    log = _log(store)
    for chunk in ((0, 1), (2, 3), (4,)):
        with store.transaction():
            for i in chunk:
                assert log.append(EVENTS[i], time_ms=T0 + i * 1000) == i + 1
    store.close()
    return path


@pytest.fixture
def log(db: Path) -> Iterator[MerkleAuditLog]:
    store = Store.open(db, KEY)
    yield _log(store)
    store.close()


def _raw(db: Path) -> sqlcipher3.Connection:
    conn = sqlcipher3.connect(str(db), isolation_level=None)
    conn.execute(f"PRAGMA key = \"x'{KEY.hex()}'\"")
    return conn


def _verify(db: Path) -> tuple[bool, int | None, str]:
    store = Store.open(db, KEY)
    try:
        r = _log(store).verify()
    finally:
        store.close()
    return r.ok, r.first_bad_seq, r.problem


def test_append_seal_and_verify(log: MerkleAuditLog) -> None:
    r = log.verify()
    assert (r.ok, r.entries, r.checkpoints, r.first_bad_seq) == (True, 5, 3, None)
    assert [h.size for h in log.heads()] == [2, 4, 5]
    # the leaf is seq, time and the salted body hash; the tree is RFC 9162 over the leaves
    leaves = []
    for e in log.entries():
        assert e.body is not None and e.salt is not None
        d = decode_leaf(e.leaf)
        assert (d.seq, d.time_ms) == (e.seq, e.time_ms)
        assert d.commitment == hashlib.sha256(e.salt + e.body).digest()
        assert e.leaf == encode_leaf(e.seq, e.time_ms, body_commitment(e.salt, e.body))
        assert json.loads(e.body)["seq"] == e.seq
        leaves.append(hash_leaf(e.leaf))
    from node.audit.merkle import InMemoryHashStore

    ref = MerkleTree.empty(InMemoryHashStore())
    ref.append(leaves)
    head = log.latest_head()
    assert head is not None
    cp = open_checkpoint(head.note, log_verifiers=[log.verifier],  # type: ignore[list-item]
                         origin=log_origin("KAZ-BS")).checkpoint
    assert (cp.size, cp.root_hash) == (5, ref.root()) and r.head == ref.root().hex()
    assert parse_note(head.note).text.startswith("bxnode/KAZ-BS\n5\n")


def test_body_is_canonical_ascii_json(log: MerkleAuditLog) -> None:
    e = log.entry(5)
    assert e is not None and e.body == (
        b'{"documents":3,"event":"watchlist_import","operator":'
        b'"\\u0415\\u0440\\u0436\\u0430\\u043d","persons":1,"seq":5,'
        b'"time_ms":1763900004000,"v":2}')


def test_proofs_from_stored_hashes_verify(log: MerkleAuditLog) -> None:
    heads = {h.size: Checkpoint.parse(parse_note(h.note).text).root_hash for h in log.heads()}
    for size, root in heads.items():
        for seq in range(1, size + 1):
            e = log.entry(seq)
            assert e is not None
            verify_inclusion(leaf_hash=hash_leaf(e.leaf), index=seq - 1, size=size,
                             proof=log.inclusion_proof(seq, size), root=root)
    verify_consistency(old_size=2, new_size=5, old_root=heads[2], new_root=heads[5],
                       proof=log.consistency_proof(2, 5))


def test_empty_log_verifies(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "e.db", KEY, create=True)
    try:
        r = _log(store).verify()
        assert (r.ok, r.entries, r.head) == (True, 0, hashlib.sha256(b"").hexdigest())
    finally:
        store.close()


def test_append_rolls_back_with_the_transaction(log: MerkleAuditLog) -> None:
    with pytest.raises(RuntimeError), log.store.transaction():
        assert log.append({"event": "x"}, time_ms=T0) == 6
        raise RuntimeError
    assert log.verify().entries == 5 and len(log.heads()) == 3
    with log.store.transaction():
        assert log.append({"event": "x"}, time_ms=T0) == 6
    assert log.verify().ok and len(log.heads()) == 4


def test_unsigned_appends_are_sealed_by_the_next_signed_commit(log: MerkleAuditLog) -> None:
    unsigned = MerkleAuditLog(store=log.store)
    unsigned.append({"event": "x"}, time_ms=T0)
    assert log.latest_head().size == 5  # type: ignore[union-attr]
    log.append({"event": "y"}, time_ms=T0)
    assert log.latest_head().size == 7  # type: ignore[union-attr]
    assert log.verify().ok


def test_search_filters(log: MerkleAuditLog) -> None:
    def seqs(**kw: Any) -> list[int]:
        return [e["seq"] for e in log.search(AuditQuery(**kw))]

    assert seqs() == [1, 2, 3, 4, 5]
    assert seqs(peer="KGZ-BS") == [1, 3, 4]
    assert seqs(purpose="border_check", outcome="answered") == [1]
    assert seqs(operator="kg-1") == [1]
    assert seqs(case_ref="C-1") == [1]
    assert seqs(from_ms=T0 + 1000, to_ms=T0 + 3000) == [2, 3, 4]
    assert seqs(limit=2) == [1, 2]


def test_erasure_keeps_the_tree_verifiable_and_is_recorded(log: MerkleAuditLog) -> None:
    day = 86_400_000
    now = T0 + 10 * day + 1500
    assert log.erase_expired(now_ms=now, retention_ms=10 * day,
                             facts={"retention_days": 10}) == 2
    e = log.entry(1)
    assert e is not None and e.body is None and e.salt is None
    # the erasure is entry 6: the retention used and the range erased, at the erasure's time
    record = json.loads(log.entry(6).body)  # type: ignore[union-attr, arg-type]
    assert (record["event"], record["time_ms"], record["retention_days"]) == (
        "audit_erasure", now, 10)
    assert record["audit_erasure"] == {"erased_ms": now, "retention_ms": 10 * day,
                                       "before_ms": T0 + 1500, "erased": 2, "first_seq": 1,
                                       "last_seq": 2}
    r = log.verify()
    assert (r.ok, r.erased, r.entries, r.unsealed) == (True, 2, 6, 0)
    assert r.erasures == ((6, ErasureRecord(now, 10 * day, 2, 1, 2)),)
    assert [x["seq"] for x in log.search(AuditQuery(peer="KGZ-BS"))] == [3, 4]


def test_erasure_records_are_never_erased(log: MerkleAuditLog) -> None:
    day = 86_400_000
    log.erase_expired(now_ms=T0 + day + 1500, retention_ms=day)  # erases 1, 2; record 6
    later = T0 + 100 * day
    assert log.erase_expired(now_ms=later, retention_ms=day) == 3  # 3, 4, 5; not 6
    assert log.entry(6).body is not None  # type: ignore[union-attr]
    r = log.verify()
    assert (r.ok, r.erased, [seq for seq, _ in r.erasures]) == (True, 5, [6, 7])


def _erase_raw(db: Path, seq: int, erased_ms: int) -> None:
    conn = _raw(db)
    conn.execute("UPDATE audit_entries SET body=NULL, salt=NULL, erased_ms=? WHERE seq=?",
                 (erased_ms, seq))
    conn.close()


def test_an_erasure_without_a_record_is_tampering(db: Path) -> None:
    _erase_raw(db, 3, T0 + 10**9)  # what erase-expired did before erasures were recorded
    assert _verify(db) == (False, 3, "entry 3 body was erased with no recorded erasure "
                                     "covering it (tampering)")


def test_a_record_covers_only_what_it_says(db: Path) -> None:
    day = 86_400_000
    now = T0 + 10 * day + 1500
    store = Store.open(db, KEY)
    try:
        _log(store).erase_expired(now_ms=now, retention_ms=10 * day)  # 1, 2; record is 6
    finally:
        store.close()
    # entry 3 is younger than the record's cutoff: its erasure is not covered
    _erase_raw(db, 3, now)
    assert _verify(db)[:2] == (False, 3)


def test_more_bodies_erased_than_recorded_is_named(db: Path) -> None:
    day = 86_400_000
    now = T0 + 10 * day + 5000
    store = Store.open(db, KEY)
    try:  # a record that erased one of 1..2 (the other was kept, e.g. by a hold)
        log = _log(store)
        with store.transaction():
            store.execute("UPDATE audit_entries SET body=NULL, salt=NULL, erased_ms=? "
                          "WHERE seq=1", (now,))
            log.append({"event": "retention_sweep", "audit_erasure": ErasureRecord(
                now, 10 * day, 1, 1, 2).to_json()}, time_ms=now)
        assert log.verify().ok
    finally:
        store.close()
    _erase_raw(db, 2, now)  # ... and then the kept one, under the record's time
    assert _verify(db) == (False, 6, f"entry 6 records 1 erased bodies at {now}, but 2 "
                                     "bodies carry that erasure time")


def test_the_retention_sweep_records_its_erasure_in_the_same_format(db: Path) -> None:
    from node.retention.settings import DAY_MS, RetentionSettings
    from node.retention.sweep import RetentionSweep
    from node.store.crossings import CrossingTables

    later = T0 + 1100 * DAY_MS
    store = Store.open(db, KEY)
    try:
        CrossingTables(store).ensure_schema()  # the sweep's tables (a node creates them)
        log = _log(store)
        report = RetentionSweep(db=store, audit=log, settings=RetentionSettings(),
                                clock_ms=lambda: later).run()
        assert (report.erased["audit_bodies"], report.audit_seq) == (5, 6)
        sweep = json.loads(log.entry(6).body)  # type: ignore[union-attr, arg-type]
        assert ErasureRecord.from_json(sweep["audit_erasure"]) == ErasureRecord(
            later, 1095 * DAY_MS, 5, 1, 5)
        r = log.verify()
        assert (r.ok, r.erased) == (True, 5)
        # a second sweep later erases nothing more: the sweep's own record is kept
        RetentionSweep(db=store, audit=log, settings=RetentionSettings(),
                       clock_ms=lambda: later + 1100 * DAY_MS).run()
        assert log.entry(6).body is not None and log.verify().ok  # type: ignore[union-attr]
    finally:
        store.close()


# --- tampering ------------------------------------------------------------------------------


def _body(conn: sqlcipher3.Connection, seq: int) -> dict[str, Any]:
    row = conn.execute("SELECT body FROM audit_entries WHERE seq=?", (seq,)).fetchone()
    result: dict[str, Any] = json.loads(row[0])
    return result


def test_changed_body_is_detected(db: Path) -> None:
    conn = _raw(db)
    body = _body(conn, 2)
    body["outcome"] = "answered"
    conn.execute("UPDATE audit_entries SET body=? WHERE seq=2", (canonical_json(body),))
    conn.close()
    assert _verify(db) == (False, 2, "entry 2 was changed after it was written")


def test_changed_body_with_recomputed_leaf_is_located(db: Path) -> None:
    conn = _raw(db)
    body = canonical_json({**_body(conn, 3), "purpose": "border_check"})
    salt, time_ms = conn.execute("SELECT salt, time_ms FROM audit_entries WHERE seq=3").fetchone()
    leaf = encode_leaf(3, time_ms, body_commitment(salt, body))
    conn.execute("UPDATE audit_entries SET body=?, leaf=? WHERE seq=3", (body, leaf))
    conn.close()
    ok, first, problem = _verify(db)
    assert (ok, first) == (False, 3) and "entry 3 was changed" in problem


def test_rewritten_leaf_and_stored_hash_still_fail_the_checkpoint(db: Path) -> None:
    conn = _raw(db)
    body = canonical_json({**_body(conn, 3), "purpose": "border_check"})
    salt, time_ms = conn.execute("SELECT salt, time_ms FROM audit_entries WHERE seq=3").fetchone()
    leaf = encode_leaf(3, time_ms, body_commitment(salt, body))
    conn.execute("UPDATE audit_entries SET body=?, leaf=? WHERE seq=3", (body, leaf))
    conn.execute("UPDATE audit_hashes SET hash=? WHERE level=0 AND idx=2", (hash_leaf(leaf),))
    conn.close()
    ok, first, problem = _verify(db)
    assert (ok, first) == (False, 3)
    assert problem == "an entry in 3..4 was changed after it was written (checkpoint 4 " \
                      "does not match)"


def test_changed_time_is_detected(db: Path) -> None:
    conn = _raw(db)
    conn.execute("UPDATE audit_entries SET time_ms = time_ms + 1 WHERE seq=4")
    conn.close()
    assert _verify(db) == (False, 4, "entry 4 time was changed")


def test_deleted_middle_row_is_detected(db: Path) -> None:
    conn = _raw(db)
    conn.execute("DELETE FROM audit_entries WHERE seq=3")
    conn.close()
    assert _verify(db) == (False, 3, "entry 3 is missing (next stored entry is 4)")


def test_deleted_last_rows_are_detected(db: Path) -> None:
    """Truncation: the signed checkpoint still covers the removed entries."""
    conn = _raw(db)
    conn.execute("DELETE FROM audit_entries WHERE seq>=4")
    conn.close()
    assert _verify(db) == (False, 4, "entries 4..5 are missing: checkpoint of size 5 "
                                     "covers them")


def test_deleted_body_is_detected(db: Path) -> None:
    conn = _raw(db)
    conn.execute("UPDATE audit_entries SET body=NULL WHERE seq=2")
    conn.close()
    assert _verify(db) == (False, 2, "entry 2 body was deleted")


def test_swapped_bodies_are_detected(db: Path) -> None:
    conn = _raw(db)
    b2, b3 = (conn.execute("SELECT body FROM audit_entries WHERE seq=?", (s,)).fetchone()[0]
              for s in (2, 3))
    conn.execute("UPDATE audit_entries SET body=? WHERE seq=2", (b3,))
    conn.execute("UPDATE audit_entries SET body=? WHERE seq=3", (b2,))
    conn.close()
    assert _verify(db) == (False, 2, "entry 2 was changed after it was written")


def test_swapped_rows_are_detected(db: Path) -> None:
    """Moving whole rows (salt, body, leaf): the leaf commits to its seq."""
    conn = _raw(db)
    conn.execute("UPDATE audit_entries SET seq = 100 WHERE seq=2")
    conn.execute("UPDATE audit_entries SET seq = 2 WHERE seq=3")
    conn.execute("UPDATE audit_entries SET seq = 3 WHERE seq=100")
    conn.close()
    assert _verify(db) == (False, 2, "entry 2 holds the leaf of entry 3 (reordered or copied)")


def test_inserted_row_is_detected(db: Path) -> None:
    conn = _raw(db)
    for seq in (5, 4, 3):
        conn.execute("UPDATE audit_entries SET seq = seq + 1 WHERE seq=?", (seq,))
    body = canonical_json({"event": "lookup", "requester": "TJK-BS", "seq": 3,
                           "time_ms": T0 + 1500, "v": 2})
    salt = b"s" * 32
    conn.execute("INSERT INTO audit_entries (seq, time_ms, salt, body, leaf) VALUES (3,?,?,?,?)",
                 (T0 + 1500, salt, body, encode_leaf(3, T0 + 1500, body_commitment(salt, body))))
    conn.close()
    ok, first, problem = _verify(db)
    assert (ok, first) == (False, 3) and "changed or inserted" in problem


def test_rewritten_checkpoint_is_detected(db: Path) -> None:
    conn = _raw(db)
    note = conn.execute("SELECT note FROM audit_checkpoints WHERE size=4").fetchone()[0]
    forged = bytes(note).replace(b"\n4\n", b"\n3\n", 1)
    conn.execute("UPDATE audit_checkpoints SET note=? WHERE size=4", (forged,))
    conn.close()
    ok, first, problem = _verify(db)
    assert (ok, first) == (False, 4) and "checkpoint of size 4 does not verify" in problem


def test_checkpoint_signed_by_another_key_is_detected(db: Path) -> None:
    from node.audit.checkpoint import sign_checkpoint
    from node.audit.note import Ed25519NoteSigner

    conn = _raw(db)
    root = conn.execute("SELECT root FROM audit_checkpoints WHERE size=2").fetchone()[0]
    other = Ed25519NoteSigner(name="bxnode/KAZ-BS", seed=b"\x07" * 32)
    note = sign_checkpoint(Checkpoint("bxnode/KAZ-BS", 2, bytes(root)), [other])
    conn.execute("UPDATE audit_checkpoints SET note=? WHERE size=2", (note,))
    conn.close()
    ok, first, _ = _verify(db)
    assert (ok, first) == (False, 2)


def test_node_refuses_to_sign_an_inconsistent_checkpoint(db: Path) -> None:
    """If the stored tree no longer extends the last signed root, no checkpoint is signed."""
    conn = _raw(db)
    conn.execute("UPDATE audit_hashes SET hash=? WHERE level=2 AND idx=0", (b"\x01" * 32,))
    conn.close()
    store = Store.open(db, KEY)
    try:
        log = _log(store)
        with pytest.raises(StoreCorrupt) as err:
            log.append({"event": "x"}, time_ms=T0)
        assert err.value.reason == "inconsistent_log"
        assert log.next_seq() == 6 and log.latest_head().size == 5  # type: ignore[union-attr]
    finally:
        store.close()


@pytest.mark.parametrize("seqs", [(6, 8), (7,), (6, 6)], ids=["gap", "skipped", "twice"])
def test_a_batch_numbered_with_a_gap_is_never_sealed(db: Path, seqs: tuple[int, ...]) -> None:
    """The seal checks that the entries after the last checkpoint (size 5) go on from it
    without a gap: a wrong reserved seq rolls the whole transaction back, unsigned."""
    store = Store.open(db, KEY)
    log = _log(store)
    with pytest.raises((StoreCorrupt, sqlcipher3.IntegrityError)) as err:
        with store.transaction():
            for seq in seqs:
                log.append(EVENTS[0], time_ms=T0 + 9000, seq=seq)
    if isinstance(err.value, StoreCorrupt):
        assert "not numbered 1..n" in err.value.message
    assert log.next_seq() == 6 and [h.size for h in log.heads()] == [2, 4, 5]
    with store.transaction():  # numbered on, it seals
        assert log.append(EVENTS[0], time_ms=T0 + 9000) == 6
    assert [h.size for h in log.heads()] == [2, 4, 5, 6] and log.verify().ok
    store.close()
