"""The watchlist import's bulk path (node/watchlist/importer.py ``_load_csv``, the store's
``DocumentLoader``) on a real SQLCipher file: chunks checked a column at a time, repeats
found by the database, and exactly the records, counts and errors of the row-by-row path
(``_load_rows``, which a dry run and JSON Lines still take).

Small chunks (``chunk=3``) so that every case crosses chunk boundaries; the chunks are
checked in a second process (``_Checking``), which the last tests kill or fail.
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
from pathlib import Path

import pytest

from node.core.errors import EnvironmentFault
from node.store.sqlcipher import Store
from node.store.watchlist import SqlWatchlistStore
from node.watchlist.importer import ImportResult, import_file, parse_file

TODAY = dt.date(2026, 7, 1)
HEADER = ("kind,owner_ref,action,expires,contact,number,issuing_state,doc_type,loss_type,"
          "family_name,given_names,patronymic,dob,nationality,sex")


def doc(ref: str, number: str, *, action: str = "inform", expires: str = "2036-01-01",
        contact: str = "", state: str = "KAZ", loss: str = "") -> str:
    return f"document,{ref},{action},{expires},{contact},{number},{state},P,{loss},,,,,,"


def write(tmp_path: Path, *rows: str, name: str = "list.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join((HEADER, *rows)) + "\n", encoding="utf-8")
    return path


def documents(store: Store) -> list[tuple[str, ...]]:
    return sorted(SqlWatchlistStore(store).iter_documents())


def load(store: Store, path: Path, chunk: int = 3) -> ImportResult:
    return import_file(path, store=store, today=TODAY, chunk=chunk)


def test_a_clean_file_is_written_whole_with_its_counts(store: Store, tmp_path: Path) -> None:
    rows = [doc(f"R{i}", f"N{i}", expires="2020-01-01" if i % 4 == 0 else "2036-01-01")
            for i in range(10)]
    persons = [f"person,P-{i},arrest,2036-01-31,,,,,,Иванов,Иван,,1990,KAZ,M" for i in range(4)]
    result = load(store, write(tmp_path, persons[0], *rows[:5], persons[1], *rows[5:],
                               *persons[2:]))
    assert (result.written, result.document_count, result.person_count, result.rows,
            result.already_expired, result.errors) == (True, 10, 4, 14, 3, [])
    assert sorted(p[0] for p in SqlWatchlistStore(store).iter_all_persons()) == [
        "P-0", "P-1", "P-2", "P-3"]
    assert documents(store) == sorted(
        ("KAZ", f"N{i}", "P", f"R{i}", "inform", "",
         "2020-01-01" if i % 4 == 0 else "2036-01-01", "") for i in range(10))
    assert store.get_meta("watchlist_generation") == "1"


def test_the_bulk_path_makes_the_records_the_row_path_makes(store: Store,
                                                            tmp_path: Path) -> None:
    """Rows the column checks cannot vouch for (a field to strip, a missing trailing field,
    a contact) go row by row; the records are the same either way."""
    rows = [doc("R1", "N1", contact="desk 2", loss="stolen"),
            doc("R2", "N2"),
            "document, R3 ,inform, 2036-01-01 ,,N3 , KAZ,P ,lost",  # to strip, short row
            doc("R4", "N4", state="D"),
            doc("R5", "N5", action="arrest")]
    result = load(store, write(tmp_path, *rows))
    assert (result.written, result.document_count, result.errors) == (True, 5, [])
    assert documents(store) == [
        ("D", "N4", "P", "R4", "inform", "", "2036-01-01", ""),
        ("KAZ", "N1", "P", "R1", "inform", "desk 2", "2036-01-01", "stolen"),
        ("KAZ", "N2", "P", "R2", "inform", "", "2036-01-01", ""),
        ("KAZ", "N3", "P", "R3", "inform", "", "2036-01-01", "lost"),
        ("KAZ", "N5", "P", "R5", "arrest", "", "2036-01-01", "")]


def test_repeats_across_chunks_name_the_first_line(store: Store, tmp_path: Path) -> None:
    rows = [doc("R1", "N1"), doc("R2", "N2"), doc("R3", "N3"),
            doc("R4", "N4"), doc("R1", "N1", action="arrest"), doc("R6", "N6"),
            doc("R2", "N2"), doc("R2", "N2"), doc("R1", "N1", state="KGZ")]
    path = write(tmp_path, *rows)
    result = load(store, path)
    expected = [(6, "record R1 for the same document is already on line 2"),
                (8, "record R2 for the same document is already on line 3"),
                (9, "record R2 for the same document is already on line 3")]
    assert (result.written, result.error_count, result.errors) == (False, 3, expected)
    assert documents(store) == []
    assert parse_file(path, today=TODAY).errors == expected  # the row-by-row path agrees


def test_a_repeat_after_a_bad_row_is_still_found(store: Store, tmp_path: Path) -> None:
    rows = [doc("R1", "N1"), doc("R2", "n-2"), doc("R2", "N2"), doc("R1", "N1")]
    result = load(store, write(tmp_path, *rows))
    assert result.errors == [
        (3, "document number must be 1-20 characters A-Z, 0-9"),
        (5, "record R1 for the same document is already on line 2")]
    assert documents(store) == []


def test_documents_already_listed_are_replaced_once(store: Store, tmp_path: Path) -> None:
    assert load(store, write(tmp_path, doc("R1", "N1"), doc("R2", "N2"), name="a.csv")).written
    again = write(tmp_path, doc("R0", "N0"), doc("R1", "N1", action="arrest", contact="desk"),
                  doc("R2", "N2", expires="2037-01-01"), doc("R3", "N3"), name="b.csv")
    result = load(store, again)
    assert (result.written, result.document_count, result.errors) == (True, 4, [])
    assert documents(store) == [
        ("KAZ", "N0", "P", "R0", "inform", "", "2036-01-01", ""),
        ("KAZ", "N1", "P", "R1", "arrest", "desk", "2036-01-01", ""),
        ("KAZ", "N2", "P", "R2", "inform", "", "2037-01-01", ""),
        ("KAZ", "N3", "P", "R3", "inform", "", "2036-01-01", "")]
    assert store.get_meta("watchlist_generation") == "2"
    # a document already listed and given twice in one file: the second is a repeat
    twice = write(tmp_path, doc("R1", "N1"), doc("R9", "N9"), doc("R5", "N5"),
                  doc("R1", "N1", action="monitor"), name="c.csv")
    result = load(store, twice)
    assert (result.written, result.errors) == (
        False, [(5, "record R1 for the same document is already on line 2")])
    assert documents(store)[1] == ("KAZ", "N1", "P", "R1", "arrest", "desk", "2036-01-01", "")
    assert len(documents(store)) == 4


def test_a_quoted_field_over_several_lines_keeps_line_numbers(store: Store,
                                                              tmp_path: Path) -> None:
    rows = [doc("R1", "N1"), doc("R2", "N2", contact='"desk\n2\r\nnorth"'), "",
            doc("R3", "N3"), doc("R4", "N-4"), doc("R1", "N1")]
    result = load(store, write(tmp_path, *rows))
    assert result.errors == [(8, "document number must be 1-20 characters A-Z, 0-9"),
                             (9, "record R1 for the same document is already on line 2")]


def test_a_file_that_breaks_off_reports_its_rows_first(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "late.csv"
    path.write_text(HEADER + "\n" + "\n".join([doc("R1", "N1"), doc("R2", "n2")]) + "\n"
                    'document,"R3,inform\n')
    result = load(store, path, chunk=20)
    assert result.errors == [(3, "document number must be 1-20 characters A-Z, 0-9"),
                             (4, "not valid CSV (unexpected end of data)")]
    assert documents(store) == []


@pytest.mark.parametrize("chunk", [1, 2, 1000])
def test_the_errors_are_those_of_the_row_path(store: Store, tmp_path: Path,
                                              chunk: int) -> None:
    rows = [doc("R1", "N1"), doc("R2", "N2", state="ZZZ"), doc("R3", "N3", expires="2036-02-30"),
            doc("R4", "N4", action="shoot"), doc("R5", "N5", loss="borrowed"),
            doc("R 6", "N6"), doc("R7", "N7", contact="x" * 257), doc("R1", "N1"),
            doc("R8", "N8") + ",extra", "passport,R9,inform,2036-01-01,,,,,,,,,,,",
            "person,P1,arrest,2036-01-31,,,,,,Иванов,Иван,,1990,KAZ,M",
            "person,P1,arrest,2036-01-31,,,,,,Иванов,Иван,,1990,KAZ,M", doc("R10", "N10")]
    path = write(tmp_path, *rows)
    expected = parse_file(path, today=TODAY)
    result = load(store, path, chunk=chunk)
    assert (result.errors, result.error_count, result.rows) == (
        expected.errors, expected.error_count, expected.rows)
    assert len(result.errors) == 10
    assert documents(store) == []


def test_the_jsonl_path_is_unchanged(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "w.jsonl"
    good = {"kind": "document", "owner_ref": "R1", "action": "inform",
            "expires": "2036-01-01", "number": "N1", "issuing_state": "KAZ", "doc_type": "P"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(good) + "\n")
    assert load(store, path).errors == [
        (2, "record R1 for the same document is already on line 1")]


def test_repeats_and_replacements_inside_whole_statements(store: Store,
                                                          tmp_path: Path) -> None:
    """Chunks of 650: three 200-row statements and 50 rows left over each, so a repeat or
    a replacement is found inside a statement's parameters as well as among the rest."""
    assert load(store, write(tmp_path, doc("R250", "N250", action="arrest"), name="a.csv")
                ).written
    rows = [doc(f"R{i}", f"N{i}") for i in range(650)]
    rows[300] = doc("R5", "N5")  # a repeat in the second statement of the first one's
    rows[610] = doc("R7", "N7")  # among the rows left over
    result = load(store, write(tmp_path, *rows, name="b.csv"), chunk=650)
    assert (result.written, result.document_count, result.errors) == (
        False, 648, [(302, "record R5 for the same document is already on line 7"),
                     (612, "record R7 for the same document is already on line 9")])
    rows[300], rows[610] = doc("R300", "N300"), doc("R610", "N610")
    result = load(store, write(tmp_path, *rows, name="c.csv"), chunk=650)
    assert (result.written, result.document_count, result.errors) == (True, 650, [])
    listed = documents(store)
    assert len(listed) == 650
    assert ("KAZ", "N250", "P", "R250", "inform", "", "2036-01-01", "") in listed  # replaced


