"""Transliteration tables, letter by letter, and the keys names are indexed under."""

from __future__ import annotations

import pytest

from node.core.errors import InvalidInput
from node.matching import _tables as t
from node.matching import fold_latin, name_keys, transliterate
from node.matching._phonetic import skeletons

# ICAO Doc 9303 Part 3, section 6, Table B (as in shared/REFERENCE.md).
ICAO_RUSSIAN = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    ["A", "B", "V", "G", "D", "E", "E", "ZH", "Z", "I", "I", "K", "L", "M", "N", "O", "P",
     "R", "S", "T", "U", "F", "KH", "TS", "CH", "SH", "SHCH", "IE", "Y", "", "E", "IU", "IA"],
    strict=True,
))
# Central Asian letters: Table B for Ў and І, national passport practice otherwise.
ICAO_CENTRAL_ASIAN = {"ә": "A", "ғ": "G", "қ": "K", "ң": "N", "ө": "O", "ұ": "U", "ү": "U",
                      "һ": "H", "і": "I", "ӣ": "I", "ӯ": "U", "ҳ": "H", "ҷ": "J", "ў": "U",
                      "җ": "J"}

# BGN/PCGN: Russian 1947 (letter alone = word-initial, so Е is YE), Kazakh 1979,
# Kyrgyz 1979, Tajik 1994, Uzbek 1979; diacritics folded.
BGN_RUSSIAN = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
    ["A", "B", "V", "G", "D", "YE", "YO", "ZH", "Z", "I", "Y", "K", "L", "M", "N", "O", "P",
     "R", "S", "T", "U", "F", "KH", "TS", "CH", "SH", "SHCH", "", "Y", "", "E", "YU", "YA"],
    strict=True,
))
BGN_KAZAKH = {"ә": "A", "ғ": "GH", "қ": "Q", "ң": "NG", "ө": "O", "ұ": "U", "ү": "U",
              "һ": "H", "і": "I"}
BGN_KYRGYZ = {"ң": "NG", "ө": "O", "ү": "U"}
BGN_TAJIK = {"ғ": "GH", "ӣ": "I", "қ": "Q", "ӯ": "U", "ҳ": "H", "ҷ": "J"}
BGN_UZBEK = {"ў": "U", "қ": "Q", "ғ": "GH", "ҳ": "H"}

# Kazakh Latin alphabet of 2021, for every letter of the Kazakh Cyrillic alphabet.
KAZAKH_2021 = dict(zip(
    "аәбвгғдеёжзийкқлмнңоөпрстуұүфхһцчшщъыіьэюя",
    ["a", "ä", "b", "v", "g", "ğ", "d", "e", "io", "j", "z", "i", "i", "k", "q", "l", "m",
     "n", "ñ", "o", "ö", "p", "r", "s", "t", "u", "ū", "ü", "f", "h", "h", "ts", "ch", "ş",
     "şş", "", "y", "ı", "", "e", "iu", "ia"],
    strict=True,
))

# Uzbek Latin (1995) for every letter of Uzbek Cyrillic (letter alone: Е is word-initial).
UZBEK_LATIN = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшъьэюяўқғҳ",
    ["a", "b", "v", "g", "d", "ye", "yo", "j", "z", "i", "y", "k", "l", "m", "n", "o", "p",
     "r", "s", "t", "u", "f", "x", "ts", "ch", "sh", "\u02bc", "", "e", "yu", "ya",
     "o\u02bb", "q", "g\u02bb", "h"],
    strict=True,
))

# Turkmen Latin (1999) for every letter of Turkmen Cyrillic.
TURKMEN_LATIN = dict(zip(
    "абвгдеёжҗзийклмнңоөпрстуүфхцчшщъыьэәюя",
    ["a", "b", "w", "g", "d", "ýe", "ýo", "ž", "j", "z", "i", "ý", "k", "l", "m", "n", "ň",
     "o", "ö", "p", "r", "s", "t", "u", "ü", "f", "h", "ts", "ç", "ş", "şç", "", "y", "",
     "e", "ä", "ýu", "ýa"],
    strict=True,
))

# Every Turkmen Latin letter folded to the ASCII used in MRZs.
TURKMEN_FOLD = dict(zip(
    t.TURKMEN_LATIN_LETTERS,
    ["A", "B", "CH", "D", "E", "A", "F", "G", "H", "I", "J", "ZH", "K", "L", "M", "N", "N",
     "O", "O", "P", "R", "S", "SH", "T", "U", "U", "W", "Y", "Y", "Z"],
    strict=True,
))


@pytest.mark.parametrize(("letter", "expected"), sorted(ICAO_RUSSIAN.items()))
def test_icao_russian_letters(letter: str, expected: str) -> None:
    assert transliterate(letter, "ICAO") == expected
    assert transliterate(letter.upper(), "ICAO") == expected


@pytest.mark.parametrize(("letter", "expected"), sorted(ICAO_CENTRAL_ASIAN.items()))
def test_icao_central_asian_letters(letter: str, expected: str) -> None:
    assert transliterate(letter, "ICAO") == expected


