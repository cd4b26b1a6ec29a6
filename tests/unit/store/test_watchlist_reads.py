"""The watchlist's many-key reads on both backends: a batch's documents, its hits' source
agencies and a change feed's persons, each one statement per chunk.  On PostgreSQL the
keys go as one array parameter (``= ANY(?::text[])``), so the statement's text is the same
whatever the batch's size; SQLite keeps ``IN (?,...)``.  The answers must not differ."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from node.store._fields import any_of
from node.store.alerts import AlertTables
from node.store.db import Database
from node.store.watchlist import SqlWatchlistStore

TODAY = "2026-12-03"


def doc(state: str, number: str, doc_type: str, ref: str, action: str = "inform",
        contact: str = "", expires: str = "2036-01-01") -> tuple[str, ...]:
    return (state, number, doc_type, ref, action, contact, expires, "")


def test_an_empty_batch_reads_nothing(any_db: Database) -> None:
    w = SqlWatchlistStore(any_db)
    with any_db.transaction():
        w.insert_documents([doc("KAZ", "N1", "P", "R1")])
    assert w.find_documents_many([], TODAY) == {}
    assert w.sources_of([]) == {}


def test_repeated_numbers_and_other_states_or_types(any_db: Database) -> None:
    """A key asked twice is answered once; a number under another issuing state or type, or
    expired, is not a hit; two live records of one document both come back, sorted."""
    w = SqlWatchlistStore(any_db)
    with any_db.transaction():
        w.insert_documents([doc("KAZ", "N1", "P", "R1b", "arrest", "desk"),
                            doc("KAZ", "N1", "P", "R1a"),
                            doc("UZB", "N1", "P", "R1-uzb"),
                            doc("KAZ", "N1", "I", "R1-id"),
                            doc("KAZ", "N2", "P", "R2-old", expires="2026-12-02"),
                            doc("KAZ", "N3", "P", "R3", expires=TODAY)])
    keys = [("N1", "KAZ", "P"), ("N1", "KAZ", "P"), ("N1", "KGZ", "P"), ("N2", "KAZ", "P"),
            ("N3", "KAZ", "P"), ("N1", "KAZ", "P"), ("N4", "KAZ", "P"), ("N1", "KAZ", "D")]
    assert w.find_documents_many(keys, TODAY) == {
        ("N1", "KAZ", "P"): [("R1a", "inform", ""), ("R1b", "arrest", "desk")],
        ("N3", "KAZ", "P"): [("R3", "inform", "")]}


def test_more_numbers_than_one_statement_takes(any_db: Database) -> None:
    """12,010 keys of 9,010 numbers (5,000 per statement: two statements), 3,000 asked
    twice, ten not in the table, and one number in three stored under another state only."""
    w = SqlWatchlistStore(any_db)
    rows = [doc("KAZ", f"N{i:05d}", "P", f"R{i}", contact=f"c{i % 7}") for i in range(0, 9000, 3)]
    rows += [doc("KAZ", f"N{i:05d}", "P", f"R{i}") for i in range(1, 9000, 3)]
    rows += [doc("UZB", f"N{i:05d}", "P", f"U{i}") for i in range(2, 9000, 3)]
    with any_db.transaction():
        assert w.insert_documents(rows) == 9000
    keys = [(f"N{i:05d}", "KAZ", "P") for i in range(9000)]
    keys += keys[:3000] + [(f"X{i}", "KAZ", "P") for i in range(10)]
    found = w.find_documents_many(keys, TODAY)
    expected = {(f"N{i:05d}", "KAZ", "P"): [(f"R{i}", "inform", f"c{i % 7}" if i % 3 == 0
                                             else "")]
                for i in range(9000) if i % 3 != 2}
    assert len(found) == 6000 and found == expected


def test_sources_of_many_hits(any_db: Database) -> None:
    """1,203 references (500 per statement), repeated ones, one recorded without a source,
    one with none recorded at all."""
    w = SqlWatchlistStore(any_db)
    t = AlertTables(any_db)
    t.ensure_schema()
    with any_db.transaction():
        for i in range(1200):
            t.put_meta(f"R{i}", kind="document", source=("MVD", "MID", "KNB")[i % 3],
                       now_ms=1)
        t.put_meta("R-blank", kind="document", source="", now_ms=1)
    refs = [f"R{i}" for i in range(1200)] + ["R-blank", "R-none", "R7", "R1199"]
    assert w.sources_of(refs) == {f"R{i}": ("MVD", "MID", "KNB")[i % 3] for i in range(1200)}
    assert w.sources_of(["R-none", "R-blank"]) == {}
    assert t.meta_many(["R5", "R-blank", "R-none", "R5"]) == {
        "R5": t.meta("R5"), "R-blank": t.meta("R-blank")}


def test_the_sources_of_a_batchs_hits_are_those_recorded_now(any_db: Database) -> None:
    """Sources asked right after the documents in one transaction (PostgreSQL reads them
    with the documents) are what a read of alert_meta alone gives: a blank source and an
    alert without metadata left out, a person's reference read on its own; a source changed
    since, in this transaction or a later one, or outside any, is the new one."""
    w = SqlWatchlistStore(any_db)
    t = AlertTables(any_db)
    t.ensure_schema()
    with any_db.transaction():
        w.insert_documents([doc("KAZ", "N1", "P", "R1"), doc("KAZ", "N1", "P", "R1x"),
                            doc("KAZ", "N2", "P", "R2"), doc("KAZ", "N3", "P", "R3")])
        t.put_meta("R1", kind="document", source="MVD", now_ms=1)
        t.put_meta("R1x", kind="document", source="KNB", now_ms=1)
        t.put_meta("R2", kind="document", source="", now_ms=1)
        t.put_meta("P9", kind="person", source="MID", now_ms=1)
    keys = [("N1", "KAZ", "P"), ("N2", "KAZ", "P"), ("N3", "KAZ", "P")]
    with any_db.transaction():
        assert len(w.find_documents_many(keys, TODAY)) == 3
        assert w.sources_of(["R1", "R1x", "R2", "R3", "P9", "R1"]) == {
            "R1": "MVD", "R1x": "KNB", "P9": "MID"}
    with any_db.transaction():  # changed in the transaction, after the documents' read
        assert len(w.find_documents_many(keys, TODAY)) == 3
        t.put_meta("R1", kind="document", source="MID", now_ms=2)
        assert w.sources_of(["R1", "R1x"]) == {"R1": "MID", "R1x": "KNB"}
    with any_db.transaction():
        assert len(w.find_documents_many(keys, TODAY)) == 3
    t.put_meta("R1x", kind="document", source="MVD", now_ms=3)  # after that transaction
    assert w.sources_of(["R1x"]) == {"R1x": "MVD"}
    with any_db.transaction():
        assert w.sources_of(["R1x", "R1"]) == {"R1x": "MVD", "R1": "MID"}
    assert len(w.find_documents_many(keys, TODAY)) == 3  # outside a transaction: not kept
    t.put_meta("R1", kind="document", source="KNB", now_ms=4)
    assert w.sources_of(["R1"]) == {"R1": "KNB"}


def test_the_change_feed_reads_its_persons_in_chunks(any_db: Database) -> None:
    """person_changes reads the live rows of every changed reference (500 per statement):
    an expired one and a deleted one come back as None."""
    w = SqlWatchlistStore(any_db)
    persons = [(f"P{i}", "Фамилия", f"Имя{i}", "", "1980-01-01", "KAZ", "M", "inform", "",
                "2020-01-01" if i == 3 else "2036-01-01") for i in range(1100)]
    with any_db.transaction():
        w.insert_persons(persons[:1])
        w.bump_generation("1")
    with any_db.transaction():
        w.insert_persons(persons)
        w.delete_ref("P0")
        w.bump_generation("2")
    got = w.person_changes("1", "2", TODAY)
    assert got is not None and len(got) == 1100
    assert got["P0"] is None and got["P3"] is None
    assert {k: v for k, v in got.items() if v is not None} == {
        p[0]: p for p in persons if p[0] not in ("P0", "P3")}


@pytest.mark.parametrize("values", [
    ["a,b", 'q"uote', "back\\slash", "{brace}", "NULL", "", " sp ", "ü日本", "a'b"],
    ["only"],
])
def test_any_of_matches_exactly_the_values_given(any_db: Database, values: list[str]) -> None:
    """Text that an array literal would have to quote or escape is matched as it is."""
    stored = [*values, "a", "b", "null", "sp", "other"]
    with any_db.transaction():
        any_db.execute("CREATE TEMP TABLE t_any (v TEXT NOT NULL)")
        any_db.executemany("INSERT INTO t_any (v) VALUES (?)", [(v,) for v in stored])
        cond, args = any_of(any_db.dialect, "v", values)
        got = sorted(str(r[0]) for r in any_db.query(
            "SELECT v FROM t_any WHERE " + cond, args))
        any_db.execute("DROP TABLE t_any")
    assert got == sorted(values)


def test_any_of_is_one_statement_whatever_the_count(any_db: Database) -> None:
    """PostgreSQL: ``= ANY`` of one array parameter; SQLite: one placeholder per value."""
    cond, args = any_of(any_db.dialect, "number", ["x", "y", "z"])
    if any_db.dialect == "postgresql":
        assert (cond, args) == ("number = ANY(?::text[])", (["x", "y", "z"],))
    else:
        assert (cond, args) == ("number IN (?,?,?)", ("x", "y", "z"))


@pytest.mark.parametrize("any_db", ["postgresql"], indirect=True)
def test_batches_of_every_size_share_one_prepared_statement(any_db: Database) -> None:
    """On one connection, batches of 1 to 12 numbers, each size run often enough for
    psycopg to prepare its statement: one prepared statement reads them all (with a list
    of placeholders there would be one per size)."""
    w = SqlWatchlistStore(any_db)
    with any_db.transaction():
        w.insert_documents([doc("KAZ", f"N{i}", "P", f"R{i}") for i in range(12)])
    with any_db.transaction():
        for size in range(1, 13):
            for _ in range(7):  # psycopg prepares a statement on its 6th execution
                keys = [(f"N{i}", "KAZ", "P") for i in range(size)]
                assert len(w.find_documents_many(keys, TODAY)) == size
        prepared = [str(r[0]) for r in any_db.query(
            "SELECT statement FROM pg_prepared_statements")]
    reads = [s for s in prepared if "FROM documents" in s]
    assert len(reads) == 1 and "ANY(" in reads[0], prepared


# --- reads before the writers' lock (Database.reading; issue 16) ----------------------------


def test_reading_reads_and_refuses_every_write(any_db: Database) -> None:
    """``reading()`` reads what is committed; a write, a deferred row, a transaction or a
    lock inside it raises before anything reaches the database, and the connection works
    as before afterwards."""
    w = SqlWatchlistStore(any_db)
    with any_db.transaction():
        w.insert_documents([doc("KAZ", "N1", "P", "R1")])
    writes: list[Callable[[], object]] = [
        lambda: w.insert_documents([doc("KAZ", "N2", "P", "R2")]),
        lambda: any_db.set_meta("k", "v"),
        lambda: any_db.execute("DELETE FROM documents"),
        lambda: any_db.defer("usage", "INSERT INTO usage (node_id, day, items) VALUES "
                             "(?, ?, ?)", ("KGZ-BS", TODAY, 1)),
        lambda: any_db.transaction().__enter__(),
        lambda: any_db.lock("audit"),
        lambda: any_db.reading().__enter__(),
    ]
    for write in writes:
        with any_db.reading():
            assert w.find_documents_many([("N1", "KAZ", "P")], TODAY) == {
                ("N1", "KAZ", "P"): [("R1", "inform", "")]}
            with pytest.raises(RuntimeError):
                write()
        assert not any_db.in_transaction
    with any_db.transaction():  # nothing of them was written, and writing works again
        assert any_db.get_meta("k") is None
        assert any_db.query("SELECT count(*) FROM documents") == [(1,)]
        assert any_db.query("SELECT count(*) FROM usage") == [(0,)]
        w.insert_documents([doc("KAZ", "N2", "P", "R2")])
    assert len(w.find_documents_many([("N1", "KAZ", "P"), ("N2", "KAZ", "P")], TODAY)) == 2


def test_the_generation_is_read_once_a_transaction_until_it_writes(any_db: Database) -> None:
    """Under the writers' lock the generation is read once (only this transaction's own
    writes can change it then: every change of the watchlist is audited, under the same
    lock) and read again after a direct write -- ``bump_generation`` is one.  Outside a
    transaction, and in one without the lock, it is read every time."""
    w = SqlWatchlistStore(any_db)
    with any_db.transaction():
        w.bump_generation("7")
    reads: list[str] = []
    get_meta = any_db.get_meta

    def counted(key: str) -> str | None:
        if key == "watchlist_generation":
            reads.append(key)
        return get_meta(key)

    any_db.get_meta = counted  # type: ignore[method-assign]  # counts the real reads
    assert [w.generation(), w.generation()] == ["7", "7"] and len(reads) == 2
    with any_db.transaction():
        any_db.lock("audit")  # the writers' lock (SQLCipher: the transaction's own)
        assert [w.generation() for _ in range(5)] == ["7"] * 5 and len(reads) == 3
        w.bump_generation("8")
        assert [w.generation(), w.generation()] == ["8", "8"] and len(reads) == 4
    with any_db.transaction():  # a new transaction reads it again
        any_db.lock("audit")
        assert w.generation() == "8" and len(reads) == 5
    with any_db.reading():  # once per reading(), and again in the next one
        assert [w.generation(), w.generation()] == ["8", "8"] and len(reads) == 6
    with any_db.reading():
        assert w.generation() == "8" and len(reads) == 7
    if any_db.dialect == "postgresql":  # a transaction without the audit lock: every time
        with any_db.transaction():
            assert [w.generation(), w.generation()] == ["8", "8"] and len(reads) == 9


def test_sources_read_before_the_lock_on_a_database_without_alert_metadata(
        any_db: Database) -> None:
    """A read before the writers' lock (``Database.reading``) may be the first to ask for
    sources, before the alert tables exist (SQLCipher creates them on first use, which it
    cannot inside a read): no alert has metadata, so none has a source -- not an error
    that sends the batch's reads under the lock.  Once an alert has one, the same read
    finds it."""
    w = SqlWatchlistStore(any_db)
    with any_db.transaction():
        w.insert_documents([doc("KAZ", "N1", "P", "R1")])
    with any_db.reading():
        assert w.sources_of(["R1", "R2"]) == {}
    t = AlertTables(any_db)
    t.ensure_schema()
    with any_db.transaction():
        t.put_meta("R1", kind="document", source="MVD", now_ms=1)
    with any_db.reading():
        assert w.sources_of(["R1", "R2"]) == {"R1": "MVD"}


def test_hits_come_back_exactly_as_stored_whatever_their_characters(any_db: Database) -> None:
    """SQLite hands a batch's rows back in one row (a JSON array: one ``sqlite3_step``
    instead of one per hit); what comes out is what went in, character for character --
    Cyrillic, quotes, backslashes, control characters, an empty contact."""
    w = SqlWatchlistStore(any_db)
    odd = ['desk "Б-2" \\ Ош', "", "tab\there\nline", "\u0000nul", "Ёлка 😀", "'; --"]
    with any_db.transaction():
        w.insert_documents([doc("KAZ", f"N{i}", "P", f"R{i}\\\"", "arrest", contact)
                            for i, contact in enumerate(odd)])
    found = w.find_documents_many([(f"N{i}", "KAZ", "P") for i in range(len(odd))], TODAY)
    assert found == {(f"N{i}", "KAZ", "P"): [(f"R{i}\\\"", "arrest", contact)]
                     for i, contact in enumerate(odd)}
