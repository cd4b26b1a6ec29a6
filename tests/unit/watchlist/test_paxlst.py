"""The PAXLST parser (node/watchlist/paxlst.py): sample messages written from the WCO/IATA/ICAO
PAXLST Implementation Guide's structure, the awkward parts of EDIFACT, every refusal naming its
segment and position, and each bound at the limit and one past it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from node.core.model import (
    DocumentQuery,
    ItemResult,
    Outcome,
    PartialDate,
    PersonQuery,
    Sex,
)
from node.watchlist import paxlst
from node.watchlist.paxlst import (
    ItemKind,
    ListType,
    PaxlstError,
    Role,
    flight_batches,
    flight_queries,
    parse_paxlst,
    traveller_results,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "paxlst"

HEAD = ["UNB+UNOA:4+KC:ZZ+KGZBS:ZZ+260314:0545+REF1++APIS",
        "UNH+M1+PAXLST:D:02B:UN:IATA+KC109/260314/0700+01:F",
        "BGM+745",
        "NAD+MS+++API DESK",
        "TDT+20+KC109+++KC",
        "LOC+125+ALA", "DTM+189:2603140700:201",
        "LOC+87+FRU", "DTM+232:2603140815:201"]
PAX = ["NAD+FL+++SMITH:JOHN", "ATT+2++M", "DTM+329:700115", "NAT+2+GBR",
       "DOC+P:110:111+533380006", "DTM+36:310101", "LOC+91+GBR"]


def message(*travellers: list[str], head: list[str] | None = None, cnt: str | None = None,
            sep: str = "\n", una: str | None = "UNA:+.? '", tail: list[str] | None = None,
            count: int | None = None) -> bytes:
    """A PAXLST interchange; UNT's segment count and CNT are filled in unless given."""
    body = list(head or HEAD)
    for t in travellers:
        body += t
    body.append(cnt if cnt is not None else f"CNT+42:{len(travellers)}")
    start = next(i for i, s in enumerate(body) if s.startswith("UNH"))
    body.append(f"UNT+{count if count is not None else len(body) - start + 1}+M1")
    body += tail if tail is not None else ["UNZ+1+REF1"]
    text = sep.join(s + "'" for s in body) + sep
    return ((una + sep) if una else "").encode() + text.encode()


def refusal(data: bytes) -> str:
    with pytest.raises(PaxlstError) as err:
        parse_paxlst(data)
    return f"{err.value} ({err.value.reason})"


# --- the sample messages ------------------------------------------------------------------


def test_d02b_passenger_list() -> None:
    f = parse_paxlst((DATA / "d02b-passengers.edi").read_bytes())
    assert (f.version, f.list_type, f.flight, f.route, f.message_ref, f.sender, f.recipient,
            f.interchange_ref, f.prepared, f.part, f.final_part) == (
        "D02B", ListType.PASSENGERS, "KC109", "ALA-FRU", "PAX001", "KC", "KGZBS", "KC1090314",
        dt.datetime(2026, 3, 14, 5, 45), 1, True)
    leg = f.legs[0]
    assert (leg.departure_time, leg.arrival_time) == (dt.datetime(2026, 3, 14, 7, 0),
                                                      dt.datetime(2026, 3, 14, 8, 15))
    t1, t2, t3, t4 = f.travellers
    assert t1.person == PersonQuery(family_name="IUSUPOV", given_names="TIMUR",
                                    date_of_birth=PartialDate(1984, 3, 17), nationality="UZB",
                                    sex=Sex.MALE)
    assert (t1.embarkation, t1.debarkation, t1.role) == ("ALA", "FRU", Role.PASSENGER)
    assert [d.query for d in t1.documents] == [DocumentQuery("FA7777777", "UZB", "P")]
    assert t1.documents[0].expiry == dt.date(2034, 1, 1)
    # the release character: O?'BRIEN is O'BRIEN, 12?+14 a plus inside the address
    assert (t2.family_name, t2.given_names) == ("O'BRIEN", "MARY ANN")
    assert [(d.doc_type, d.number, d.issuing_state) for d in t2.documents] == [
        ("P", "PA1234567", "IRL"), ("V", "KGZV00991", "KGZ")]
    # no date of birth: the document is checked, the person is not, and it says so
    assert (t3.person, t3.person_not_checked, t3.date_of_birth) == (
        None, "no date of birth (DTM+329)", None)
    assert t3.documents[0].query == DocumentQuery("N0481516", "KAZ", "P")
    assert t4.date_of_birth == PartialDate(1970, 1, 15)  # 70 before 2026: the 1900s
    assert [(i.traveller, i.kind, i.label) for i in flight_queries(f)] == [
        (1, ItemKind.PERSON, "person"), (1, ItemKind.DOCUMENT, "document P FA7777777 UZB"),
        (2, ItemKind.PERSON, "person"), (2, ItemKind.DOCUMENT, "document P PA1234567 IRL"),
        (2, ItemKind.DOCUMENT, "document V KGZV00991 KGZ"),
        (3, ItemKind.DOCUMENT, "document P N0481516 KAZ"),
        (4, ItemKind.PERSON, "person"), (4, ItemKind.DOCUMENT, "document P 533380006 GBR")]