def _kill_the_checker(_rows: int) -> None:
    for child in multiprocessing.active_children():
        if child.name == "bxnode-import-check":
            child.kill()
            child.join()


def test_a_checking_process_that_dies_leaves_nothing_written(store: Store,
                                                             tmp_path: Path) -> None:
    assert load(store, write(tmp_path, doc("R1", "N1"), name="a.csv")).written
    path = write(tmp_path, *(doc(f"R{i}", f"N{i}") for i in range(2, 5000)), name="b.csv")
    with pytest.raises(EnvironmentFault, match=r"^the import's checking process stopped "
                                               r"\(exit code -9\); nothing was written$"):
        import_file(path, store=store, today=TODAY, chunk=10, progress=_kill_the_checker)
    assert documents(store) == [("KAZ", "N1", "P", "R1", "inform", "", "2036-01-01", "")]
    assert store.get_meta("watchlist_generation") == "1"
    assert [c for c in multiprocessing.active_children()
            if c.name == "bxnode-import-check"] == []
    assert load(store, path).written  # and the next import runs


def test_a_file_the_checking_process_cannot_read_is_an_error(store: Store,
                                                             tmp_path: Path) -> None:
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    with pytest.raises(EnvironmentFault, match=r"^reading the file failed: "
                                               r"IsADirectoryError: \[Errno 21\] "):
        import_file(folder, store=store, today=TODAY)
    assert documents(store) == []
    assert store.get_meta("watchlist_generation") is None


