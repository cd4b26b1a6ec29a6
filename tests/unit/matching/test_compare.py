"""compare_stream: JSON Lines in, JSON Lines out; the labelled sets as a quality gate."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from node.core.errors import InvalidInput
from node.core.model import PartialDate, Sex
from node.matching import compare_stream, parse_person
from node.matching.compare import MAX_LINE_LEN

DATA = Path(__file__).resolve().parents[2] / "data" / "names"

A = {"given": "Қайрат", "family": "Юсупов", "patronymic": None, "dob": "1985-07-15",
     "nationality": "KAZ", "sex": "M"}
B = {"given": "KAIRAT", "family": "IUSUPOV", "patronymic": "NURLANOVICH", "dob": "1985",
     "nationality": "KAZ", "sex": "M"}


def test_parse_person() -> None:
    p = parse_person(B)
    assert (p.family_name, p.given_names, p.patronymic, p.nationality, p.sex) == (
        "IUSUPOV", "KAIRAT", "NURLANOVICH", "KAZ", Sex.MALE)
    assert p.date_of_birth == PartialDate(1985)
    assert parse_person({**A, "dob": "1985-00-00"}).date_of_birth == PartialDate(1985)
    assert parse_person({**A, "dob": "1985-07-00"}).date_of_birth == PartialDate(1985, 7)


def test_compare_stream_writes_one_line_per_pair_in_order() -> None:
    lines = [json.dumps({"a": A, "b": B}), "", json.dumps({"a": A, "b": {**B, "dob": "1990"}})]
    out = io.StringIO()
    assert compare_stream(lines, out).pairs == 2
    assert out.getvalue() == ('{"score": 0.88, "match": true}\n'
                              '{"score": 0.5, "match": false}\n')


@pytest.mark.parametrize(("bad", "reason"), [
    ("not json", "bad_pair"),
    (json.dumps({"a": A}), "bad_pair"),
    (json.dumps([A, B]), "bad_pair"),
    (json.dumps({"a": A, "b": {**B, "sex": "male"}}), "bad_person"),
    (json.dumps({"a": A, "b": {**B, "dob": "85-07-15"}}), "bad_date"),
    (json.dumps({"a": A, "b": {**B, "nationality": "Kazakhstan"}}), "bad_country"),
    (json.dumps({"a": A, "b": {**B, "family": ""}}), "bad_name"),
    (json.dumps({"a": A, "b": {**B, "family": 5}}), "bad_person"),
    (json.dumps({"a": A, "b": "x"}), "bad_person"),
    (json.dumps({"a": A, "b": B}) + " " * MAX_LINE_LEN, "bad_pair"),
])
def test_bad_line_names_its_1_based_number(bad: str, reason: str) -> None:
    lines = [json.dumps({"a": A, "b": B}), "", bad, json.dumps({"a": A, "b": A})]
    with pytest.raises(InvalidInput) as e:
        compare_stream(lines, io.StringIO(), strict=True)
    assert str(e.value).startswith("line 3: ")
    assert e.value.reason == reason
    # without strict: reported, and the stream carries on
    out = io.StringIO()
    report = compare_stream(lines, out)
    assert (report.pairs, report.bad_count) == (2, 1)
    [b] = report.bad_lines
    assert (b.line, b.reason) == (3, reason)
    assert str(b).startswith("line 3: ") and str(b).endswith(f" ({reason})")
    assert len(out.getvalue().splitlines()) == 2


def test_a_backtick_patronymic_line_is_scored() -> None:
    uz = {"given": "Jasur", "family": "Karimov", "patronymic": "Oybek o`g`li",
          "dob": "1990-04-12", "nationality": "UZB", "sex": "M"}
    cyr = {**uz, "given": "Жасур", "family": "Каримов", "patronymic": "Ойбек ўғли"}
    out = io.StringIO()
    report = compare_stream([json.dumps({"a": uz, "b": cyr}, ensure_ascii=False)], out)
    assert (report.pairs, report.bad_count) == (1, 0)
    assert json.loads(out.getvalue())["match"] is True


def test_report_tallies_labels_per_kind() -> None:
    same = {"a": A, "b": B, "match": True, "kind": "cross_script"}
    other = {"a": A, "b": {**B, "given": "RUSTAM", "dob": "1961"}, "match": False,
             "kind": "unrelated"}
    missed = {"a": A, "b": {**B, "dob": "1990"}, "match": True, "kind": "typo"}
    unlabelled = {"a": A, "b": B}
    lines = [json.dumps(x) for x in (same, other, missed, unlabelled, same)]
    report = compare_stream(lines, io.StringIO())
    assert (report.pairs, report.tp, report.fp, report.fn, report.tn) == (5, 2, 0, 1, 1)
    assert (round(report.precision, 4), round(report.recall, 4), round(report.f1, 4)) == (
        1.0, 0.6667, 0.8)
    assert report.as_dict()["kinds"] == {
        "cross_script/match": {"match": True, "pairs": 2, "correct": 2, "recall": 1.0},
        "typo/match": {"match": True, "pairs": 1, "correct": 0, "recall": 0.0},
        "unrelated/non-match": {"match": False, "pairs": 1, "correct": 1, "rejected": 1.0},
    }


def test_report_keeps_a_bounded_number_of_bad_lines() -> None:
    from node.matching.compare import MAX_BAD_LINES_KEPT

    report = compare_stream(["x"] * (MAX_BAD_LINES_KEPT + 1), io.StringIO())
    assert (report.bad_count, len(report.bad_lines)) == (MAX_BAD_LINES_KEPT + 1,
                                                          MAX_BAD_LINES_KEPT)


def _f1(name: str) -> tuple[float, int]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    out = io.StringIO()
    n = compare_stream(lines, out, strict=True).pairs
    labels = [json.loads(line)["match"] for line in lines]
    got = [json.loads(line)["match"] for line in out.getvalue().splitlines()]
    tp = sum(1 for g, y in zip(got, labels, strict=True) if g and y)
    fp = sum(1 for g, y in zip(got, labels, strict=True) if g and not y)
    fn = sum(1 for g, y in zip(got, labels, strict=True) if not g and y)
    return 2 * tp / (2 * tp + fp + fn), n


@pytest.mark.parametrize("name", ["dev.jsonl", "heldout.jsonl", "independent.jsonl"])
def test_labelled_set_f1_at_default_threshold(name: str) -> None:
    f1, n = _f1(name)
    assert n >= 1000
    assert f1 >= 0.99, f"F1 {f1:.4f} on {name}"


@pytest.mark.parametrize("name", ["dev.jsonl", "heldout.jsonl", "independent.jsonl"])
def test_labelled_set_precision_and_hard_negatives(name: str) -> None:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    report = compare_stream(lines, io.StringIO(), strict=True)
    assert report.precision >= 0.995, f"precision {report.precision:.4f} on {name}"
    # the issue-14 kinds of the independent set: recall per kind
    if name == "independent.jsonl":
        recall = {k: v.correct / v.pairs for k, v in report.kinds.items() if v.label}
        for kind in ("uzbek_apostrophe/match", "yo_ye/match", "soft_signs_yi/match",
                     "mrz_truncated_td1/match", "mrz_truncated_td3/match",
                     "iuliia_scheme/match", "real_spelling/match"):
            assert recall[kind] == 1.0, kind
        assert recall["typo/match"] >= 0.95 and recall["typo_first_letters/match"] >= 0.9


def test_independent_set_has_the_documented_shape() -> None:
    rows = [json.loads(line) for line in
            (DATA / "independent.jsonl").read_text(encoding="utf-8").splitlines()]
    assert (len(rows), sum(r["match"] for r in rows)) == (1321, 668)
    for r in rows:
        assert set(r) == {"a", "b", "match", "kind"}
        assert set(r["a"]) == set(r["b"]) == {"given", "family", "patronymic", "dob",
                                              "nationality", "sex"}


def test_labelled_sets_have_the_documented_shape() -> None:
    for name in ("dev.jsonl", "heldout.jsonl"):
        rows = [json.loads(line) for line in
                (DATA / name).read_text(encoding="utf-8").splitlines()]
        assert len(rows) == 1500
        assert sum(r["match"] for r in rows) == 750
        for r in rows:
            assert set(r) == {"a", "b", "match", "kind"}
            assert set(r["a"]) == set(r["b"]) == {"given", "family", "patronymic", "dob",
                                                  "nationality", "sex"}
