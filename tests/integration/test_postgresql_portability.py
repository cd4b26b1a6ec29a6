"""The SQL modules under node/store/ run unchanged on both backends.

Each test runs twice: on a SQLCipher file and on PostgreSQL (a fresh database, migrated
with ``migrate``, the field codec protecting identifiers).  What they read back must be
the same on both; on PostgreSQL the identifiers must not be in the columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from node.store.db import Database
from node.store.fieldcrypt import KeyedCodec
from node.store.sqlcipher import Store

CODEC = KeyedCodec.from_key(bytes(range(32)))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        store = Store.open(tmp_path / "node.db", bytes(32), create=True)
        yield store
        store.close()
        return
    from node.store.postgresql import PgPool
    from node.store.postgresql.migrate import migrate

    cluster = request.getfixturevalue("pg_cluster")
    dsn = request.getfixturevalue("pg_dsn")
    pool = PgPool.open(dsn=dsn, password=cluster.password, codec=CODEC, check_schema=False)
    migrate(pool.database())
    yield pool.database()
    pool.close()


def test_the_audit_log_appends_seals_and_verifies(db: Database) -> None:
    from node.audit.log import MerkleAuditLog

    log = MerkleAuditLog(store=db, node_id="KAZ-BS",
                         signing_key=nacl.signing.SigningKey(bytes(range(32))))
    seqs = []
    for batch in range(3):
        with db.transaction():
            for i in range(7):
                seqs.append(log.append({"event": "lookup", "requester": "KGZ-BS",
                                        "outcome": "hit" if i % 2 else "no_hit",
                                        "request_digest": f"{batch:02}{i:062}"},
                                       time_ms=1_000 * (batch * 7 + i + 1)))
    assert seqs == list(range(1, 22))
    report = log.verify()
    assert report.ok, report
    head = log.latest_head()
    assert head is not None and head.size == 21
    assert len(log.inclusion_proof(5, 21)) > 0
    entry = log.entry_for_request(f"{1:02}{3:062}")
    assert entry is not None and entry.seq == 11


def test_registry_versions_are_kept_once(db: Database) -> None:
    from node.store.registry import RegistryTables, RegistryVersionRow

    t = RegistryTables(db)
    t.ensure_schema()
    assert t.latest_document() is None
    assert t.add(RegistryVersionRow(1, "d1", b"doc-1", 10)) is True
    assert t.add(RegistryVersionRow(2, "d2", b"doc-2", 20)) is True
    assert t.add(RegistryVersionRow(2, "other", b"other", 30)) is False
    assert (t.latest_document(), t.digest(2), t.document(1)) == (b"doc-2", "d2", b"doc-1")


def test_witness_state_is_a_compare_and_swap(db: Database) -> None:
    from node.store.witness import EvidenceRow, WitnessStateRow, WitnessTables

    t = WitnessTables(db)
    t.ensure_schema()
    first = WitnessStateRow("kgz.example/log", 5, b"r5", b"note5")
    t.insert_state(first, now_ms=1)
    newer = WitnessStateRow("kgz.example/log", 9, b"r9", b"note9")
    assert t.swap_state(newer, expected=first, now_ms=2) is True
    assert t.swap_state(newer, expected=first, now_ms=3) is False
    assert t.state("kgz.example/log") == newer
    t.add_evidence(EvidenceRow("kgz.example/log", 4, "fork", b"a", b"b"))
    assert t.evidence_count() == 1
    t.set_witnessed_size("UZB-BS", 3, now_ms=5)
    t.set_witnessed_size("UZB-BS", 8, now_ms=6)
    assert t.witnessed_sizes() == {"UZB-BS": 8}


def test_crossings_are_found_by_document_and_hide_their_identifiers(db: Database) -> None:
    from node.store.crossings import CrossingRow, CrossingTables

    t = CrossingTables(db)
    t.ensure_schema()
    rows = [CrossingRow(f"r{i}", "exit", "KAZ-KORDAI", 1_000 + i, "road",
                        "AC7654321" if i % 2 else "N11223344", "KGZ", "P", "Юсупов", "Тимур",
                        "1990-01-02", "KGZ") for i in range(4)]
    with db.transaction():
        for r in rows:
            t.insert(r, recorded_ms=5)
    assert t.get("r1") == rows[1]
    found = t.at(bcps=["KAZ-KORDAI"], event="exit", from_ms=0, to_ms=10_000,
                 document=("AC7654321", "KGZ", "P"))
    assert found == [rows[1], rows[3]]
    assert t.count() == 4
    stored = {v for r in db.query("SELECT doc_number, family_name FROM crossings") for v in r}
    if db.codec.protects:  # PostgreSQL: blind indexes and blanks, never the values
        assert not stored & {"AC7654321", "N11223344", "Юсупов"}
    else:  # SQLCipher: the values themselves (the whole file is encrypted)
        assert {"AC7654321", "N11223344", "Юсупов"} <= stored


def test_receipt_proofs_upsert(db: Database) -> None:
    from node.store.receipts import ReceiptTables

    t = ReceiptTables(db)
    t.ensure_schema()
    t.put_proof(b"\x01" * 32, peer="KGZ-BS", bundle=b"b1", fetched_ms=1)
    t.put_proof(b"\x01" * 32, peer="KGZ-BS", bundle=b"b2", fetched_ms=2)
    assert t.proof(b"\x01" * 32) == b"b2"
    assert t.proof(b"\x02" * 32) is None


@pytest.mark.postgresql
def test_an_import_leaves_the_planner_statistics_of_what_it_loaded(
        pg_cluster: Any, pg_dsn: str, tmp_path: Path) -> None:
    """Without them PostgreSQL's planner takes each number as matching 1/200 of the table
    and scans all of it for a batch's list of numbers (benchmarks/README.md: 50 ms a batch
    of 100 among 110,000 documents); a refused import analyses nothing (it wrote nothing)."""
    import datetime as dt

    from node.store.postgresql import PgPool
    from node.store.postgresql.migrate import migrate
    from node.watchlist.importer import import_file

    pool = PgPool.open(dsn=pg_dsn, password=pg_cluster.password, codec=CODEC,
                       check_schema=False)
    try:
        db = pool.database()
        migrate(db)
        header = "kind,owner_ref,action,expires,number,issuing_state,doc_type,family_name," \
                 "given_names,dob,nationality,sex\n"
        bad = tmp_path / "bad.csv"
        bad.write_text(header + "document,D1,inform,2036-01-01,N1,KAZ,P,,,,,\n"
                       "document,D2,inform,not-a-date,N2,KAZ,P,,,,,\n")
        today = dt.date(2026, 7, 1)
        assert import_file(bad, store=db, today=today).written is False
        assert analysed(pg_cluster, pg_dsn) == set()
        good = tmp_path / "good.csv"
        good.write_text(header + "".join(
            f"document,D{i},inform,2036-01-01,N{i:06d},KAZ,P,,,,,\n" for i in range(300))
            + "person,P1,inform,2036-01-01,,,,Иванов,Иван,1990-01-01,KAZ,M\n")
        assert import_file(good, store=db, today=today).written is True
        assert analysed(pg_cluster, pg_dsn) == {"documents", "persons"}
    finally:
        pool.close()


def analysed(cluster: Any, dsn: str) -> set[str]:
    """The watchlist tables that have planner statistics (pg_stats is transactional: what
    a committed ANALYZE wrote, never autovacuum's plans)."""
    dbname = dsn.split("dbname=")[1].split()[0]
    with cluster.admin(dbname) as conn:
        return {str(r[0]) for r in conn.execute(
            "SELECT DISTINCT tablename FROM pg_stats WHERE tablename IN ('documents', 'persons')")}
