"""PersonIndex: retrieval by blocking keys, then scoring; bounds."""

from __future__ import annotations

import pytest

from node.core.errors import InvalidInput
from node.core.model import PartialDate, PersonQuery, Sex
from node.matching import Candidate, PersonIndex
from node.matching._features import person_feat
from node.matching.index import MAX_CANDIDATES_LIMIT, MAX_REF_LEN


def P(family: str, given: str, dob: str = "1985-07-15", *, nat: str = "KAZ",
      sex: str = "M", pat: str = "") -> PersonQuery:
    return PersonQuery(family_name=family, given_names=given,
                       date_of_birth=PartialDate.parse(dob), nationality=nat, sex=Sex(sex),
                       patronymic=pat)


@pytest.fixture
def index() -> PersonIndex:
    idx = PersonIndex()
    added = idx.add_many([
        ("w1", P("Юсупов", "Қайрат", pat="Нурланович")),
        ("w2", P("Юсупов", "Нурлан", "1960-02-03")),
        ("w3", P("Ғафуров", "Шерзод", "1979-04-01", nat="UZB")),
        ("w4", P("Юсупова", "Айгүл", "1987-01-20", sex="F")),
        ("w5", P("Жапаров", "Садыр", "1968", nat="KGZ")),
    ])
    assert added == 5
    return idx


@pytest.mark.parametrize("query", [
    P("IUSUPOV", "KAIRAT"), P("YUSUPOV", "QAIRAT", "1985"), P("KAIRAT", "IOUSSOUPOV"),
    P("Jussupow", "Kajrat", "1985-15-07".replace("15-07", "07-15")),
    P("IUSUPOV", "KAIRAT NURLANOVICH"),
])
def test_finds_the_person_across_scripts(index: PersonIndex, query: PersonQuery) -> None:
    found = index.search(query)
    assert [c.ref for c in found] == ["w1"]


def test_candidate_carries_score_and_explanation(index: PersonIndex) -> None:
    [c] = index.search(P("IUSUPOV", "KAIRAT"))
    assert c == Candidate(ref="w1", score=1.0, explanation=(
        "family name: cross-script match (ICAO)", "given names: cross-script match (ICAO)",
        "patronymic: one side only", "dob: exact"))


@pytest.mark.parametrize("query, threshold", [
    (P("IUSUPOV", "KAIRAT"), 0.8), (P("IUSUPOV", "NURLAN", "1961-02-03"), 0.4),
    (P("YUSUPOVA", "AIGUL", "1987"), 0.3), (P("ZHAPAROV", "SADYR", "1968"), 0.0)])
def test_without_explanations_the_same_candidates_in_the_same_order(
        index: PersonIndex, query: PersonQuery, threshold: float) -> None:
    """A lookup (which answers only the reference) asks for no explanation: the same
    candidates, scores and order as with them, each explanation left empty."""
    index.add("w6", P("YUSUPOV", "KAIRAT"))
    full = index.search(query, threshold=threshold, max_candidates=6)
    bare = index.search(query, threshold=threshold, max_candidates=6, explain_why=False)
    assert full and all(c.explanation for c in full)
    assert bare == [Candidate(c.ref, c.score, ()) for c in full]


def test_relatives_are_not_returned_at_the_default_threshold(index: PersonIndex) -> None:
    assert index.search(P("IUSUPOV", "NURLAN", "1961-02-03")) == []
    assert [c.ref for c in index.search(P("IUSUPOV", "NURLAN", "1960"))] == ["w2"]


def test_lower_threshold_returns_weaker_candidates(index: PersonIndex) -> None:
    query = P("IUSUPOV", "NURLAN", "1961-02-03")
    assert index.search(query) == []
    found = index.search(query, threshold=0.4)
    assert [(c.ref, c.score) for c in found] == [("w2", 0.5)]
    assert found[0].explanation[-1] == "dob: year differs"


