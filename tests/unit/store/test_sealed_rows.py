"""A sealed record copied into another row is refused, not answered as that row's.

On PostgreSQL the identifying fields of a watchlist record, a crossing and a withdrawn alert
are sealed (AES-GCM) under the column's kind, and the row is found by blind indexes.  The
seal binds a record to its column, not to its row: a database administrator, who can read
no record, can still copy one row's sealed bytes into another row, where they open.  Each
reader checks the opened identifiers against the row's own blind indexes and refuses a
record that is not the row's own (``sealed_field_misplaced``); before, a lookup of the
second row's document answered the first row's alert reference and contact.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from node.store._fields import index_text
from node.store.alerts import AlertTables, WithdrawnRow
from node.store.crossings import CrossingRow, CrossingTables
from node.store.db import Database
from node.store.fieldcrypt import SealedFieldError
from node.store.watchlist import SqlWatchlistStore

TODAY = "2026-12-03"
LIVE = "2036-01-01"


def doc(number: str, ref: str, contact: str = "", expires: str = LIVE) -> tuple[str, ...]:
    return ("KAZ", number, "P", ref, "arrest", contact, expires, "")


def person(ref: str, family: str) -> tuple[str, ...]:
    return (ref, family, "AIDAR", "", "1990-01-01", "KAZ", "M", "arrest", "desk-1", LIVE)


def refused(call: Callable[[], Any], reason: str, says: str) -> None:
    """``call`` refuses with ``reason``, its message saying ``says``.  (Not
    ``pytest.raises``: its exception info and the traceback's frames form a cycle that
    would keep a stream's cursor open until the garbage collector runs, after the database
    has gone.)"""
    try:
        call()
    except SealedFieldError as exc:
        assert exc.reason == reason
        assert says in str(exc)
    else:
        pytest.fail(f"read, not refused {reason}")


def misplaced(call: Callable[[], Any]) -> None:
    refused(call, "sealed_field_misplaced", "does not belong to its row")


def copy_sealed(db: Database, table: str, column: str, *, into: str, source: str,
                where: str = "owner_ref") -> None:
    """As a database administrator would: the sealed bytes of the row whose ``where``
    column is ``source`` written over those of the row where it is ``into``."""
    row = db.query_one(f"SELECT {column} FROM {table} WHERE {where}=?", (source,))
    assert row is not None, source
    (blob,) = row
    assert db.execute(f"UPDATE {table} SET {column}=? WHERE {where}=?", (blob, into)) == 1


@pytest.fixture
def pg(any_db: Database) -> Database:
    """PostgreSQL only: SQLCipher seals no column of these tables (its whole file is
    encrypted, and a row holds its values)."""
    assert any_db.codec.protects
    return any_db


#: The tests of sealed columns run on PostgreSQL, the backend that seals them.
only_postgresql = pytest.mark.parametrize("any_db", ["postgresql"], indirect=True)


def ix(db: Database, kind: str, value: str) -> str:
    """What the row's blind-index column holds for ``value`` (the value on SQLCipher)."""
    return index_text(db.codec, kind, value)


@only_postgresql
def test_a_document_record_copied_into_another_documents_row(pg: Database) -> None:
    w = SqlWatchlistStore(pg)
    with pg.transaction():
        w.insert_documents([doc("N1", "R1", "desk-1"), doc("N2", "R2", "desk-2")])
    assert w.find_documents_many([("N2", "KAZ", "P")], TODAY) == {
        ("N2", "KAZ", "P"): [("R2", "arrest", "desk-2")]}
    with pg.transaction():
        copy_sealed(pg, "documents", "sealed", where="number",
                    into=ix(pg, "documents.number", "N2"),
                    source=ix(pg, "documents.number", "N1"))
    with pg.transaction():
        misplaced(lambda: w.find_documents_many([("N2", "KAZ", "P")], TODAY))
    assert w.find_documents_many([("N1", "KAZ", "P")], TODAY) == {
        ("N1", "KAZ", "P"): [("R1", "arrest", "desk-1")]}
    misplaced(lambda: w.documents_of("R2"))
    misplaced(lambda: w.document_of("R2"))
    misplaced(lambda: list(w.iter_documents()))