def test_d05b_passenger_list_without_una_on_one_line() -> None:
    raw = (DATA / "d05b-passengers.edi").read_bytes()
    assert not raw.startswith(b"UNA") and b"\n" not in raw
    f = parse_paxlst(raw)
    assert (f.version, f.flight, f.route, f.part, f.prepared) == (
        "D05B", "HY771", "TAS-NQZ", 2, dt.datetime(2026, 3, 14, 6, 0))
    assert f.legs[0].departure_time == dt.datetime(2026, 3, 14, 9, 30)  # format 203
    k, d, s, p = f.travellers
    assert k.date_of_birth == PartialDate(1995, 8, 21)  # CCYYMMDD, format 102
    assert [x.query for x in k.documents] == [DocumentQuery("FA2002001", "UZB", "P"),
                                              DocumentQuery("AD1234567", "UZB", "I")]
    assert (d.family_name, d.given_names, d.nationality, d.notes) == (
        "D'ANGELO", "LUCA MARIA", "ITA",
        ("nationality ITA taken from the passport's issuing state (no NAT)",))
    assert (s.role, s.date_of_birth) == (Role.TRANSIT_PASSENGER, PartialDate(1992))  # 0000
    assert (p.sex, [(x.doc_type, x.not_checked) for x in p.documents]) == (
        Sex.UNSPECIFIED, [("F", "document type F is not an ICAO 9303 travel document"),
                          ("P", "no issuing state (LOC+91)")])
    results = traveller_results(f, items := flight_queries(f),
                                [ItemResult(i, Outcome.NO_HIT) for i in range(len(items))])
    assert results[3].not_checked == (
        "document F RU0011223 not checked: document type F is not an ICAO 9303 travel "
        "document", "document P 750011223 not checked: no issuing state (LOC+91)")
    assert [len(r.checks) for r in results] == [3, 2, 2, 1]


def test_d05b_crew_list_with_crlf() -> None:
    raw = (DATA / "d05b-crew.edi").read_bytes()
    assert b"'\r\n" in raw
    f = parse_paxlst(raw)
    assert (f.list_type, [t.role for t in f.travellers]) == (
        ListType.CREW, [Role.CREW, Role.TRANSIT_CREW])
    assert f.travellers[0].date_of_birth == PartialDate(1976, 2, 29)
    assert [(d.doc_type, d.query is not None) for d in f.travellers[0].documents] == [
        ("L", False), ("P", True)]
    assert f.travellers[1].documents[0].query == DocumentQuery("KGZCMC0007", "KGZ", "AC")


# --- the awkward parts -------------------------------------------------------------------


