"""Scoring rules, one case each, with exact outcomes."""

from __future__ import annotations

import pytest

from node.core.model import PartialDate, PersonQuery, Sex
from node.matching import DEFAULT_THRESHOLD, MatchResult, score


def P(family: str, given: str, dob: str = "1985-07-15", *, nat: str = "KAZ",
      sex: str = "M", pat: str = "") -> PersonQuery:
    return PersonQuery(family_name=family, given_names=given,
                       date_of_birth=PartialDate.parse(dob), nationality=nat, sex=Sex(sex),
                       patronymic=pat)


BASE = P("Юсупов", "Қайрат")


@pytest.mark.parametrize(("family", "given", "expected"), [
    ("IUSUPOV", "KAIRAT", ("family name: cross-script match (ICAO)",
                           "given names: cross-script match (ICAO)", "dob: exact")),
    ("YUSUPOV", "QAIRAT", ("family name: cross-script match (BGN/PCGN)",
                           "given names: cross-script match (Kazakh Latin)", "dob: exact")),
    ("JUSUPOV", "KAIRAT", ("family name: cross-script match (phonetic)",
                           "given names: cross-script match (ICAO)", "dob: exact")),
    ("IOUSSOUPOV", "KAIRAT", ("family name: cross-script match (French)",
                              "given names: cross-script match (ICAO)", "dob: exact")),
    ("Jussupow", "Kajrat", ("family name: cross-script match (German)",
                            "given names: cross-script match (German)", "dob: exact")),
])
def test_yusupov_and_kairat_across_scripts(family: str, given: str,
                                           expected: tuple[str, ...]) -> None:
    assert score(BASE, P(family, given)) == MatchResult(1.0, True, expected)


@pytest.mark.parametrize("family", ["GAFUROV", "GHAFUROV", "Гафуров", "Ghafurov"])
def test_gafurov(family: str) -> None:
    r = score(P("Ғафуров", "Шерзод", nat="UZB"), P(family, "SHERZOD", nat="UZB"))
    assert (r.score, r.match) == (1.0, True)


def test_given_and_family_swapped() -> None:
    r = score(BASE, P("KAIRAT", "IUSUPOV"))
    assert (r.score, r.match) == (0.9415, True)
    assert r.explanation[0] == "names: given and family swapped"


def test_patronymic_on_one_side_only() -> None:
    r = score(P("Юсупов", "Қайрат", pat="Нурланович"), P("IUSUPOV", "KAIRAT"))
    assert (r.score, r.match) == (1.0, True)
    assert "patronymic: one side only" in r.explanation


def test_patronymic_inside_the_given_names_as_in_an_mrz() -> None:
    r = score(P("Юсупов", "Қайрат", pat="Нурланович"), P("IUSUPOV", "KAIRAT NURLANOVICH"))
    assert (r.score, r.match) == (1.0, True)
    assert "patronymic: match" in r.explanation


def test_uly_and_ovich_patronymics_are_the_same_father() -> None:
    r = score(P("Ахметов", "Қайрат", pat="Нұрланұлы"), P("AKHMETOV", "KAIRAT", pat="NURLANOVICH"))
    assert (r.score, r.match) == (1.0, True)
    assert "patronymic: match" in r.explanation


def test_kyzy_and_ovna_patronymics() -> None:
    r = score(P("Жапарова", "Айпери", nat="KGZ", sex="F", pat="Садыр кызы"),
              P("ZHAPAROVA", "AIPERI", nat="KGZ", sex="F", pat="SADYROVNA"))
    assert (r.score, r.match) == (1.0, True)


def test_derussified_family_name() -> None:
    r = score(P("Раҳмонов", "Эмомалӣ", nat="TJK"), P("RAHMON", "EMOMALI", nat="TJK"))
    assert (r.score, r.match) == (0.925, True)
    assert "family name: cross-script stem match (ending differs)" in r.explanation


def test_uly_family_name_for_ov_family_name() -> None:
    r = score(P("Ахметов", "Қайрат"), P("Ахметұлы", "Қайрат"))
    assert (r.score, r.match) == (0.925, True)


def test_ov_and_ova_are_relatives_not_the_same_person() -> None:
    r = score(P("Юсупов", "Зарина", sex="X"), P("YUSUPOVA", "ZARINA", sex="X"))
    assert (r.score, r.match) == (0.725, False)
    assert "family name: ending differs by sex" in r.explanation


def test_sex_conflict() -> None:
    r = score(P("Юсупов", "Азиз", sex="M"), P("IUSUPOV", "AZIZ", sex="F"))
    assert (r.score, r.match) == (0.6, False)
    assert r.explanation[0] == "sex: conflict"


