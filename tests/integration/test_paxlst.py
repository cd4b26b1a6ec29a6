"""``bxnode query paxlst`` and ``query batch`` rows against real nodes over mTLS (issue 11 §3).

A flight's PAXLST message carries a wanted person on a new passport: the document is
unknown everywhere, the person is on KAZ-BS's watchlist (``Юсупов Тимур``, written in
Cyrillic; the airline sends ``IUSUPOV:TIMUR``), and the person item catches them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import structlog

from node.cli.main import main
from tests.federation import ROOT, Federation
from tests.unit.cli._support import Bx, Run, assert_one_sentence, audit_bodies

pytestmark = pytest.mark.integration

DATA = ROOT / "tests" / "data" / "paxlst"


@pytest.fixture
def bx(capsys: pytest.CaptureFixture[str]) -> Bx:
    def run(*argv: str) -> Run:
        capsys.readouterr()
        try:
            rc = main(list(argv))
        except SystemExit as exc:
            rc = int(exc.code or 0)
        finally:
            structlog.configure(logger_factory=lambda *_: structlog.PrintLogger(sys.stderr))
        out, err = capsys.readouterr()
        return Run(rc, out, err)

    return run


def _q(fed: Federation, asker: str, *peers: str, case: str = "CASE-PAX-1") -> list[str]:
    out = ["--node-dir", str(fed.dirs[asker]), "--purpose", "border_check", "--case-ref", case]
    for p in peers:
        out += ["--peer", p]
    return out


def test_wanted_person_on_a_new_passport_is_caught_by_the_person_item(
        fed: Federation, bx: Bx) -> None:
    before = len(audit_bodies(fed.dirs["KAZ-BS"]))
    r = bx("query", "paxlst", str(DATA / "d02b-passengers.edi"), *_q(fed, "KGZ-BS", "KAZ-BS"))
    assert r.rc == 0, r.err
    theirs = audit_bodies(fed.dirs["KAZ-BS"])[before:]
    assert [(e["event"], e["query_kind"], e["items"], e["requester"], e["case_ref"],
             e["outcome"]) for e in theirs] == [
        ("lookup", "batch", 8, "KGZ-BS", "CASE-PAX-1", "answered")]
    seq = theirs[0]["seq"]
    assert r.out.splitlines() == [
        "flight KC109 ALA-FRU: PAXLST D02B passenger list (message PAX001), 4 traveller(s), "
        "8 item(s) in 1 batch(es) per peer",
        "KAZ-BS:",
        "  #1 IUSUPOV TIMUR (passenger): person: HIT  ref=KAZ-WNT-2026-000311 action=arrest "
        "contact=KAZ-BS SIRENE-style desk, +7 7172 000 001; document P FA7777777 UZB: no hit",
        "  #2 O'BRIEN MARY ANN (passenger): person: no hit; document P PA1234567 IRL: no hit; "
        "document V KGZV00991 KGZ: no hit",
        "  #3 NURLANOV ARMAN (passenger): document P N0481516 KAZ: HIT  "
        "ref=KAZ-SLTD-2026-000117 action=seize_document contact=KAZ-BS desk; "
        "person not checked: no date of birth (DTM+329)",
        "  #4 SMITH JOHN (passenger): person: no hit; document P 533380006 GBR: no hit",
        f"  KAZ-BS: 2 hit(s) in 8 item(s), 1 batch(es); answers verified, receipts kept "
        f"(peer audit entries {seq})"]


def test_each_peer_answers_on_its_own_and_a_refusal_is_not_merged(
        fed: Federation, bx: Bx) -> None:
    before = {n: len(audit_bodies(fed.dirs[n])) for n in ("KAZ-BS", "UZB-BS")}
    argv = _q(fed, "KGZ-BS", "KAZ-BS", "UZB-BS", case="CASE-PAX-2")
    argv[argv.index("border_check")] = "criminal_investigation"  # KGZ's agreement with UZB
    r = bx("query", "paxlst", str(DATA / "d02b-passengers.edi"), "--json", *argv)
    assert r.rc == 3, r.err
    out = json.loads(r.out)
    kaz, uzb = out["peers"]
    assert (kaz["peer"], kaz["status"], kaz["hits"], kaz["batches_answered"]) == (
        "KAZ-BS", "answered", 2, 1)
    assert [(t["index"], t["hit"]) for t in kaz["travellers"]] == [
        (1, ["person"]), (2, []), (3, ["document"]), (4, [])]
    assert kaz["travellers"][2]["not_checked"] == [
        "person not checked: no date of birth (DTM+329)"]
    assert (uzb["peer"], uzb["status"], uzb["reason"], uzb["refusal_verified"],
            uzb["batches_answered"], uzb["hits"]) == (
        "UZB-BS", "refused", "purpose_not_agreed", True, 0, 0)
    assert [t["items"] for t in uzb["travellers"]] == [[], [], [], []]
    assert all(t["not_asked"] for t in uzb["travellers"] if t["index"] != 3) is True
    theirs = audit_bodies(fed.dirs["UZB-BS"])[before["UZB-BS"]:]
    assert [(e["outcome"], e["reason"]) for e in theirs] == [("denied", "purpose_not_agreed")]
    assert len(audit_bodies(fed.dirs["KAZ-BS"])) == before["KAZ-BS"] + 1


def test_a_flight_is_split_into_signed_batches(fed: Federation, bx: Bx) -> None:
    before = len(audit_bodies(fed.dirs["KAZ-BS"]))
    r = bx("query", "paxlst", str(DATA / "d02b-passengers.edi"), "--batch-size", "3",
           *_q(fed, "KGZ-BS", "KAZ-BS", case="CASE-PAX-3"))
    assert r.rc == 0, r.err
    theirs = audit_bodies(fed.dirs["KAZ-BS"])[before:]
    assert [(e["query_kind"], e["items"], e["case_ref"]) for e in theirs] == [
        ("batch", 2, "CASE-PAX-3"), ("batch", 3, "CASE-PAX-3"), ("batch", 3, "CASE-PAX-3")]
    assert len({e["request_digest"] for e in theirs}) == 3  # three signed requests
    lines = r.out.splitlines()
    assert lines[0].endswith("8 item(s) in 3 batch(es) per peer")
    assert lines[-1] == (f"  KAZ-BS: 2 hit(s) in 8 item(s), 3 batch(es); answers verified, "
                         f"receipts kept (peer audit entries "
                         f"{', '.join(str(e['seq']) for e in theirs)})")


def test_a_crew_list(fed: Federation, bx: Bx) -> None:
    r = bx("query", "paxlst", str(DATA / "d05b-crew.edi"), *_q(fed, "KAZ-BS", "KGZ-BS"))
    assert r.rc == 0, r.err
    lines = r.out.splitlines()
    assert lines[0] == ("flight KC109 ALA-FRU: PAXLST D05B crew list (message CRW001), "
                        "2 traveller(s), 4 item(s) in 1 batch(es) per peer")
    assert lines[2] == ("  #1 ABENOV SERIK (crew): person: no hit; document P N1122334 KAZ: "
                        "no hit; document L KZATPL0042 not checked: document type L is not an "
                        "ICAO 9303 travel document")
    assert lines[3] == ("  #2 ASANOV BAKYT (in transit crew): person: HIT  "
                        "ref=KGZ-WNT-2026-0007 action=arrest contact=KGZ-BS desk; "
                        "document AC KGZCMC0007 KGZ: no hit")


@pytest.mark.parametrize(("edit", "message"), [
    (lambda b: b.replace(b"FA7777777", b"FA-7777777"),
     "PAXLST segment 19 (DOC, line 20 column 1): document number must be 1-20 characters "
     "A-Z, 0-9 (bad_document_number)"),
    (lambda b: b.replace(b"CNT+42:4", b"CNT+42:5"),
     "PAXLST segment 44 (CNT, line 45 column 1): CNT declares 5 travellers but the message "
     "holds 4 (bad_paxlst)"),
    (lambda b: b[:b.rindex(b"'")],
     "PAXLST segment 46 (UNZ, line 47 column 1): the last segment is not terminated with "
     "\"'\" (the message is truncated) (bad_paxlst)"),
    (lambda b: b.replace(b"O?'BRIEN", b"O'BRIEN"),
     "PAXLST segment 23 (BRI, line 23 column 12): a segment starts with a three-character "
     "tag (A-Z, 0-9), not 'BRIEN:MARY:ANN+1' (is a separator in the segment before it not "
     "released with '?'?) (bad_paxlst)"),
], ids=["bad-number", "count", "truncated", "unreleased-apostrophe"])
def test_a_malformed_message_sends_nothing(fed: Federation, bx: Bx, tmp_path: Path,
                                           edit: object, message: str) -> None:
    path = tmp_path / "flight.edi"
    path.write_bytes(edit((DATA / "d02b-passengers.edi").read_bytes()))  # type: ignore[operator]
    before = {n: len(audit_bodies(fed.dirs[n])) for n in fed.dirs}
    r = bx("query", "paxlst", str(path), *_q(fed, "KGZ-BS", "KAZ-BS", "UZB-BS"))
    assert assert_one_sentence(r) == f"bxnode: {message}"
    assert r.out == ""
    assert {n: len(audit_bodies(fed.dirs[n])) for n in fed.dirs} == before


def test_a_peer_not_in_the_members_file_sends_nothing(fed: Federation, bx: Bx) -> None:
    before = {n: len(audit_bodies(fed.dirs[n])) for n in fed.dirs}
    r = bx("query", "paxlst", str(DATA / "d02b-passengers.edi"),
           *_q(fed, "KGZ-BS", "KAZ-BS", "XYZ-BS"))
    assert assert_one_sentence(r) == (
        f"bxnode: peer XYZ-BS is not in the members file {fed.root / 'members.json'}")
    assert {n: len(audit_bodies(fed.dirs[n])) for n in fed.dirs} == before


def test_a_manifest_row_naming_a_document_and_a_person_is_checked_as_both(
        fed: Federation, bx: Bx, tmp_path: Path) -> None:
    manifest = tmp_path / "flight.csv"
    manifest.write_text(
        "number,issuing_state,doc_type,family_name,given_names,patronymic,dob,nationality,sex\n"
        "FA7777777,UZB,P,IUSUPOV,TIMUR,,1984-03-17,UZB,M\n"
        "N0481516,KAZ,P,NURLANOV,ARMAN,,,KAZ,M\n"
        "N5550001,KAZ,P,,,,,,\n")
    before = len(audit_bodies(fed.dirs["KAZ-BS"]))
    r = bx("query", "batch", str(manifest), *_q(fed, "KGZ-BS", "KAZ-BS"))
    assert r.rc == 0, r.err
    theirs = audit_bodies(fed.dirs["KAZ-BS"])[before:]
    assert [(e["items"], e["datasets"]) for e in theirs] == [(4, ["documents", "persons"])]
    assert r.out.splitlines() == [
        "line 2: document: no hit; person: HIT  ref=KAZ-WNT-2026-000311 action=arrest "
        "contact=KAZ-BS SIRENE-style desk, +7 7172 000 001",
        "line 3: document: HIT  ref=KAZ-SLTD-2026-000117 action=seize_document "
        "contact=KAZ-BS desk; person not checked: no date of birth (dob)",
        "line 4: document: no hit",
        f"KAZ-BS: 2 hit(s) in 4 item(s); answer verified, receipt kept (peer audit entry "
        f"{theirs[0]['seq']})"]
    r = bx("query", "batch", str(manifest), "--json", *_q(fed, "KGZ-BS", "KAZ-BS"))
    rows = json.loads(r.out)["rows"]
    assert [(row["line"], row["hit"], row["not_checked"]) for row in rows] == [
        (2, ["person"], []), (3, ["document"], ["person: no date of birth (dob)"]),
        (4, [], [])]
    assert [[(i["index"], i["item"]) for i in row["items"]] for row in rows] == [
        [(0, "document"), (1, "person")], [(2, "document")], [(3, "document")]]
