"""Manifest rows (node/watchlist/manifest.py): a row naming a document and a person is both."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.core.errors import InvalidInput
from node.core.model import DocumentQuery, PartialDate, PersonQuery, Sex
from node.watchlist.manifest import read_manifest, read_manifest_rows, row_from_dict

HEADER = "number,issuing_state,doc_type,family_name,given_names,patronymic,dob,nationality,sex\n"
DOC = DocumentQuery("FA7777777", "UZB", "P")
PERSON = PersonQuery(family_name="IUSUPOV", given_names="TIMUR",
                     date_of_birth=PartialDate(1984, 3, 17), nationality="UZB", sex=Sex.MALE)


def test_a_row_with_both_is_two_items_document_first(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text(HEADER + "FA7777777,UZB,P,IUSUPOV,TIMUR,,1984-03-17,UZB,M\n"
                    "N1,KAZ,,,,,,,\n,,,IUSUPOV,TIMUR,,1984-03-17,uzb,m\n")
    rows = read_manifest_rows(path)
    assert [(r.line, r.items) for r in rows] == [
        (2, (("document", DOC), ("person", PERSON))),
        (3, (("document", DocumentQuery("N1", "KAZ", "P")),)),
        (4, (("person", PERSON),))]
    assert read_manifest(path) == [DOC, PERSON, DocumentQuery("N1", "KAZ", "P"), PERSON]


def test_a_named_person_without_a_date_of_birth_is_said_not_checked() -> None:
    row = row_from_dict({"number": "FA7777777", "issuing_state": "UZB",
                         "family_name": "IUSUPOV", "nationality": "UZB"}, 5)
    assert (row.document, row.person, row.person_not_checked) == (
        DOC, None, "no date of birth (dob)")
    with pytest.raises(InvalidInput) as err:  # a person-only row still needs one
        row_from_dict({"family_name": "IUSUPOV", "nationality": "UZB"})
    assert err.value.reason == "bad_date"


def test_the_person_of_a_row_with_both_is_validated() -> None:
    with pytest.raises(InvalidInput) as err:
        row_from_dict({"number": "FA7777777", "issuing_state": "UZB", "family_name": "IUSUPOV",
                       "dob": "1984", "nationality": "ZZZ"})
    assert err.value.reason == "bad_country"


def test_the_item_bound_counts_items_not_rows(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    row = "FA7777777,UZB,P,IUSUPOV,TIMUR,,1984-03-17,UZB,M\n"
    path.write_text(HEADER + row * 5_000)
    assert len(read_manifest(path)) == 10_000
    path.write_text(HEADER + row * 5_000 + "N1,KAZ,,,,,,,\n")
    with pytest.raises(InvalidInput) as err:
        read_manifest(path)
    assert (str(err.value), err.value.reason) == (
        "a manifest may hold at most 10000 items", "batch_too_large")