@only_postgresql
def test_a_document_record_copied_to_another_owner_of_the_same_number(pg: Database) -> None:
    """The same number, so the number check passes: the owner reference is refused."""
    w = SqlWatchlistStore(pg)
    with pg.transaction():
        w.insert_documents([doc("N1", "R1", "desk-1"), doc("N1", "R9", "desk-9")])
        copy_sealed(pg, "documents", "sealed", into=ix(pg, "watchlist.owner_ref", "R9"),
                    source=ix(pg, "watchlist.owner_ref", "R1"))
    misplaced(lambda: w.find_documents_many([("N1", "KAZ", "P")], TODAY))
    misplaced(lambda: w.documents_of("R9"))
    assert w.documents_of("R1") == [doc("N1", "R1", "desk-1")]


@only_postgresql
def test_an_expired_document_record_moved_is_refused_by_the_erasure(pg: Database) -> None:
    w = SqlWatchlistStore(pg)
    with pg.transaction():
        w.insert_documents([doc("N1", "R1", expires="2020-01-01"),
                            doc("N2", "R2", expires="2020-01-01")])
    assert w.expired_refs(TODAY) == ["R1", "R2"]
    with pg.transaction():
        copy_sealed(pg, "documents", "sealed", into=ix(pg, "watchlist.owner_ref", "R2"),
                    source=ix(pg, "watchlist.owner_ref", "R1"))
    misplaced(lambda: w.expired_refs(TODAY))


@only_postgresql
def test_a_person_record_copied_into_another_persons_row(pg: Database) -> None:
    w = SqlWatchlistStore(pg)
    with pg.transaction():
        w.insert_persons([person("P1", "IUSUPOV"), person("P2", "SARIEV")])
    assert w.person("P2") == person("P2", "SARIEV")
    with pg.transaction():
        copy_sealed(pg, "persons", "sealed", into=ix(pg, "watchlist.owner_ref", "P2"),
                    source=ix(pg, "watchlist.owner_ref", "P1"))
    misplaced(lambda: w.person("P2"))
    misplaced(lambda: w.live_persons(["P2"], TODAY))
    misplaced(lambda: list(w.iter_persons(TODAY)))
    assert w.live_persons(["P1"], TODAY) == {"P1": person("P1", "IUSUPOV")}


def altered(call: Callable[[], Any]) -> None:
    refused(call, "sealed_field_altered", "plain columns differ from the copies sealed")


def set_column(db: Database, table: str, column: str, value: str, *, ref: str) -> None:
    """As a database administrator would: one plain column of ``ref``'s row changed."""
    assert db.execute(f"UPDATE {table} SET {column}=? WHERE owner_ref=?",
                      (value, ix(db, "watchlist.owner_ref", ref))) == 1


@only_postgresql
@pytest.mark.parametrize(("column", "value", "asked"), [
    ("action", "none", ("N1", "KAZ", "P")),          # the officer told to let them pass
    ("issuing_state", "UZB", ("N1", "UZB", "P")),    # the alert moved to another state
    ("doc_type", "ID", ("N1", "KAZ", "ID")),
    ("loss_type", "stolen", ("N1", "KAZ", "P")),
    ("expires", "2036-06-01", ("N1", "KAZ", "P")),
])
def test_a_documents_plain_column_changed_in_the_database_is_refused(
        pg: Database, column: str, value: str, asked: tuple[str, str, str]) -> None:
    """Before, the lookup answered the changed column (an action of ``none``, the number
    under another state), and the alert's own reads gave it as the alert's."""
    w = SqlWatchlistStore(pg)
    with pg.transaction():
        w.insert_documents([doc("N1", "R1", "desk-1"), doc("N2", "R2", "desk-2")])
        set_column(pg, "documents", column, value, ref="R1")
    with pg.transaction():
        altered(lambda: w.find_documents_many([asked], TODAY))
    altered(lambda: w.documents_of("R1"))
    altered(lambda: list(w.iter_documents()))
    if column in ("issuing_state", "doc_type", "loss_type"):
        altered(lambda: w.document_of("R1"))
    assert w.find_documents_many([("N2", "KAZ", "P")], TODAY) == {
        ("N2", "KAZ", "P"): [("R2", "arrest", "desk-2")]}  # the other rows are answered


