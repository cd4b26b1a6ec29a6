"""``bxnode names compare`` and ``bxnode query mrz``: results and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.matching import check_digit
from tests.federation import Federation
from tests.unit.cli._support import Bx, assert_one_sentence, audit_bodies, store_of

PAIR = {"a": {"given": "Тимур", "family": "Юсупов", "patronymic": None, "dob": "1984-03-17",
              "nationality": "UZB", "sex": "M"},
        "b": {"given": "TIMUR", "family": "IUSUPOV", "patronymic": None, "dob": "1984-03-17",
              "nationality": "UZB", "sex": "M"}}
OTHER = {"a": PAIR["a"], "b": {**PAIR["b"], "given": "RUSTAM", "dob": "1961-09-02"}}


def test_names_compare_writes_one_line_per_pair(bx: Bx, tmp_path: Path) -> None:
    f = tmp_path / "pairs.jsonl"
    f.write_text(json.dumps(PAIR, ensure_ascii=False) + "\n" + json.dumps(OTHER) + "\n")
    r = bx("names", "compare", str(f))
    assert r.rc == 0, r.err
    lines = [json.loads(x) for x in r.out.splitlines()]
    assert [x["match"] for x in lines] == [True, False]
    assert lines[0]["score"] > lines[1]["score"]


@pytest.mark.parametrize(("content", "needle"), [
    ('{"a": 1}\n', "line 1: "),
    (json.dumps(PAIR) + "\nnot json\n", "line 2: not JSON"),
    (json.dumps({**PAIR, "b": {**PAIR["b"], "dob": "1984-13-40"}}) + "\n", "line 1: "),
    (json.dumps({**PAIR, "b": {**PAIR["b"], "family": "IUSUPOV7"}}) + "\n",
     "line 1: family name holds a digit ('7', U+0037) at position 8; a name has no digits "
     "(bad_name)"),
])
def test_names_compare_strict_stops_at_a_bad_line(bx: Bx, tmp_path: Path, content: str,
                                                  needle: str) -> None:
    f = tmp_path / "pairs.jsonl"
    f.write_text(content + json.dumps(PAIR) + "\n")
    line = assert_one_sentence(bx("names", "compare", "--strict", str(f)))
    assert line.startswith(f"bxnode: {needle}") and line.endswith("stopped there (--strict)")


def test_names_compare_reports_bad_lines_and_carries_on(bx: Bx, tmp_path: Path) -> None:
    f = tmp_path / "pairs.jsonl"
    bad_name = {**PAIR, "b": {**PAIR["b"], "given": "TIMUR;"}}
    f.write_text("\n".join([json.dumps(PAIR), "not json", json.dumps(bad_name),
                            json.dumps(OTHER)]) + "\n")
    report = tmp_path / "report.json"
    r = bx("names", "compare", str(f), "--report", str(report))
    assert r.rc == 1
    assert [json.loads(x)["match"] for x in r.out.splitlines()] == [True, False]
    err = [ln for ln in r.err.splitlines() if not ln.startswith("{")]
    assert err == [
        "bxnode: line 2: not JSON (Expecting value) (bad_pair)",
        "bxnode: line 3: given names holds ';' (U+003B SEMICOLON) at position 6, which is "
        "not part of a name (bad_name)",
        "compared 2 pair(s); 2 bad line(s) skipped",
    ]
    assert json.loads(report.read_text()) == {
        "pairs": 2, "bad_lines": 2, "bad": [e[len("bxnode: "):] for e in err[:2]]}


def test_names_compare_reports_per_kind_figures(bx: Bx, tmp_path: Path) -> None:
    f = tmp_path / "pairs.jsonl"
    rows = [{**PAIR, "match": True, "kind": "cross_script"},
            {**OTHER, "match": False, "kind": "unrelated"},
            {**OTHER, "match": True, "kind": "typo"}]
    f.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in rows))
    report = tmp_path / "report.json"
    r = bx("names", "compare", str(f), "--report", str(report))
    assert r.rc == 0, r.err
    err = [ln for ln in r.err.splitlines() if not ln.startswith("{")]
    assert err[:2] == [
        "compared 3 pair(s)",
        "labelled 3: precision 1.0000, recall 0.5000, F1 0.6667 (tp 1, fp 0, fn 1, tn 1)"]
    assert [ln.split()[0] for ln in err[2:]] == ["cross_script/match", "typo/match",
                                                  "unrelated/non-match"]
    got = json.loads(report.read_text())
    assert (got["precision"], got["recall"], got["f1"]) == (1.0, 0.5, 0.6667)
    assert got["kinds"]["typo/match"] == {"match": True, "pairs": 1, "correct": 0,
                                          "recall": 0.0}


def test_names_compare_missing_and_binary_files(bx: Bx, tmp_path: Path) -> None:
    assert "is not a readable file" in assert_one_sentence(
        bx("names", "compare", str(tmp_path / "nope.jsonl")))
    f = tmp_path / "bin.jsonl"
    f.write_bytes(b"\xff\xfe\x00")
    assert "not UTF-8" in assert_one_sentence(bx("names", "compare", str(f)))


def _td3(number: str = "N04815160", dob: str = "840317", expiry: str = "300101") -> str:
    def cd(field: str) -> str:
        return str(check_digit(field))

    line1 = "P<UZBIUSUPOV<<TIMUR".ljust(44, "<")
    opt = "<" * 14
    body = (number + cd(number) + "UZB" + dob + cd(dob) + "M" + expiry + cd(expiry) + opt
            + cd(opt))
    composite = body[0:10] + body[13:20] + body[21:43]
    return f"{line1}\n{body}{cd(composite)}\n"


def test_query_mrz_asks_about_document_and_holder(fed: Federation, bx: Bx,
                                                  tmp_path: Path) -> None:
    f = tmp_path / "mrz.txt"
    f.write_text(_td3())
    r = bx("query", "mrz", str(f), "--json", "--node-dir", str(fed.dirs["KGZ-BS"]),
           "--peer", "KAZ-BS", "--purpose", "border_check", "--case-ref", "MRZ-1")
    assert r.rc == 0, r.err
    out = json.loads(r.out)
    # the passport is not listed; its holder (written Юсупов in KAZ's list) is
    assert [(x["index"], x["outcome"], x["reference"]) for x in out["results"]] == [
        (0, "no_hit", ""), (1, "hit", "KAZ-WNT-2026-000311")]
    entry = audit_bodies(fed.dirs["KAZ-BS"])[-1]
    assert (entry["query_kind"], entry["items"]) == ("batch", 2)


def test_query_mrz_bad_check_digit_sends_nothing(fed: Federation, bx: Bx,
                                                 tmp_path: Path) -> None:
    text = _td3()
    bad = text[:44 + 1 + 9] + ("0" if text[44 + 1 + 9] != "0" else "1") + text[44 + 1 + 10:]
    f = tmp_path / "mrz.txt"
    f.write_text(bad)
    before = len(audit_bodies(fed.dirs["KAZ-BS"]))
    line = assert_one_sentence(bx("query", "mrz", str(f), "--node-dir",
                                  str(fed.dirs["KGZ-BS"]), "--peer", "KAZ-BS", "--purpose",
                                  "border_check", "--case-ref", "MRZ-2"))
    assert "the MRZ is not valid" in line and "check digit" in line
    assert len(audit_bodies(fed.dirs["KAZ-BS"])) == before


def test_query_mrz_garbage(fed: Federation, bx: Bx, tmp_path: Path) -> None:
    f = tmp_path / "mrz.txt"
    f.write_text("hello\n")
    assert "the MRZ is not valid" in assert_one_sentence(
        bx("query", "mrz", str(f), "--node-dir", str(fed.dirs["KGZ-BS"]), "--peer", "KAZ-BS",
           "--purpose", "border_check", "--case-ref", "MRZ-3"))


# --- names as keyboards type them (issue 14) ---------------------------------------------

WL_HEADER = ("kind,owner_ref,action,expires,contact,number,issuing_state,doc_type,loss_type,"
             "family_name,given_names,patronymic,dob,nationality,sex")


def test_watchlist_import_keeps_an_uzbek_patronymic_with_backticks(node: Path, bx: Bx,
                                                                   tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(WL_HEADER + "\nperson,UZB-1,inform,2036-01-01,,,,,,Karimov,Jasur,"
                    "Oybek o`g`li,1990-04-12,UZB,M\n", encoding="utf-8")
    r = bx("watchlist", "import", str(path), "--node-dir", str(node))
    assert (r.rc, r.err, r.out) == (0, "", "imported 0 document(s) and 1 person(s)\n")
    store = store_of(node)
    try:
        assert store.person("UZB-1") == ("UZB-1", "Karimov", "Jasur", "Oybek o`g`li",
                                         "1990-04-12", "UZB", "M", "inform", "", "2036-01-01")
    finally:
        store.close()


def test_query_person_with_an_uzbek_patronymic_is_sent(fed: Federation, bx: Bx) -> None:
    before = len(audit_bodies(fed.dirs["KAZ-BS"]))
    r = bx("query", "person", "--json", "--node-dir", str(fed.dirs["KGZ-BS"]), "--peer",
           "KAZ-BS", "--purpose", "border_check", "--case-ref", "UZ-1", "--family", "Karimov",
           "--given", "Jasur", "--patronymic", "Oybek o`g`li", "--dob", "1990-04-12",
           "--nationality", "UZB", "--sex", "M")
    assert r.rc == 0, r.err
    assert [x["outcome"] for x in json.loads(r.out)["results"]] == ["no_hit"]
    assert len(audit_bodies(fed.dirs["KAZ-BS"])) == before + 1
