"""A watchlist import into PostgreSQL finds repeated documents through the database (a
temporary table of its transaction, node/store/watchlist.py ``ImportKeys``), not a dict of
every key read: the same errors as a dry run's, a document listed before replaced once,
and nothing left behind, committed or not."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Protocol

import pytest

from node.store.db import Database
from node.store.watchlist import ImportKeys, SqlWatchlistStore
from node.watchlist.importer import import_file, parse_file

TODAY = dt.date(2026, 7, 1)
HEADER = ("kind,owner_ref,action,expires,contact,number,issuing_state,doc_type,loss_type,"
          "family_name,given_names,patronymic,dob,nationality,sex")
only_postgresql = pytest.mark.parametrize("any_db", ["postgresql"], indirect=True)


class WriteFile(Protocol):
    """:func:`csv_file` or :func:`jsonl_file`."""

    def __call__(self, tmp_path: Path, name: str, *docs: tuple[str, str, str, str]) -> Path: ...


def csv_file(tmp_path: Path, name: str, *docs: tuple[str, str, str, str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *(f"document,{ref},{action},2036-01-01,,{number},"
                                         f"{state},P,,,,,,," for ref, number, state, action
                                         in docs)]) + "\n")
    return path


def jsonl_file(tmp_path: Path, name: str, *docs: tuple[str, str, str, str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(json.dumps({
        "kind": "document", "owner_ref": ref, "action": action, "expires": "2036-01-01",
        "number": number, "issuing_state": state, "doc_type": "P"})
        for ref, number, state, action in docs) + "\n")
    return path


def listed(db: Database) -> list[tuple[str, str]]:
    return sorted((d[3], d[4]) for d in SqlWatchlistStore(db).iter_documents())


def temp_table(db: Database) -> object:
    row = db.query_one("SELECT to_regclass('pg_temp.bxnode_import_keys')::text")
    return None if row is None else row[0]


@only_postgresql
@pytest.mark.parametrize("write", [csv_file, jsonl_file], ids=["csv", "jsonl"])
def test_repeats_are_found_by_the_database(any_db: Database, tmp_path: Path,
                                           write: WriteFile) -> None:
    rows = [("R1", "N1", "KAZ", "inform"), ("R2", "N2", "KAZ", "inform"),
            ("R3", "n-3", "KAZ", "inform"), ("R1", "N1", "KAZ", "arrest"),
            ("R2", "N2", "KAZ", "inform"), ("R2", "N2", "KAZ", "inform"),
            ("R1", "N1", "KGZ", "inform")]
    name = "a.csv" if write is csv_file else "a.jsonl"
    path = write(tmp_path, name, *rows)
    result = import_file(path, store=any_db, today=TODAY, chunk=2)
    first = 2 if write is csv_file else 1  # the header is line 1 of a CSV file
    assert (result.written, result.error_count) == (False, 4), result.errors
    assert result.errors == parse_file(path, today=TODAY).errors  # the dry run agrees
    assert [line for line, _ in result.errors] == [first + 2, first + 3, first + 4, first + 5]
    assert result.errors[1][1] == f"record R1 for the same document is already on line {first}"
    assert listed(any_db) == [] and temp_table(any_db) is None


@only_postgresql
def test_a_document_listed_before_is_replaced_once(any_db: Database, tmp_path: Path) -> None:
    assert import_file(csv_file(tmp_path, "a.csv", ("R1", "N1", "KAZ", "inform")),
                       store=any_db, today=TODAY).written
    during: list[object] = []  # the keys are the database's while the import runs
    again = import_file(csv_file(tmp_path, "b.csv", ("R1", "N1", "KAZ", "arrest"),
                                 ("R2", "N2", "KAZ", "inform")), store=any_db, today=TODAY,
                        before_commit=lambda _out: during.append(temp_table(any_db)))
    assert (again.written, again.document_count, again.errors) == (True, 2, [])
    assert during == ["bxnode_import_keys"]
    assert listed(any_db) == [("R1", "arrest"), ("R2", "inform")]
    assert temp_table(any_db) is None  # dropped with the commit
    twice = import_file(csv_file(tmp_path, "c.csv", ("R1", "N1", "KAZ", "monitor"),
                                 ("R1", "N1", "KAZ", "inform")), store=any_db, today=TODAY)
    assert twice.errors == [(3, "record R1 for the same document is already on line 2")]
    assert listed(any_db) == [("R1", "arrest"), ("R2", "inform")]  # rolled back


@only_postgresql
def test_the_keys_kept_are_blind(any_db: Database) -> None:
    with any_db.transaction():
        keys = ImportKeys(any_db)
        assert keys.first_time([("KAZ", "N1", "P", "R1"), ("KAZ", "N1", "P", "R1"),
                                ("KAZ", "N2", "P", "R2")]) == [True, False, True]
        assert keys.first_time([("KAZ", "N2", "P", "R2"), ("KAZ", "N3", "P", "R3")]) == [
            False, True]
        assert keys.first_time([]) == []
        assert ImportKeys(any_db).first_time([("KAZ", "N1", "P", "R1")]) == [True]  # anew
        stored = [str(r[0]) for r in any_db.query("SELECT k FROM bxnode_import_keys")]
        assert len(stored) == 1 and not any("N1" in k or "R1" in k for k in stored)


def test_sqlcipher_has_no_import_keys(tmp_path: Path) -> None:
    from node.store.sqlcipher import Store

    store = Store.open(tmp_path / "n.db", bytes(range(32)), create=True)
    try:
        assert SqlWatchlistStore(store).import_keys() is None  # its loader finds repeats
    finally:
        store.close()
