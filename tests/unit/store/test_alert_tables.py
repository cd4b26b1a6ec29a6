"""The alert lifecycle on both backends: a withdrawn alert leaves the lookup tables in the
committing transaction, the generation changes on every change, and PostgreSQL holds no
reference, name or number of a withdrawn alert in plaintext."""

from __future__ import annotations

from typing import Any

from node.store.alerts import AlertTables
from node.store.db import Database
from node.watchlist.lifecycle import AlertDesk, alert_pseudonym

T0 = 1_763_900_000_000


class Log:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []

    def append(self, event: dict[str, Any], *, time_ms: int) -> int:
        self.entries.append(event)
        return len(self.entries)


def desk(db: Database, log: Log) -> AlertDesk:
    return AlertDesk(db=db, audit=log, clock_ms=lambda: T0, pseudonym=alert_pseudonym(b"k" * 32))


PERSON = {"kind": "person", "owner_ref": "UZB-P-1", "action": "arrest", "expires": "2036-01-01",
          "family_name": "Юсупов", "given_names": "Тимур", "dob": "1985-03-12",
          "nationality": "UZB", "sex": "M"}
DOC = {"kind": "document", "owner_ref": "UZB-D-1", "action": "seize_document",
       "expires": "2036-01-01", "number": "FA1234567", "issuing_state": "UZB", "doc_type": "P"}


def text_of(db: Database, table: str) -> str:
    out = []
    for row in db.query(f"SELECT * FROM {table}"):
        for v in row:
            out.append(bytes(v).decode("utf-8", "replace") if isinstance(v, bytes | memoryview)
                       else str(v))
    return "\x00".join(out)


def test_withdraw_leaves_the_lookup_tables_and_generation_moves(any_db: Database) -> None:
    log = Log()
    d = desk(any_db, log)
    d.add(PERSON, source="MVD", operator="op-1", reason="warrant")
    d.add(DOC, source="MVD", operator="op-1", reason="stolen")
    key = ("FA1234567", "UZB", "P")
    assert any_db.get_meta("watchlist_generation") == "2"
    assert d.lookup.find_documents_many([key], "2026-01-01") == {
        key: [("UZB-D-1", "seize_document", "")]}
    assert set(d.lookup.live_persons(["UZB-P-1"], "2026-01-01")) == {"UZB-P-1"}
    d.withdraw("UZB-D-1", operator="op-2", reason="recovered")
    d.withdraw("UZB-P-1", operator="op-2", reason="arrested")
    assert any_db.get_meta("watchlist_generation") == "4"
    assert d.lookup.find_documents_many([key], "2026-01-01") == {}
    assert d.lookup.live_persons(["UZB-P-1"], "2026-01-01") == {}
    got = d.get("UZB-P-1")
    assert got is not None and got.state("2026-01-01") == "withdrawn"
    assert got.person is not None and got.person[1] == "Юсупов"
    assert [w.owner_ref for w in AlertTables(any_db).all_withdrawn()] == ["UZB-D-1",
                                                                          "UZB-P-1"]
    assert [e["event"] for e in log.entries] == ["watchlist_add", "watchlist_add",
                                                 "watchlist_withdraw", "watchlist_withdraw"]
    if any_db.codec.protects:
        for table in ("alerts_withdrawn", "alert_meta", "documents", "persons"):
            text = text_of(any_db, table)
            for secret in ("UZB-P-1", "UZB-D-1", "FA1234567", "Юсупов"):
                assert secret not in text, (table, secret)


def test_feed_sequence_and_meta_on_both_backends(any_db: Database) -> None:
    t = AlertTables(any_db)
    t.ensure_schema()
    assert t.feed_seq("MVD") == 0
    t.set_feed_seq("MVD", 4, now_ms=T0)
    t.set_feed_seq("MVD", 5, now_ms=T0 + 1)
    assert t.feed_seq("MVD") == 5
    t.put_meta("R-1", kind="document", source="MVD", now_ms=T0)
    t.put_meta("R-1", kind="document", source="MID", now_ms=T0 + 5)
    meta = t.meta("R-1")
    assert meta is not None and (meta.source, meta.created_ms, meta.updated_ms) == (
        "MID", T0, T0 + 5)
    assert t.source_counts() == {"MID": 1}
