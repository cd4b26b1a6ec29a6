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
    assert compare_stream(lines, out) == 2
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
    lines = [json.dumps({"a": A, "b": B}), "", bad]
    with pytest.raises(InvalidInput) as e:
        compare_stream(lines, io.StringIO())
    assert str(e.value).startswith("line 3: ")
    assert e.value.reason == reason


def _f1(name: str) -> tuple[float, int]:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    out = io.StringIO()
    n = compare_stream(lines, out)
    labels = [json.loads(line)["match"] for line in lines]
    got = [json.loads(line)["match"] for line in out.getvalue().splitlines()]
    tp = sum(1 for g, y in zip(got, labels, strict=True) if g and y)
    fp = sum(1 for g, y in zip(got, labels, strict=True) if g and not y)
    fn = sum(1 for g, y in zip(got, labels, strict=True) if not g and y)
    return 2 * tp / (2 * tp + fp + fn), n


@pytest.mark.parametrize("name", ["dev.jsonl", "heldout.jsonl"])
def test_labelled_set_f1_at_default_threshold(name: str) -> None:
    f1, n = _f1(name)
    assert n >= 1000
    assert f1 >= 0.97, f"F1 {f1:.4f} on {name}"


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