@only_postgresql
def test_an_expired_document_brought_back_or_a_live_one_sent_to_the_erasure(
        pg: Database) -> None:
    w = SqlWatchlistStore(pg)
    with pg.transaction():
        w.insert_documents([doc("N1", "R1", expires="2020-01-01"), doc("N2", "R2")])
    assert w.find_documents_many([("N1", "KAZ", "P")], TODAY) == {}
    with pg.transaction():
        set_column(pg, "documents", "expires", LIVE, ref="R1")   # back from the dead
    with pg.transaction():
        altered(lambda: w.find_documents_many([("N1", "KAZ", "P")], TODAY))
    with pg.transaction():
        set_column(pg, "documents", "expires", "2020-01-01", ref="R1")
        set_column(pg, "documents", "expires", "2020-01-01", ref="R2")  # to be erased
    altered(lambda: w.expired_refs(TODAY))


@only_postgresql
@pytest.mark.parametrize(("column", "value"), [("action", "none"), ("expires", "2036-06-01")])
def test_a_persons_plain_column_changed_in_the_database_is_refused(
        pg: Database, column: str, value: str) -> None:
    w = SqlWatchlistStore(pg)
    with pg.transaction():
        w.insert_persons([person("P1", "IUSUPOV"), person("P2", "SARIEV")])
        set_column(pg, "persons", column, value, ref="P1")
    altered(lambda: w.person("P1"))
    altered(lambda: w.live_persons(["P1"], TODAY))
    altered(lambda: list(w.iter_persons(TODAY)))
    assert w.person("P2") == person("P2", "SARIEV")
    with pg.transaction():
        set_column(pg, "persons", "expires", "2020-01-01", ref="P2")  # to be erased
    altered(lambda: w.expired_refs(TODAY))


def legacy_seal(db: Database, number: str, ref: str, contact: str) -> bytes:
    """A document record as sealed before 2026-12-07: its three identifiers alone."""
    import json

    return db.codec.seal("documents.sealed", json.dumps([number, ref, contact]).encode())


@only_postgresql
def test_a_document_record_of_its_identifiers_alone_is_refused_after_the_migration(
        pg: Database) -> None:
    """bxnode store migrate sealed every old record anew (below): one found now was
    written back from an old copy of the database, whose columns it does not bind."""
    import json

    w = SqlWatchlistStore(pg)
    with pg.transaction():
        w.insert_documents([doc("N1", "R1", "desk-1")])
        row = pg.query_one("SELECT sealed FROM documents")
        assert row is not None
        assert json.loads(pg.codec.open("documents.sealed", bytes(row[0]))) == [
            "N1", "R1", "desk-1", "KAZ", "P", "arrest", LIVE, ""]
        assert pg.execute("UPDATE documents SET sealed=?, action='none'",
                          (legacy_seal(pg, "N1", "R1", "desk-1"),)) == 1
    with pg.transaction():
        altered(lambda: w.find_documents_many([("N1", "KAZ", "P")], TODAY))
    altered(lambda: w.documents_of("R1"))


@only_postgresql
def test_the_migration_seals_the_old_records_anew_with_their_columns(pg: Database) -> None:
    from node.store.postgresql import PgDatabase
    from node.store.postgresql.migrate import migrate

    assert isinstance(pg, PgDatabase)

    w = SqlWatchlistStore(pg)
    with pg.transaction():
        w.insert_documents([doc("N1", "R1", "desk-1"), doc("N2", "R2", "desk-2"),
                            doc("N3", "R3", "desk-3")])
        for n in ("N1", "N2"):  # as an older bxnode wrote them; N3 is sealed already
            assert pg.execute("UPDATE documents SET sealed=? WHERE number=?",
                              (legacy_seal(pg, n, n.replace("N", "R"), n.replace("N", "desk-")),
                               ix(pg, "documents.number", n))) == 1
        # the database as it was before this bxnode: the step not applied yet
        assert pg.execute("DELETE FROM bxnode_schema WHERE name = 'watchlist_seal'") == 1
    with pg.transaction():
        altered(lambda: w.find_documents_many([("N1", "KAZ", "P")], TODAY))
    result = migrate(pg)
    assert [(s.name, s.version) for s in result.applied] == [("watchlist_seal", 1)]
    assert w.find_documents_many([("N1", "KAZ", "P"), ("N2", "KAZ", "P")], TODAY) == {
        ("N1", "KAZ", "P"): [("R1", "arrest", "desk-1")],
        ("N2", "KAZ", "P"): [("R2", "arrest", "desk-2")]}
    assert w.documents_of("R3") == [doc("N3", "R3", "desk-3")]
    with pg.transaction():  # now bound: a changed column is refused
        set_column(pg, "documents", "action", "none", ref="R2")
    with pg.transaction():
        altered(lambda: w.find_documents_many([("N2", "KAZ", "P")], TODAY))
    assert migrate(pg).applied == ()  # once