def test_una_with_other_service_characters() -> None:
    """UNA|*.# ~: the apostrophe is plain text, # releases, ~ ends a segment (IG 4.1)."""
    data = message(PAX, una="UNA|*.# ~").replace(b"'", b"~").replace(b"+", b"*").replace(
        b":", b"|")
    data = data.replace(b"NAD*FL***SMITH|JOHN", b"NAD*FL***O'NEIL|JOHN*12#*14 MAIN ST#~")
    f = parse_paxlst(data)
    assert (f.travellers[0].family_name, f.travellers[0].given_names) == ("O'NEIL", "JOHN")


def test_released_release_character_and_empty_components() -> None:
    f = parse_paxlst(message(["NAD+FL+++SMITH::JOHN:PAUL", "DTM+329:700115", "NAT+2+GBR"]))
    assert f.travellers[0].given_names == "JOHN PAUL"
    assert refusal(message(["NAD+FL+++SM??ITH:JOHN", "DTM+329:700115", "NAT+2+GBR"])) == (
        "PAXLST segment 10 (NAD, line 11 column 1): family name holds '?' (U+003F QUESTION "
        "MARK) at position 3, which is not part of a name (bad_name)")


def test_release_before_the_terminator_does_not_end_the_segment() -> None:
    data = message(PAX).replace(b"UNZ+1+REF1'", b"UNZ+1+REF1?'")
    assert refusal(data).startswith(
        "PAXLST segment 19 (UNZ, line 20 column 1): the last segment is not terminated")


def test_blank_lines_and_spaces_between_segments() -> None:
    data = message(PAX, sep="\r\n\r\n")
    assert len(parse_paxlst(data).travellers) == 1


def test_two_digit_year_of_birth_against_the_interchange_date() -> None:
    f = parse_paxlst(message(["NAD+FL+++A:B", "DTM+329:260101", "NAT+2+KAZ"],
                             ["NAD+FL+++C:D", "DTM+329:270101", "NAT+2+KAZ"], PAX))
    assert [t.date_of_birth for t in f.travellers] == [
        PartialDate(2026, 1, 1), PartialDate(1927, 1, 1), PartialDate(1970, 1, 15)]


def test_utf8_names_with_unoy() -> None:
    head = [HEAD[0].replace("UNOA", "UNOY"), *HEAD[1:]]
    f = parse_paxlst(message(["NAD+FL+++ЮСУПОВ:ТИМУР", "DTM+329:840317", "NAT+2+UZB"],
                             head=head))
    assert f.travellers[0].person is not None
    assert f.travellers[0].person.family_name == "ЮСУПОВ"


# --- refusals name the segment and position -------------------------------------------------