def test_max_candidates_and_ties_broken_by_ref(index: PersonIndex) -> None:
    index.add("w6", P("YUSUPOV", "KAIRAT"))
    assert [c.ref for c in index.search(P("IUSUPOV", "KAIRAT"), max_candidates=1)] == ["w1"]
    found = index.search(P("IUSUPOV", "KAIRAT"), max_candidates=2)
    assert [(c.ref, c.score) for c in found] == [("w1", 1.0), ("w6", 1.0)]


def test_remove_and_replace(index: PersonIndex) -> None:
    index.remove("w1")
    assert "w1" not in index and len(index) == 4
    assert index.search(P("IUSUPOV", "KAIRAT")) == []
    index.add("w3", P("IUSUPOV", "KAIRAT"))  # replaces Gafurov
    assert len(index) == 4
    assert [c.ref for c in index.search(P("IUSUPOV", "KAIRAT"))] == ["w3"]
    assert index.search(P("GAFUROV", "SHERZOD", "1979-04-01", nat="UZB")) == []
    with pytest.raises(KeyError):
        index.remove("nope")


def test_partial_dob_in_the_watchlist(index: PersonIndex) -> None:
    assert [c.ref for c in index.search(P("ZHAPAROV", "SADYR", "1968-12-06", nat="KGZ"))] == [
        "w5"]


def test_misspelt_field_found_through_year_keys(index: PersonIndex) -> None:
    assert [c.ref for c in index.search(P("GAFUROV", "SHERZOOD", "1979-04-01", nat="UZB"))
            ] == ["w3"]
    assert [c.ref for c in index.search(P("GHAFOUROV", "SHERZOD", "1979-04-01", nat="UZB"))
            ] == ["w3"]


def test_bounds() -> None:
    idx = PersonIndex()
    with pytest.raises(InvalidInput) as e:
        idx.add("", P("A", "B"))
    assert e.value.reason == "bad_identifier"
    with pytest.raises(InvalidInput):
        idx.add("r" * (MAX_REF_LEN + 1), P("Ab", "B"))
    idx.add("r" * MAX_REF_LEN, P("Ab", "B"))
    for kwargs in ({"threshold": -0.1}, {"threshold": 1.01}, {"max_candidates": 0},
                   {"max_candidates": MAX_CANDIDATES_LIMIT + 1}):
        with pytest.raises(InvalidInput):
            idx.search(P("Ab", "B"), **kwargs)
    assert len(idx.search(P("Ab", "B"), max_candidates=MAX_CANDIDATES_LIMIT)) == 1


@pytest.mark.parametrize("query", [
    P("Юсупов", "Айрат"),  # first consonant dropped (Қайрат)
    P("IUSUPOV", "VAIRAT"),  # substituted
    P("IUSUPOV", "KLAIRAT"),  # added
    P("Юсупов", "Ақйрат"),  # first two consonants swapped
    P("USUPOV", "KAIRAT"),  # in the family name (vowel)
    P("ISUPOV", "KAIRAT"),
])
def test_finds_the_person_with_a_slip_in_the_first_letters(index: PersonIndex,
                                                           query: PersonQuery) -> None:
    assert [c.ref for c in index.search(query)] == ["w1"]


def test_slip_keys_need_the_same_year(index: PersonIndex) -> None:
    from node.matching.index import _keys

    q = _keys(person_feat(P("IUSUPOV", "VAIRAT", "1986-07-15")), query=True)
    w = _keys(person_feat(P("Юсупов", "Қайрат")))
    assert not {k for k in q & w if k.startswith("s")}


def test_remove_from_shared_and_single_buckets() -> None:
    idx = PersonIndex()
    idx.add("a", P("Юсупов", "Қайрат"))
    idx.add("b", P("Юсупов", "Қайрат"))
    idx.remove("a")
    assert [c.ref for c in idx.search(P("IUSUPOV", "KAIRAT"))] == ["b"]
    assert [c.ref for c in idx.search(P("IUSUPOV", "VAIRAT"))] == ["b"]
    idx.remove("b")
    assert (len(idx), idx._blocks) == (0, {})
