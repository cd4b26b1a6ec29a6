"""The domain SQL modules under node/store/ on both backends: the same results on the
embedded SQLCipher store and on PostgreSQL, and no plaintext identifier in PostgreSQL.

The PostgreSQL half runs on the private cluster (tests/pgcluster.py) and is skipped, with
the reason, where PostgreSQL cannot be had.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from node.audit.log import AuditQuery, MerkleAuditLog
from node.audit.merkle import hash_leaf, verify_inclusion
from node.core.model import DocumentQuery, PartialDate, PersonQuery, Sex
from node.crossings.bcps import Bcp, BcpMap
from node.crossings.model import (
    CrossingEvent,
    CrossingQuestion,
    CrossingRecord,
    Direction,
    TravelMode,
)
from node.crossings.store import CrossingStore
from node.followup.store import FollowUpRow, FollowUpStore, SentRow
from node.store.db import Database
from node.store.receipts import REQUEST_ENV_KIND, RESPONSE_ENV_KIND, ReceiptTables
from node.store.registry import RegistryTables, RegistryVersionRow
from node.store.sqlcipher import Store
from node.store.witness import EvidenceRow, WitnessStateRow, WitnessTables

SK = nacl.signing.SigningKey(bytes(range(32)))
T0 = 1_763_900_000_000


@pytest.fixture
def db(any_db: Database) -> Database:
    """Either backend (tests/unit/store/conftest.py)."""
    return any_db


def all_text(db: Database, table: str) -> str:
    """Every value of ``table`` as one string (bytes decoded leniently), to search in."""
    out = []
    for row in db.query(f"SELECT * FROM {table}"):
        for v in row:
            out.append(bytes(v).decode("utf-8", "replace") if isinstance(v, bytes | memoryview)
                       else str(v))
    return "\x00".join(out)


# --- audit log ---------------------------------------------------------------------------


def test_audit_log_appends_seals_searches_erases_and_verifies(db: Database) -> None:
    log = MerkleAuditLog(store=db, node_id="KAZ-BS", signing_key=SK)
    events: list[dict[str, Any]] = [
        {"event": "lookup", "requester": "KGZ-BS", "purpose": "border_check",
         "request_digest": "aa" * 32},
        {"event": "lookup_sent", "peer": "UZB-BS", "request_digest": "bb" * 32},
        {"event": "lookup", "requester": "UZB-BS", "purpose": "migration_control",
         "request_digest": "bb" * 32},
        {"event": "LOOKUP_SENT", "peer": "UZB-BS", "request_digest": "cc" * 32},
    ]
    for i, e in enumerate(events):
        with db.transaction():
            assert log.append(e, time_ms=T0 + i) == i + 1
    assert [h.size for h in log.heads()] == [1, 2, 3, 4]
    assert log.next_seq() == 5
    head = log.latest_head()
    assert head is not None and head.size == 4
    # the received entry, not the sent one with the same digest; case folded as SQLite did
    got = log.entry_for_request("bb" * 32)
    assert got is not None and got.seq == 3
    assert log.entry_for_request("cc" * 32) is None
    assert [b["seq"] for b in log.search(AuditQuery(peer="UZB-BS"))] == [2, 3, 4]
    assert [b["seq"] for b in log.search(AuditQuery(purpose="border_check"))] == [1]
    assert [b["seq"] for b in log.search(AuditQuery(from_ms=T0 + 1, to_ms=T0 + 2,
                                                    limit=1))] == [2]
    entry = log.entry(2)
    assert entry is not None
    proof = log.inclusion_proof(2, 4)
    verify_inclusion(leaf_hash=hash_leaf(entry.leaf), index=1, size=4, proof=proof,
                     root=head.root)
    with db.transaction():
        log.add_cosignature(4, "w/UZB-BS", "— w/UZB-BS old", time_ms=T0)
        log.add_cosignature(4, "w/KGZ-BS", "— w/KGZ-BS", time_ms=T0)
        log.add_cosignature(4, "w/UZB-BS", "— w/UZB-BS new", time_ms=T0 + 9)
    head = log.head(4)
    assert head is not None and head.cosignatures == ("— w/KGZ-BS", "— w/UZB-BS new")
    assert log.erase_expired(now_ms=T0 + 10, retention_ms=8) == 2  # and records it: entry 5
    assert [b.get("erased", False) for b in log.bodies()] == [True, True, False, False, False]
    assert log.entry_for_request("aa" * 32) is None
    report = log.verify()
    assert (report.ok, report.entries, report.erased, report.checkpoints) == (True, 5, 2, 5)
    assert [seq for seq, _ in report.erasures] == [5]


# --- witnessing, receipt proofs, registry --------------------------------------------------


def test_witness_tables_compare_and_swap_and_upsert(db: Database) -> None:
    t = WitnessTables(db)
    t.ensure_schema()
    first = WitnessStateRow("bxnode/KGZ-BS", 3, b"r" * 32, b"note3")
    t.insert_state(first, now_ms=T0)
    second = WitnessStateRow("bxnode/KGZ-BS", 5, b"s" * 32, b"note5")
    assert t.swap_state(second, expected=first, now_ms=T0 + 1)
    assert not t.swap_state(second, expected=first, now_ms=T0 + 2)  # no longer the state
    assert t.state("bxnode/KGZ-BS") == second
    t.insert_state(WitnessStateRow("bxnode/A-B", 1, b"a" * 32, b"n"), now_ms=T0)
    assert list(t.states().items()) == [("bxnode/A-B", 1), ("bxnode/KGZ-BS", 5)]
    t.set_witnessed_size("UZB-BS", 4, now_ms=T0)
    t.set_witnessed_size("UZB-BS", 9, now_ms=T0 + 1)
    t.set_witnessed_size("KGZ-BS", 2, now_ms=T0)
    assert list(t.witnessed_sizes().items()) == [("KGZ-BS", 2), ("UZB-BS", 9)]
    assert (t.witnessed_size("UZB-BS"), t.witnessed_size("nobody")) == (9, 0)
    t.add_evidence(EvidenceRow("bxnode/KGZ-BS", T0, "inconsistent", None, b"sub1"))
    t.add_evidence(EvidenceRow("bxnode/KGZ-BS", T0 + 1, "bad_proof", b"st", b"sub2"))
    assert t.evidence_count() == 2
    assert [e.submitted_note for e in t.evidence()] == [b"sub1", b"sub2"]


def test_receipt_proofs_upsert_and_received_receipts_open(db: Database) -> None:
    t = ReceiptTables(db)
    t.ensure_schema()
    t.put_proof(b"d" * 32, peer="KAZ-BS", bundle=b"one", fetched_ms=T0)
    t.put_proof(b"d" * 32, peer="KAZ-BS", bundle=b"two", fetched_ms=T0 + 1)
    assert (t.proof(b"d" * 32), t.proof(b"e" * 32)) == (b"two", None)
    seal = db.codec.seal
    for i, (direction, peer) in enumerate([("received", "KGZ-BS"), ("sent", "KGZ-BS"),
                                           ("received", "UZB-BS"), ("received", "KGZ-BS")]):
        db.execute("INSERT INTO receipts (direction, peer, request_digest, request_env, "
                   "response_env, created_ms) VALUES (?,?,?,?,?,?)",
                   (direction, peer, b"d" * 32, seal(REQUEST_ENV_KIND, b"rq%d" % i),
                    seal(RESPONSE_ENV_KIND, b"rs%d" % i), T0))
    got = t.received(peer="KGZ-BS", request_digest=b"d" * 32)
    assert [(r.request_env, r.response_env) for r in got] == [(b"rq0", b"rs0"), (b"rq3", b"rs3")]


def test_registry_versions_are_kept_once(db: Database) -> None:
    t = RegistryTables(db)
    t.ensure_schema()
    assert t.latest_document() is None
    assert t.add(RegistryVersionRow(7, "d7", b"doc7", T0))
    assert not t.add(RegistryVersionRow(7, "other", b"other", T0 + 1))
    assert t.add(RegistryVersionRow(8, "d8", b"doc8", T0))
    assert (t.latest_document(), t.digest(7), t.document(7), t.document(9)) == (
        b"doc8", "d7", b"doc7", None)


# --- crossings ---------------------------------------------------------------------------


def _crossing(rid: str, at: int, *, number: str = "AC7654321", family: str = "Асанов",
              event: CrossingEvent = CrossingEvent.EXIT, bcp: str = "KAZ-KORDAI") -> CrossingRecord:
    return CrossingRecord(
        record_id=rid, event=event, bcp=bcp, crossed_at_ms=at, mode=TravelMode.ROAD,
        document=DocumentQuery(number=number, issuing_state="KGZ", doc_type="P"),
        family_name=family, given_names="Бакыт" if family else "",
        date_of_birth=PartialDate.parse("1979-11-02") if family else None, nationality="KGZ")


def test_crossings_store_finds_and_protects(db: Database) -> None:
    cs = CrossingStore(db)
    with db.transaction():
        cs.replace_bcps(BcpMap(bcps={
            "KGZ-AKZHOL": Bcp("KGZ-AKZHOL", "KGZ", "Ak-Zhol", (TravelMode.ROAD,)),
            "KAZ-KORDAI": Bcp("KAZ-KORDAI", "KAZ", "Kordai", (TravelMode.ROAD, TravelMode.RAIL)),
        }, pairs=(("KAZ-KORDAI", "KGZ-AKZHOL", "kordai"),)))
    bmap = cs.bcp_map()
    assert list(bmap.bcps) == ["KAZ-KORDAI", "KGZ-AKZHOL"]
    assert bmap.bcps["KAZ-KORDAI"].modes == (TravelMode.ROAD, TravelMode.RAIL)
    assert bmap.pairs == (("KAZ-KORDAI", "KGZ-AKZHOL", "kordai"),)
    records = [_crossing("R-2", T0 + 5), _crossing("R-1", T0 + 5),
               _crossing("R-0", T0 + 1, number="ZZ0000001", family=""),
               _crossing("R-3", T0 + 2, event=CrossingEvent.ENTRY)]
    with db.transaction():
        assert cs.insert(records, now_ms=T0) == (4, 0)
        assert cs.insert(records[:1], now_ms=T0) == (0, 1)
    with pytest.raises(Exception, match="other content"), db.transaction():
        cs.insert([_crossing("R-2", T0 + 6)], now_ms=T0)
    assert cs.count() == 4
    by_doc = CrossingQuestion(subject=DocumentQuery(number="AC7654321", issuing_state="KGZ",
                                                    doc_type="P"),
                              direction=Direction.EXIT, window_start_ms=T0,
                              window_end_ms=T0 + 10, bcp="KAZ-KORDAI")
    found = cs.find(by_doc, ["KAZ-KORDAI"])
    assert found is not None and found.record_id == "R-1"  # same time: by record id
    assert found == records[1]
    person = PersonQuery(family_name="Асанов", given_names="Бакыт",
                         date_of_birth=PartialDate.parse("1979-11-02"), nationality="KGZ",
                         sex=Sex.MALE)
    by_name = CrossingQuestion(subject=person, direction=Direction.EXIT, window_start_ms=T0,
                               window_end_ms=T0 + 10, bcp="KAZ-KORDAI")
    found = cs.find(by_name, ["KAZ-KORDAI"])
    assert found is not None and found.record_id == "R-1"
    assert [r.record_id for r in cs.records(bcps=["KAZ-KORDAI"], event=CrossingEvent.EXIT,
                                            from_ms=T0, to_ms=T0 + 10)] == ["R-0", "R-1", "R-2"]
    text = all_text(db, "crossings")
    if db.codec.protects:
        for secret in ("AC7654321", "ZZ0000001", "Асанов", "Бакыт"):
            assert secret not in text
    else:
        assert "AC7654321" in text and "Асанов" in text


# --- follow-ups --------------------------------------------------------------------------


def _followup(fid: str, filed: int, *, deadline: int) -> FollowUpRow:
    return FollowUpRow(
        id=fid, requester="KGZ-BS", state="pending", record_kind="document",
        hit_reference="KAZ-REF-000123", hit_request_digest=b"h" * 32, hit_item_index=0,
        hit_audit_seq=7, purpose="border_check", legal_basis="art. 7", case_ref="C-1",
        operator="kg-1", requested=("document_number", "issuing_state"),
        allowed=("document_number",), file_digest=b"f" * 32, filed_ms=filed,
        deadline_ms=deadline)


def test_followups_store_round_trips_and_protects(db: Database) -> None:
    fs = FollowUpStore(db)
    with db.transaction():
        fs.add(_followup("FU-B", T0, deadline=T0 + 10))
        fs.add(_followup("FU-A", T0, deadline=T0 + 20))
        fs.add(_followup("FU-C", T0 - 1, deadline=T0 + 30))
    assert [f.id for f in fs.all()] == ["FU-C", "FU-A", "FU-B"]
    assert [f.id for f in fs.due(T0 + 25)] == ["FU-B", "FU-A"]
    fs.mark_overdue("FU-B", T0 + 25)
    assert [f.id for f in fs.due(T0 + 25)] == ["FU-A"]
    decision = b"signed decision: AC7654321"
    assert fs.decide("FU-B", state="approved", now_ms=T0 + 26, by="kz-1",
                     released=("document_number",), deny_reason="", decision_env=decision)
    assert not fs.decide("FU-B", state="denied", now_ms=T0 + 27, by="kz-1", released=(),
                         deny_reason="x", decision_env=b"")
    assert fs.mark_fetched("FU-B", T0 + 28) and not fs.mark_fetched("FU-B", T0 + 29)
    got = fs.get("FU-B")
    assert got is not None
    assert (got.hit_reference, got.decision_env, got.released, got.overdue_ms,
            got.fetched_ms, got.state) == ("KAZ-REF-000123", decision, ("document_number",),
                                           T0 + 25, T0 + 28, "approved")
    assert [f.id for f in fs.all(state="approved")] == ["FU-B"]
    sent = SentRow(id="FU-X", peer="KAZ-BS", hit_reference="KGZ-REF-9", hit_request_digest=b"h",
                   hit_item_index=1, fields=("family_name",), purpose="border_check",
                   legal_basis="art. 7", case_ref="C-2", file_digest=b"f", filed_ms=T0,
                   state="pending", deadline_ms=T0 + 5)
    fs.add_sent(sent)
    again = dataclasses.replace(sent, hit_reference="KGZ-REF-10", state="approved",
                                decision_env="values: Асанов".encode())
    fs.add_sent(again)
    assert fs.sent("KAZ-BS", "FU-X") == again
    fs.update_sent("KAZ-BS", "FU-X", state="fetched", decision_env="Асанов!".encode())
    last = fs.sent("KAZ-BS", "FU-X")
    assert last is not None
    assert (last.state, last.decision_env) == ("fetched", "Асанов!".encode())
    text = all_text(db, "followups") + all_text(db, "followups_sent")
    if db.codec.protects:
        for secret in ("KAZ-REF-000123", "KGZ-REF-10", "AC7654321", "Асанов"):
            assert secret not in text
    else:
        assert "KAZ-REF-000123" in text


def test_a_sealed_step_applies_once_to_a_store_from_before_it(tmp_path: Path) -> None:
    """A SQLCipher file whose crossing and follow-up tables predate ``sealed`` gains the
    column once, and keeps its rows."""
    from node.store.crossings import CROSSINGS_SCHEMA, CROSSINGS_SCHEMA_NAME
    from node.store.followups import FOLLOWUPS_SCHEMA, FOLLOWUPS_SCHEMA_NAME

    key = bytes(range(100, 132))
    store = Store.open(tmp_path / "old.db", key, create=True)
    store.ensure_schema(CROSSINGS_SCHEMA_NAME, CROSSINGS_SCHEMA)
    store.ensure_schema(FOLLOWUPS_SCHEMA_NAME, FOLLOWUPS_SCHEMA)
    store.execute("INSERT INTO crossings VALUES ('R-9','exit','KAZ-KORDAI',?,'road','N1','KGZ',"
                  "'P','Ким','','','KGZ',?)", (T0, T0))
    store.close()
    for _ in range(2):
        store = Store.open(tmp_path / "old.db", key)
        cs = CrossingStore(store)
        FollowUpStore(store)
        rec = cs.records(bcps=["KAZ-KORDAI"], event=CrossingEvent.EXIT, from_ms=T0,
                         to_ms=T0)
        assert [(r.record_id, r.document.number, r.family_name) for r in rec] == [
            ("R-9", "N1", "Ким")]
        store.close()