@pytest.mark.parametrize(("travellers", "expected"), [
    ([["NAD+FL+++SM1TH:JOHN", "DTM+329:700115", "NAT+2+GBR"]],
     "PAXLST segment 10 (NAD, line 11 column 1): family name holds a digit ('1', U+0031) "
     "at position 3; a name has no digits (bad_name)"),
    ([["NAD+FL+++D?'ANGELO:LUCA?:MARIA", "DTM+329:700115", "NAT+2+ITA"]],
     "PAXLST segment 10 (NAD, line 11 column 1): given names holds ':' (U+003A COLON) at "
     "position 5, which is not part of a name (bad_name)"),
    ([[*PAX[:4], "DOC+P:110:111+5333-80006", "LOC+91+GBR"]],
     "PAXLST segment 14 (DOC, line 15 column 1): document number must be 1-20 characters "
     "A-Z, 0-9 (bad_document_number)"),
    ([[*PAX[:4], "DOC+P:110:111+533380006", "LOC+91+ZZZ"]],
     "PAXLST segment 15 (LOC, line 16 column 1): issuing state must be an ICAO 9303 "
     "three-letter code (bad_country)"),
    ([["NAD+FL+++SMITH:JOHN", "DTM+329:701315", "NAT+2+GBR"]],
     "PAXLST segment 11 (DTM, line 12 column 1): date of birth '701315': month out of "
     "range (bad_date)"),
    ([["NAD+FL+++SMITH:JOHN", "DTM+329:7001", "NAT+2+GBR"]],
     "PAXLST segment 11 (DTM, line 12 column 1): date of birth '7001' does not match date "
     "format (none) (bad_date)"),
    ([["NAD+FL+++SMITH:JOHN", "DTM+329:700115:102"]],
     "PAXLST segment 11 (DTM, line 12 column 1): date of birth '700115' does not match "
     "date format 102 (bad_date)"),
    ([["NAD+FL+++SMITH:JOHN", "NAT+2+XYZ"]],
     "PAXLST segment 11 (NAT, line 12 column 1): nationality must be an ICAO 9303 "
     "three-letter code (bad_country)"),
    ([["NAD+FL+++SMITH:JOHN", "ATT+2++Q"]],
     "PAXLST segment 11 (ATT, line 12 column 1): ATT sex 'Q' is not M, F, U or X "
     "(bad_paxlst)"),
    ([["NAD+FM+++SMITH:JOHN"]],
     "PAXLST segment 10 (NAD, line 11 column 1): a crew (NAD+FM) in a passengers list "
     "(BGM) (bad_paxlst)"),
    ([["NAD+ZZ+++SMITH:JOHN"]],
     "PAXLST segment 10 (NAD, line 11 column 1): NAD party function 'ZZ' is not a "
     "traveller (FL, FM, DDU, DDT) (bad_paxlst)"),
    ([["NAD+FL+++:JOHN"]],
     "PAXLST segment 10 (NAD, line 11 column 1): the traveller has no family name "
     "(NAD C080 3036) (bad_paxlst)"),
    ([["NAD+FL+++SMITH", "DOC+P:110:111"]],
     "PAXLST segment 11 (DOC, line 12 column 1): DOC needs a document type (1001) and "
     "number (1004) (bad_paxlst)"),
    ([["NAD+FL+++SMITH", "XYZ+1"]],
     "PAXLST segment 11 (XYZ, line 12 column 1): XYZ has no place in a PAXLST message "
     "(bad_paxlst)"),
    ([["NAD+FL+++SMITH", "TDT+20+KC1"]],
     "PAXLST segment 11 (TDT, line 12 column 1): TDT is out of place here (IG 3.0 "
     "message structure) (bad_paxlst)"),
])
def test_malformed_traveller(travellers: list[list[str]], expected: str) -> None:
    assert refusal(message(*travellers)) == expected


def test_count_mismatches() -> None:
    assert refusal(message(PAX, cnt="CNT+42:2")) == (
        "PAXLST segment 17 (CNT, line 18 column 1): CNT declares 2 travellers but the "
        "message holds 1 (bad_paxlst)")
    assert refusal(message(PAX, cnt="CNT+41:1")) == (
        "PAXLST segment 17 (CNT, line 18 column 1): CNT qualifier '41' should be 42 in a "
        "passengers list (bad_paxlst)")
    assert refusal(message(PAX, count=99)) == (
        "PAXLST segment 18 (UNT, line 19 column 1): UNT counts 99 segments but the message "
        "UNH..UNT holds 17 (bad_paxlst)")
    assert refusal(message(PAX, tail=["UNZ+1+OTHER"])) == (
        "PAXLST segment 19 (UNZ, line 20 column 1): UNZ does not close UNB (count 1, "
        "reference 'REF1') (bad_paxlst)")


