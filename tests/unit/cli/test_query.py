"""``bxnode query doc|person|batch`` against real nodes serving over mTLS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.federation import Federation
from tests.unit.cli._support import Bx, assert_one_sentence, audit_bodies

pytestmark = pytest.mark.integration


def _q(fed: Federation, asker: str, peer: str, *extra: str,
       purpose: str = "border_check") -> list[str]:
    return ["--node-dir", str(fed.dirs[asker]), "--peer", peer, "--purpose", purpose,
            "--case-ref", "CASE-CLI-1", *extra]  # later options win


def _last_seq(fed: Federation, node: str) -> int:
    return int(audit_bodies(fed.dirs[node])[-1]["seq"])


def test_doc_hit_text(fed: Federation, bx: Bx) -> None:
    r = bx("query", "doc", *_q(fed, "KGZ-BS", "KAZ-BS", "--number", "n0481516", "--state",
                                "kaz"))
    assert r.rc == 0, r.err
    seq = _last_seq(fed, "KAZ-BS")
    assert r.out.splitlines() == [
        "#0: HIT  ref=KAZ-SLTD-2026-000117 action=seize_document contact=KAZ-BS desk",
        f"KAZ-BS: 1 hit(s) in 1 item(s); answer verified, receipt kept (peer audit entry {seq})"]
    mine = audit_bodies(fed.dirs["KGZ-BS"])[-1]
    assert (mine["event"], mine["peer"], mine["outcome"], mine["case_ref"], mine["hits"]) == (
        "lookup_sent", "KAZ-BS", "answered", "CASE-CLI-1", 1)


def test_doc_no_hit_json(fed: Federation, bx: Bx) -> None:
    r = bx("query", "doc", "--json", *_q(fed, "KGZ-BS", "KAZ-BS", "--number", "N0000001",
                                         "--state", "KAZ", "--type", "p"))
    assert r.rc == 0, r.err
    out = json.loads(r.out)
    assert out == {"peer": "KAZ-BS", "hits": 0, "verified": True,
                   "peer_audit_seq": _last_seq(fed, "KAZ-BS"),
                   "results": [{"index": 0, "outcome": "no_hit", "reference": "",
                                "action": None, "contact": ""}]}


def test_expired_record_never_hits(fed: Federation, bx: Bx) -> None:
    r = bx("query", "doc", *_q(fed, "KGZ-BS", "KAZ-BS", "--number", "N7700770", "--state",
                                "KAZ"))
    assert (r.rc, r.out.splitlines()[0]) == (0, "#0: no hit")


def test_person_hit_json(fed: Federation, bx: Bx) -> None:
    r = bx("query", "person", "--json", *_q(
        fed, "KGZ-BS", "KAZ-BS", "--family", "Юсупов", "--given", "Тимур", "--patronymic",
        "Рашидович", "--dob", "1984-03-17", "--nationality", "uzb", "--sex", "m"))
    assert r.rc == 0, r.err
    out = json.loads(r.out)
    assert (out["hits"], out["results"][0]["reference"], out["results"][0]["action"]) == (
        1, "KAZ-WNT-2026-000311", "arrest")


def test_batch_from_a_manifest(fed: Federation, bx: Bx, tmp_path: Path) -> None:
    manifest = tmp_path / "flight.csv"
    manifest.write_text(
        "number,issuing_state,doc_type,family_name,given_names,patronymic,dob,nationality,sex\n"
        "N5550001,KAZ,P,,,,,,\n"
        "n0481516,kaz,,,,,,,\n"
        ",,,Юсупов,Тимур,Рашидович,1984-03,UZB,M\n"
        ",,,Иванов,Сергей,,1970-01-15,RUS,M\n")
    r = bx("query", "batch", str(manifest), "--json", *_q(fed, "UZB-BS", "KAZ-BS"))
    assert r.rc == 0, r.err
    out = json.loads(r.out)
    assert [(x["index"], x["outcome"]) for x in out["results"]] == [
        (0, "no_hit"), (1, "hit"), (2, "hit"), (3, "no_hit")]
    # the UZB agreement discloses reference and action, not the contact
    assert out["results"][1] == {"index": 1, "outcome": "hit",
                                 "reference": "KAZ-SLTD-2026-000117",
                                 "action": "seize_document", "contact": ""}
    assert out["hits"] == 2


def test_policy_refusal_exits_3(fed: Federation, bx: Bx) -> None:
    before = len(audit_bodies(fed.dirs["KAZ-BS"]))
    r = bx("query", "doc", *_q(fed, "UZB-BS", "KAZ-BS", "--number", "N0481516", "--state",
                                "KAZ", purpose="criminal_investigation"))
    line = assert_one_sentence(r, rc=3)
    assert line == ("bxnode: the peer refused: permission_denied/purpose_not_agreed "
                    "(signed refusal verified)")
    assert r.out == ""
    theirs = audit_bodies(fed.dirs["KAZ-BS"])
    assert len(theirs) == before + 1
    assert (theirs[-1]["outcome"], theirs[-1]["reason"]) == ("denied", "purpose_not_agreed")
    mine = audit_bodies(fed.dirs["UZB-BS"])[-1]
    assert (mine["event"], mine["outcome"], mine["reason"]) == (
        "lookup_sent", "refused", "purpose_not_agreed")


def test_a_refused_query_with_json_prints_the_refusal_on_stdout(fed: Federation,
                                                                bx: Bx) -> None:
    r = bx("query", "doc", *_q(fed, "UZB-BS", "KAZ-BS", "--number", "N0481516", "--state",
                                "KAZ", "--json", purpose="criminal_investigation"))
    assert r.rc == 3
    assert json.loads(r.out) == {"error": {
        "status": "PERMISSION_DENIED", "reason": "purpose_not_agreed",
        "message": json.loads(r.out)["error"]["message"], "refused_by_peer": True,
        "refusal_verified": True}}


def test_node_dir_and_json_before_the_command_are_used(fed: Federation, bx: Bx) -> None:
    """``bxnode --node-dir DIR --json <command>``: the options before the command count."""
    args = _q(fed, "UZB-BS", "KAZ-BS", "--number", "N0481516", "--state", "KAZ")
    after = args[2:]  # without --node-dir
    r = bx("--node-dir", str(fed.dirs["UZB-BS"]), "--json", "query", "doc", *after)
    assert r.rc == 0 and json.loads(r.out)["results"][0]["outcome"] == "hit"
    # given after the command too, the later (the command's own) wins
    r = bx("--node-dir", "/nonexistent", "query", "doc", *args)
    assert r.rc == 0


def test_unknown_purpose_is_refused_locally(fed: Federation, bx: Bx) -> None:
    before = len(audit_bodies(fed.dirs["KAZ-BS"]))
    r = bx("query", "doc", *_q(fed, "KGZ-BS", "KAZ-BS", "--number", "N1", "--state", "KAZ",
                                purpose="curiosity"))
    assert assert_one_sentence(r) == (
        "bxnode: purpose is not one this protocol knows (unknown_purpose)")
    assert len(audit_bodies(fed.dirs["KAZ-BS"])) == before


def test_peer_not_in_members(fed: Federation, bx: Bx) -> None:
    members = fed.root / "members.json"
    r = bx("query", "doc", *_q(fed, "KGZ-BS", "XYZ-BS", "--number", "N1", "--state", "KAZ"))
    assert assert_one_sentence(r) == (
        f"bxnode: peer XYZ-BS is not in the members file {members}")


@pytest.mark.parametrize(("argv", "message"), [
    (("doc", "--number", "N-1", "--state", "KAZ"),
     "document number must be 1-20 characters A-Z, 0-9 (bad_document_number)"),
    (("doc", "--number", "N" * 21, "--state", "KAZ"),
     "document number must be 1-20 characters A-Z, 0-9 (bad_document_number)"),
    (("doc", "--number", "N1", "--state", "ZZZ"),
     "issuing state must be an ICAO 9303 three-letter code (bad_country)"),
    (("doc", "--number", "N1", "--state", "KAZ", "--type", "Q"),
     "document type must be an ICAO 9303 type code such as P, I, A, C or V "
     "(bad_document_type)"),
    (("person", "--family", "Иванов", "--dob", "1990-02-30", "--nationality", "KAZ"),
     "day does not exist in that month (bad_date)"),
    (("person", "--family", "Иванов", "--dob", "90", "--nationality", "KAZ"),
     "date must be YYYY, YYYY-MM or YYYY-MM-DD (bad_date)"),
    (("person", "--family", "Ivanov7", "--dob", "1990", "--nationality", "KAZ"),
     "family name holds a digit ('7', U+0037) at position 7; a name has no digits (bad_name)"),
    (("person", "--family", "Я" * 101, "--dob", "1990", "--nationality", "KAZ"),
     "family name is longer than 100 (bad_name)"),
    (("doc", "--number", "N1", "--state", "KAZ", "--case-ref", "c" * 129),
     "case reference is required (at most 128 characters) (bad_case_ref)"),
    (("doc", "--number", "N1", "--state", "KAZ", "--operator", "bad op"),
     "operator id must be 1-64 characters of A-Z a-z 0-9 . _ : @ - (bad_identifier)"),
])
def test_bad_query_input_sends_nothing(fed: Federation, bx: Bx, argv: tuple[str, ...],
                                       message: str) -> None:
    before = len(audit_bodies(fed.dirs["KAZ-BS"])), len(audit_bodies(fed.dirs["KGZ-BS"]))
    r = bx("query", argv[0], *_q(fed, "KGZ-BS", "KAZ-BS", *argv[1:]))
    assert assert_one_sentence(r) == f"bxnode: {message}"
    assert (len(audit_bodies(fed.dirs["KAZ-BS"])), len(audit_bodies(fed.dirs["KGZ-BS"]))) == before


def test_unknown_sex_on_the_command_line_is_a_usage_error(fed: Federation, bx: Bx) -> None:
    r = bx("query", "person", *_q(fed, "KGZ-BS", "KAZ-BS", "--family", "X", "--dob", "1990",
                                   "--nationality", "KAZ", "--sex", "Q"))
    assert r.rc == 2
    assert r.err.startswith("bxnode: argument --sex: invalid choice: 'Q'")


def _manifest(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


MANIFEST_HEADER = "number,issuing_state,doc_type,family_name,dob,nationality,sex\n"


@pytest.mark.parametrize(("name", "text", "message"), [
    ("bad.csv", MANIFEST_HEADER + "N1,KAZ,P,,,,\nN-2,KAZ,P,,,,\n",
     "bad.csv line 3: document number must be 1-20 characters A-Z, 0-9 (bad_document_number)"),
    ("sex.csv", MANIFEST_HEADER + ",,,Иванов,1990,KAZ,Q\n",
     "sex.csv line 2: sex must be M, F or X (bad_field)"),
    ("dob.csv", MANIFEST_HEADER + "N1,KAZ,P,,,,\n,,,Иванов,1990-13,KAZ,M\n",
     "dob.csv line 3: month out of range (bad_date)"),
    ("nodob.csv", MANIFEST_HEADER + ",,,Иванов,,KAZ,M\n",
     "nodob.csv line 2: date must be YYYY, YYYY-MM or YYYY-MM-DD (bad_date)"),
    ("neither.csv", MANIFEST_HEADER + ",,,,,,\n",
     "neither.csv line 2: row is neither a document (number) nor a person (family_name) "
     "(bad_kind)"),
    ("extra.csv", MANIFEST_HEADER + "N1,KAZ,P,,,,,surplus\n",
     "extra.csv line 2: row has more fields than the header (bad_manifest)"),
    ("empty.csv", MANIFEST_HEADER, "empty.csv holds no items (empty_request)"),
    ("blank.jsonl", "\n\n", "blank.jsonl holds no items (empty_request)"),
    ("broken.jsonl", '{"number": "N1", "issuing_state": "KAZ"}\n{"number": \n',
     "broken.jsonl line 2: not valid JSON (bad_manifest)"),
    ("list.jsonl", '{"number": "N1", "issuing_state": "KAZ"}\n["N2"]\n',
     "list.jsonl line 2: each line must be a JSON object (bad_manifest)"),
    ("type.jsonl", '{"number": 12, "issuing_state": "KAZ"}\n',
     "type.jsonl line 1: number must be text (bad_field)"),
    ("latin.csv", (MANIFEST_HEADER + ",,,Müller,1990,D,M\n").encode("latin-1"),
     "latin.csv is not UTF-8 text (bad_manifest)"),
    ("quote.csv", MANIFEST_HEADER + 'N1,KAZ,P,,,,\nN2,"KAZ,P\n',
     "quote.csv line 3: not valid CSV (unexpected end of data) (bad_manifest)"),
    ("huge.csv", MANIFEST_HEADER + "N" * 200_000 + ",KAZ,P,,,,\n",
     "huge.csv line 2: not valid CSV (field larger than field limit (131072)) (bad_manifest)"),
])
def test_bad_manifest_names_the_line_and_sends_nothing(fed: Federation, bx: Bx, tmp_path: Path,
                                                       name: str, text: str | bytes,
                                                       message: str) -> None:
    before = len(audit_bodies(fed.dirs["KAZ-BS"]))
    path = _manifest(tmp_path, name, text)
    r = bx("query", "batch", str(path), *_q(fed, "KGZ-BS", "KAZ-BS"))
    assert assert_one_sentence(r) == f"bxnode: {message}"
    assert len(audit_bodies(fed.dirs["KAZ-BS"])) == before


def test_oversized_manifest(fed: Federation, bx: Bx, tmp_path: Path) -> None:
    path = _manifest(tmp_path, "big.csv", "number,issuing_state\n" + "N1,KAZ\n" * 10_001)
    r = bx("query", "batch", str(path), *_q(fed, "KGZ-BS", "KAZ-BS"))
    assert assert_one_sentence(r) == (
        "bxnode: a manifest may hold at most 10000 items (batch_too_large)")


def test_batch_larger_than_the_peer_allows(fed: Federation, bx: Bx, tmp_path: Path) -> None:
    path = _manifest(tmp_path, "501.csv", "number,issuing_state\n" + "N1,KAZ\n" * 501)
    r = bx("query", "batch", str(path), *_q(fed, "KGZ-BS", "KAZ-BS"))
    line = assert_one_sentence(r, rc=3)
    assert line.startswith("bxnode: the peer refused: invalid_argument/batch_too_large")


def test_missing_manifest(fed: Federation, bx: Bx, tmp_path: Path) -> None:
    r = bx("query", "batch", str(tmp_path / "absent.csv"), *_q(fed, "KGZ-BS", "KAZ-BS"))
    assert assert_one_sentence(r) == (
        f"bxnode: {tmp_path / 'absent.csv'} is not a readable file (missing_file)")