def test_a_field_holding_a_nul_crosses_to_the_writer_whole(store: Store,
                                                           tmp_path: Path) -> None:
    """The checking process joins a chunk's fields with NUL (``DocumentLoader.pack``); a
    field that holds one itself makes it send that chunk's fields one by one instead."""
    rows = [doc(f"R{i}", f"N{i}") for i in range(450)]
    rows[7] = doc("R7", "N7", contact="desk\x00north")
    result = load(store, write(tmp_path, *rows), chunk=1000)
    assert (result.written, result.document_count, result.errors) == (True, 450, [])
    listed = documents(store)
    assert len(listed) == 450
    assert ("KAZ", "N7", "P", "R7", "inform", "desk\x00north", "2036-01-01", "") in listed
    assert ("KAZ", "N449", "P", "R449", "inform", "", "2036-01-01", "") in listed


# --- JSON Lines into SQLCipher: the same loader, so no dict of every key read -----------------


def jdoc(ref: str, number: str, *, action: str = "inform", state: str = "KAZ",
         expires: str = "2036-01-01") -> str:
    return json.dumps({"kind": "document", "owner_ref": ref, "action": action,
                       "expires": expires, "number": number, "issuing_state": state,
                       "doc_type": "P"})


def write_jsonl(tmp_path: Path, *rows: str, name: str = "list.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_json_lines_repeats_are_found_by_the_database(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A JSON Lines file into SQLCipher finds its repeated documents through the store's
    loader, not a dict of the keys read: the same errors, in line order, as the row path
    of a dry run (which still remembers keys), across chunks and after a bad row."""
    from node.store import watchlist as store_mod

    added: list[int] = []
    real_add = store_mod.DocumentLoader.add

    def counting(self: object, groups: list[list[str]], tail: list[tuple[str, ...]]
                 ) -> list[int]:
        added.append(len(tail))
        return real_add(self, groups, tail)  # type: ignore[arg-type]

    monkeypatch.setattr(store_mod.DocumentLoader, "add", counting)
    rows = [jdoc("R1", "N1"), jdoc("R2", "N2"), jdoc("R3", "n-3"),
            jdoc("R4", "N4"), jdoc("R1", "N1", action="arrest"), jdoc("R6", "N6"),
            jdoc("R2", "N2"), jdoc("R2", "N2"), jdoc("R1", "N1", state="KGZ")]
    path = write_jsonl(tmp_path, *rows)
    result = load(store, path)
    expected = [(3, "document number must be 1-20 characters A-Z, 0-9"),
                (5, "record R1 for the same document is already on line 1"),
                (7, "record R2 for the same document is already on line 2"),
                (8, "record R2 for the same document is already on line 2")]
    assert (result.written, result.error_count, result.errors) == (False, 4, expected)
    assert sum(added) == 8  # every good document went through the loader
    assert documents(store) == []
    assert parse_file(path, today=TODAY).errors == expected  # the row-by-row path agrees


def test_json_lines_documents_already_listed_are_replaced_once(
        store: Store, tmp_path: Path) -> None:
    assert load(store, write_jsonl(tmp_path, jdoc("R1", "N1"), jdoc("R2", "N2"),
                                   name="a.jsonl")).written
    again = write_jsonl(tmp_path, jdoc("R1", "N1", action="arrest"), jdoc("R3", "N3"),
                        name="b.jsonl")
    result = load(store, again)
    assert (result.written, result.document_count, result.errors) == (True, 2, [])
    assert [d[3:5] for d in documents(store)] == [
        ("R1", "arrest"), ("R2", "inform"), ("R3", "inform")]
    twice = write_jsonl(tmp_path, jdoc("R1", "N1"), jdoc("R9", "N9"),
                        jdoc("R1", "N1", action="monitor"), name="c.jsonl")
    assert load(store, twice).errors == [
        (3, "record R1 for the same document is already on line 1")]
    assert documents(store)[0][3:5] == ("R1", "arrest")  # rolled back