@only_postgresql
def test_the_migration_never_seals_a_misplaced_record_into_its_wrong_row(
        pg: Database) -> None:
    from node.store.postgresql import PgDatabase
    from node.store.postgresql.migrate import migrate

    assert isinstance(pg, PgDatabase)
    with pg.transaction():
        SqlWatchlistStore(pg).insert_documents([doc("N1", "R1"), doc("N2", "R2")])
        assert pg.execute("UPDATE documents SET sealed=? WHERE number=?",
                          (legacy_seal(pg, "N1", "R1", ""), ix(pg, "documents.number", "N2"))) == 1
        assert pg.execute("DELETE FROM bxnode_schema WHERE name = 'watchlist_seal'") == 1
    misplaced(lambda: migrate(pg))
    row = pg.query_one("SELECT count(*) FROM bxnode_schema WHERE name = 'watchlist_seal'")
    assert row == (0,)  # the migration rolled back whole


def crossing(record_id: str, number: str) -> CrossingRow:
    return CrossingRow(record_id=record_id, event="exit", bcp="KZ-DOS", crossed_at_ms=1_000,
                       mode="road", doc_number=number, doc_state="KAZ", doc_type="P",
                       family_name="IUSUPOV", given_names="AIDAR", dob="", nationality="KAZ")


@only_postgresql
def test_a_crossing_record_copied_into_another_crossings_row(pg: Database) -> None:
    t = CrossingTables(pg)
    with pg.transaction():
        t.ensure_schema()
        t.insert(crossing("c1", "N1"), recorded_ms=1)
        t.insert(crossing("c2", "N2"), recorded_ms=1)

    def at_n2() -> list[CrossingRow]:
        return t.at(bcps=["KZ-DOS"], event="exit", from_ms=0, to_ms=2_000,
                    document=("N2", "KAZ", "P"))

    assert [r.doc_number for r in at_n2()] == ["N2"]
    with pg.transaction():
        copy_sealed(pg, "crossings", "sealed", where="record_id", into="c2", source="c1")
    misplaced(at_n2)
    misplaced(lambda: list(t.all()))


def withdrawn(ref: str, number: str) -> WithdrawnRow:
    return WithdrawnRow(ref, "document", "border", 5, "op-1",
                        {"documents": [list(doc(number, ref))], "person": None})


def test_a_withdrawn_alert_copied_into_another_withdrawn_row(any_db: Database) -> None:
    """Both backends: the withdrawn record is sealed on PostgreSQL and plain JSON on
    SQLCipher, and on either a record under another reference's row is refused."""
    t = AlertTables(any_db)
    with any_db.transaction():
        t.ensure_schema()
        t.put_withdrawn(withdrawn("R1", "N1"))
        t.put_withdrawn(withdrawn("R2", "N2"))
    assert t.withdrawn("R2") == withdrawn("R2", "N2")
    with any_db.transaction():
        copy_sealed(any_db, "alerts_withdrawn", "record",
                    into=ix(any_db, "watchlist.owner_ref", "R2"),
                    source=ix(any_db, "watchlist.owner_ref", "R1"))
    misplaced(lambda: t.withdrawn("R2"))
    misplaced(lambda: t.all_withdrawn())
    assert t.withdrawn("R1") == withdrawn("R1", "N1")