@pytest.mark.parametrize(("dob", "expected_score", "phrase"), [
    ("1985", 0.88, "dob: year only"),
    ("1985-07", 0.94, "dob: year and month"),
    ("1985-00-00", 0.88, "dob: year only"),
    ("1985-07-00", 0.94, "dob: year and month"),
    ("1985-01-01", 0.88, "dob: 01-01 (unknown?)"),
    ("1985-07-01", 0.92, "dob: day 01 (unknown?)"),
    ("1985-15-07".replace("15-07", "07-15"), 1.0, "dob: exact"),
])
def test_partial_dates_of_birth_are_weaker_evidence(dob: str, expected_score: float,
                                                    phrase: str) -> None:
    r = score(BASE, P("IUSUPOV", "KAIRAT", dob))
    assert (r.score, r.match) == (expected_score, True)
    assert r.explanation[-1] == phrase


def test_day_month_swap_is_weaker_evidence() -> None:
    r = score(P("Юсупов", "Қайрат", "1985-03-11"), P("IUSUPOV", "KAIRAT", "1985-11-03"))
    assert (r.score, r.match, r.explanation[-1]) == (0.92, True, "dob: day/month swapped")


def test_relatives_same_surname_different_dob_are_not_a_match() -> None:
    r = score(P("Юсупов", "Қайрат", "1985-07-15"), P("IUSUPOV", "NURLAN", "1961-02-03"))
    assert (r.score, r.match) == (0.0, False)


def test_namesake_with_another_dob_is_not_a_match() -> None:
    r = score(P("Юсупов", "Қайрат", "1985-07-15"), P("IUSUPOV", "KAIRAT", "1990-07-15"))
    assert (r.score, r.match, r.explanation[-1]) == (0.5, False, "dob: year differs")
    r = score(P("Юсупов", "Қайрат", "1985-07-15"), P("IUSUPOV", "KAIRAT", "1985-09-20"))
    assert (r.score, r.match, r.explanation[-1]) == (0.5, False, "dob: conflict")


def test_twins_with_lookalike_names_are_not_a_match() -> None:
    # Both are names people are given (node/matching/_lexicon.py): two people, not a slip.
    r = score(P("Каримов", "Ҳасан", nat="UZB"), P("KARIMOV", "KHUSAN", nat="UZB"))
    assert (r.score, r.match) == (0.625, False)
    r = score(P("Иванова", "Эльвира", sex="F"), P("Иванова", "Эльмира", sex="F"))
    assert (r.score, r.match) == (0.625, False)


def test_one_letter_slips_are_a_match() -> None:
    for a, b in [("Нурлан", "Нурлам"), ("Нурлан", "Нкрлан"), ("Нурлан", "Нурлпн"),
                 ("NURLAN", "NURLN")]:
        r = score(P("Абдуллаев", a), P("Абдуллаев", b))
        assert (r.score, r.match) == (0.85, True), (a, b)
    # a doubled letter is no difference at all
    r = score(P("Абдуллаев", "Нурлан"), P("Абдулаев", "Нурлаан"))
    assert (r.score, r.match) == (1.0, True)


def test_patronymics_compare_on_the_fathers_name() -> None:
    r = score(P("Алексеева", "Нилуфар", pat="Равшановна", sex="F"),
              P("Alekseeva", "Nilufar", pat="Zafarovna", sex="F"))
    assert (r.match, "patronymic: differs" in r.explanation) == (False, True)
    r = score(P("Тураева", "Мафтуна", pat="BAKHTIER KIZI", sex="F"),
              P("TURAYEVA", "MAFTUNA", pat="BAKHTIYOROVNA", sex="F"))
    assert (r.match, "patronymic: match" in r.explanation) == (True, True)


def test_parent_and_child_are_not_a_match() -> None:
    r = score(P("Юсупов", "Нурлан", "1960-02-03"),
              P("IUSUPOV", "KAIRAT", "1985-07-15", pat="NURLANOVICH"))
    assert (r.score, r.match) == (0.0, False)


def test_compound_given_names() -> None:
    r = score(P("Юсупов", "Абдулазиз", nat="UZB"), P("YUSUPOV", "ABDUL AZIZ", nat="UZB"))
    assert (r.score, r.match) == (1.0, True)
    r = score(P("Юсупов", "Абдулазиз", nat="UZB"), P("YUSUPOV", "Abdul-Aziz", nat="UZB"))
    assert (r.score, r.match) == (1.0, True)


def test_nationality_differs_is_a_small_penalty() -> None:
    r = score(BASE, P("IUSUPOV", "KAIRAT", nat="RUS"))
    assert (r.score, r.match) == (0.95, True)
    assert r.explanation[-1] == "nationality: differs"


def test_typo_transposition_still_matches_with_exact_dob() -> None:
    r = score(P("Ёров", "Далер", nat="TJK"), P("YOROV", "DAELR", nat="TJK"))
    assert (r.score, r.match) == (0.85, True)


def test_score_is_symmetric() -> None:
    pairs = [(BASE, P("KAIRAT", "IUSUPOV")), (P("Ахметов", "Қайрат"), P("Ахметұлы", "Қайрат")),
             (BASE, P("IUSUPOV", "KAIRAT", "1985"))]
    for a, b in pairs:
        assert score(a, b).score == score(b, a).score


def test_default_threshold() -> None:
    assert DEFAULT_THRESHOLD == 0.73