def test_service_segment_refusals() -> None:
    assert refusal(message(PAX, tail=[])) == (
        "PAXLST segment 18 (UNT, line 19 column 1): the interchange ends where UNZ should "
        "follow UNT (bad_paxlst)")
    assert refusal(message(PAX, tail=["UNZ+1+REF1", "UNB+UNOA:4"])) == (
        "PAXLST segment 20 (UNB, line 21 column 1): a segment follows UNZ, the end of the "
        "interchange (bad_paxlst)")
    assert refusal(message(PAX, head=[HEAD[0], HEAD[1].replace("02B", "15B"), *HEAD[2:]])) == (
        "PAXLST segment 2 (UNH, line 3 column 1): PAXLST version D:15B is not one this node "
        "reads (D:02B, D:05B) (bad_paxlst)")
    assert refusal(message(PAX, head=[HEAD[0], HEAD[1], "BGM+266", *HEAD[3:]])) == (
        "PAXLST segment 3 (BGM, line 4 column 1): BGM document name code '266' is neither "
        "745 (passenger list) nor 250 (crew list) (bad_paxlst)")
    assert refusal(message(PAX, head=[HEAD[0].replace("UNOA", "UNOQ"), *HEAD[1:]])) == (
        "PAXLST segment 1 (UNB, line 1 column 1): UNB syntax identifier UNOQ is not one this "
        "node reads (UNOA, UNOB, UNOC, UNOD, UNOE, UNOF, UNOW, UNOY) (bad_paxlst)")
    assert refusal(b"UNA:+.? 'UNH+1'") == (
        "PAXLST segment 1 (UNH, line 1 column 10): an interchange starts with UNB (after an "
        "optional UNA) (bad_paxlst)")
    assert refusal(b"UNA::.? 'UNB+UNOA:4'") == (
        "PAXLST segment 0 (UNA, line 1 column 1): the UNA service characters \"::.? '\" are "
        "not distinct separators (bad_paxlst)")
    assert refusal(b"") == "PAXLST message: the message is empty (empty_request)"
    assert refusal(message(PAX, head=[HEAD[0], HEAD[1], HEAD[2]])) == (
        "PAXLST segment 4 (NAD, line 5 column 1): a PAXLST message has at least one TDT (the "
        "flight) after BGM and the reporting party (bad_paxlst)")


def test_truncated_message_is_refused_not_silently_shortened() -> None:
    data = message(PAX)
    cut = data[:data.rindex(b"UNZ") + 5]  # "UNZ+1" without its terminator
    assert refusal(cut) == (
        "PAXLST segment 19 (UNZ, line 20 column 1): the last segment is not terminated with "
        "\"'\" (the message is truncated) (bad_paxlst)")


def test_invalid_bytes_for_the_declared_character_set() -> None:
    data = message(["NAD+FL+++MÜLLER:JOHN"]).replace("MÜLLER".encode(), "MÜLLER".encode(
        "latin-1"))
    assert refusal(data) == (
        "PAXLST message: byte 243 (line 11) is not ascii text, which UNB's syntax "
        "identifier UNOA declares (bad_paxlst)")


def test_a_second_message_is_refused() -> None:
    data = message(PAX, tail=["UNH+M2+PAXLST:D:02B:UN:IATA", "UNZ+2+REF1"])
    assert refusal(data) == (
        "PAXLST segment 19 (UNH, line 20 column 1): the interchange holds a second message; "
        "send each PAXLST message (each part of a flight) on its own (bad_paxlst)")


# --- bounds: at the limit, and one past it -------------------------------------------------


def test_message_size_bound() -> None:
    data = message(PAX)
    at = data + b"\n" * (paxlst.MAX_PAXLST_BYTES - len(data))
    assert len(at) == paxlst.MAX_PAXLST_BYTES
    assert len(parse_paxlst(at).travellers) == 1
    assert refusal(at + b"\n") == (
        f"PAXLST message: the message is larger than {paxlst.MAX_PAXLST_BYTES} bytes "
        "(paxlst_too_large)")


def _pax(i: int) -> list[str]:
    letters = "".join(chr(65 + int(c)) for c in f"{i:04d}")
    return [f"NAD+FL+++SMITH{letters}:JOHN", "DTM+329:700115", "NAT+2+GBR"]