@pytest.mark.parametrize(("letter", "expected"), sorted(
    {**BGN_RUSSIAN, **BGN_KAZAKH, **BGN_KYRGYZ, **BGN_TAJIK, **BGN_UZBEK}.items()))
def test_bgn_pcgn_letters(letter: str, expected: str) -> None:
    assert transliterate(letter, "BGN/PCGN") == expected


@pytest.mark.parametrize(("letter", "expected"), sorted(KAZAKH_2021.items()))
def test_kazakh_latin_letters(letter: str, expected: str) -> None:
    assert transliterate(letter, "Kazakh Latin") == expected


@pytest.mark.parametrize(("letter", "expected"), sorted(UZBEK_LATIN.items()))
def test_uzbek_latin_letters(letter: str, expected: str) -> None:
    assert transliterate(letter, "Uzbek Latin") == expected


@pytest.mark.parametrize(("letter", "expected"), sorted(TURKMEN_LATIN.items()))
def test_turkmen_latin_letters(letter: str, expected: str) -> None:
    assert transliterate(letter, "Turkmen Latin") == expected


@pytest.mark.parametrize(("letter", "expected"), sorted(TURKMEN_FOLD.items()))
def test_turkmen_latin_letters_fold_to_ascii(letter: str, expected: str) -> None:
    assert fold_latin(letter) == expected
    assert fold_latin(letter.upper()) == expected


@pytest.mark.parametrize("system", sorted(t.SYSTEMS))
@pytest.mark.parametrize("alphabet", [t.RUSSIAN_LETTERS, t.KAZAKH_LETTERS, t.KYRGYZ_LETTERS,
                                      t.TAJIK_LETTERS, t.UZBEK_CYRILLIC_LETTERS,
                                      t.TURKMEN_CYRILLIC_LETTERS])
def test_every_system_covers_every_letter(system: str, alphabet: str) -> None:
    for letter in alphabet:
        out = fold_latin(transliterate(letter, system))
        assert out == "" or (out.isascii() and out.isalpha()), (system, letter, out)
        assert letter not in transliterate(letter, system)


def test_context_rules() -> None:
    assert transliterate("Ерлан", "BGN/PCGN") == "YERLAN"
    assert transliterate("Бектаев", "BGN/PCGN") == "BEKTAYEV"
    assert transliterate("Бектаев", "ICAO") == "BEKTAEV"
    assert transliterate("Юсупов", "French") == "IOUSSOUPOV"
    assert transliterate("Мусаев", "French") == "MOUSSAEV"
    assert transliterate("Георгий", "French") == "GUEORGUII"
    assert transliterate("Юсупов", "German") == "JUSSUPOW"
    assert transliterate("Ерлан", "German") == "JERLAN"


def test_name_keys_for_cyrillic_cover_every_system() -> None:
    # ICAO, BGN/PCGN and English, French, German, Turkmen Latin (ÝUSUPOW folded).
    assert name_keys("Юсупов") == frozenset(
        {"IUSUPOV", "YUSUPOV", "IOUSSOUPOV", "JUSSUPOW", "YUSUPOW"})
    assert name_keys("Қайрат") == frozenset({"KAIRAT", "KAJRAT", "KAYRAT", "QAIRAT", "QAYRAT"})
    assert name_keys("Ғафуров") == frozenset({"GAFUROV", "GAFUROW", "GHAFOUROV", "GHAFUROV"})


def test_name_keys_for_latin_is_the_ascii_fold() -> None:
    assert name_keys("Berdimuhamedow") == frozenset({"BERDIMUHAMEDOW"})
    assert name_keys("Çaryýew") == frozenset({"CHARYYEW"})
    assert name_keys("Oʻtkir") == frozenset({"OTKIR"})
    assert name_keys("") == frozenset()


def test_unknown_system_and_long_text_are_rejected() -> None:
    with pytest.raises(InvalidInput) as e:
        transliterate("Юсупов", "Klingon")
    assert e.value.reason == "bad_system"
    with pytest.raises(InvalidInput) as e:
        name_keys("а" * 257)
    assert e.value.reason == "bad_name"


@pytest.mark.parametrize("spelling", ["Юсупов", "IUSUPOV", "YUSUPOV", "JUSUPOV", "IOUSSOUPOV",
                                      "JUSSUPOW", "Yusupov"])
def test_yusupov_spellings_share_a_phonetic_form(spelling: str) -> None:
    assert "iusupov" in skeletons(spelling)


@pytest.mark.parametrize(("a", "b"), [
    ("Қайрат", "KAIRAT"), ("Қайрат", "QAIRAT"), ("Ғафуров", "GAFUROV"),
    ("Ғафуров", "GHAFUROV"), ("Бердымухамедов", "Berdimuhamedow"), ("Тўраев", "Toʻrayev"),
    ("Жуков", "Schukow"), ("Чарыев", "Çaryýew"), ("Чыңгыз", "Chynggyz"),
    ("Дмитрий", "DMITRIY"), ("Мариям", "MARIIAM"), ("Бектаев", "BEKTAYEV"),
])
def test_cross_script_phonetic_forms_meet(a: str, b: str) -> None:
    assert set(skeletons(a)) & set(skeletons(b))