def test_traveller_bound() -> None:
    at = [_pax(i) for i in range(paxlst.MAX_TRAVELLERS)]
    assert len(parse_paxlst(message(*at)).travellers) == paxlst.MAX_TRAVELLERS
    past = refusal(message(*at, _pax(paxlst.MAX_TRAVELLERS)))
    n = len(HEAD) + 3 * paxlst.MAX_TRAVELLERS + 1
    assert past == (f"PAXLST segment {n} (NAD, line {n + 1} column 1): the message holds more "
                    f"than {paxlst.MAX_TRAVELLERS} travellers (paxlst_too_large)")


def test_segment_bound() -> None:
    fixed = len(HEAD) + len(PAX) + 3  # CNT, UNT, UNZ
    filler = ["RFF+SEA:1A"] * (paxlst.MAX_SEGMENTS - fixed)
    at = message([*PAX[:4], *filler, *PAX[4:]])
    assert len(parse_paxlst(at).travellers) == 1
    past = refusal(message([*PAX[:4], *filler, "RFF+SEA:1A", *PAX[4:]]))
    n = paxlst.MAX_SEGMENTS + 1
    assert past == (f"PAXLST segment {n} (UNZ, line {n + 1} column 1): the interchange holds "
                    f"more than {paxlst.MAX_SEGMENTS} segments (paxlst_too_large)")


def test_documents_per_traveller_bound() -> None:
    docs = [s for k in range(paxlst.MAX_DOCUMENTS_PER_TRAVELLER)
            for s in (f"DOC+P:110:111+N{k}", "LOC+91+KAZ")]
    f = parse_paxlst(message([*PAX[:4], *docs]))
    assert len(f.travellers[0].documents) == paxlst.MAX_DOCUMENTS_PER_TRAVELLER
    n = len(HEAD) + 4 + len(docs) + 1
    assert refusal(message([*PAX[:4], *docs, "DOC+P:110:111+N9"])) == (
        f"PAXLST segment {n} (DOC, line {n + 1} column 1): the traveller holds more than "
        f"{paxlst.MAX_DOCUMENTS_PER_TRAVELLER} documents (paxlst_too_large)")


# --- batches and answers ----------------------------------------------------------------------


def test_batches_keep_a_traveller_whole_and_respect_the_limit() -> None:
    f = parse_paxlst((DATA / "d02b-passengers.edi").read_bytes())
    items = flight_queries(f)  # travellers of 2, 3, 1 and 2 items
    assert [[i.traveller for i in b] for b in flight_batches(items, 4)] == [
        [1, 1], [2, 2, 2, 3], [4, 4]]
    assert [len(b) for b in flight_batches(items, 500)] == [8]
    assert [[i.traveller for i in b] for b in flight_batches(items, 2)] == [
        [1, 1], [2, 2], [2, 3], [4, 4]]  # only a traveller larger than a batch is split
    assert [len(b) for b in flight_batches(items, 1)] == [1] * 8
    with pytest.raises(ValueError):
        flight_batches(items, 0)


def test_a_large_flight_splits_at_max_batch() -> None:
    f = parse_paxlst(message(*[[*_pax(i), f"DOC+P:110:111+N{i}", "LOC+91+KAZ"]
                               for i in range(600)]))
    batches = flight_batches(flight_queries(f), 500)
    assert [len(b) for b in batches] == [500, 500, 200]
    assert sum(len(b) for b in batches) == 1200


def test_results_say_which_item_hit() -> None:
    f = parse_paxlst((DATA / "d02b-passengers.edi").read_bytes())
    items = flight_queries(f)
    results = [ItemResult(i, Outcome.HIT if i in (0, 5) else Outcome.NO_HIT)
               for i in range(len(items))]
    out = traveller_results(f, items, results)
    assert [(r.traveller.index, r.hit, [i.kind for i, x in r.checks
                                        if x.outcome is Outcome.HIT]) for r in out] == [
        (1, True, [ItemKind.PERSON]), (2, False, []), (3, True, [ItemKind.DOCUMENT]),
        (4, False, [])]
    assert out[2].not_checked == ("person not checked: no date of birth (DTM+329)",)
    with pytest.raises(ValueError):
        traveller_results(f, items, results[:-1])
