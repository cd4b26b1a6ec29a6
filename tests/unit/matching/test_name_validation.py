"""Name validation (issue 14): every real name is accepted, only non-names are refused.

The model keeps names as written (NFC, stripped); a refusal names the field,
the character, its code point and its 1-based position.
"""

from __future__ import annotations

import pytest

from node.core.errors import InvalidInput
from node.core.model import (
    LookupRequest,
    PartialDate,
    PersonQuery,
    QueryKind,
    RequestHeader,
    Sex,
    validate_name,
)
from node.wire.convert import decode_request, encode_request

#: "Oybek o`g`li" (Ойбек ўғли) as keyboards type it: ʻ U+02BB, ' U+0027, ‘ U+2018,
#: ’ U+2019, ` U+0060, and ʼ U+02BC (the tutuq belgisi, used for oʻ by mistake).
UZBEK_PATRONYMICS = ["Oybek o\u02bbg\u02bbli", "Oybek o'g'li", "Oybek o\u2018g\u2018li",
                     "Oybek o\u2019g\u2019li", "Oybek o`g`li", "Oybek o\u02bcg\u02bcli"]


@pytest.mark.parametrize("name", [
    *UZBEK_PATRONYMICS,
    "Ma\u02bcruf",  # tutuq belgisi
    "Ob\u201dyedkov", "Ob\u2033yedkov", "Ob\"edkov", "Ob''edkov", "Ob\u02baedkov",  # Ъ
    "O'Neil-Smith", "Jean-Luc", "St. John", "Ll\u00b7ull",  # hyphen, dot, Catalan middle dot
    "Nazarbayev\u2013Kulibayeva",  # en dash
    "M\u00fcller", "Jose\u0301",  # precomposed and combining acute (NFC makes it é)
    "\u674e\u5c0f\u9f8d", "\u0645\u062d\u0645\u062f", "\u10d2\u10d8\u10dd\u10e0\u10d2\u10d8",
    "\u0646\u06cc\u200c\u0644\u0648\u0641\u0631",  # Persian, with ZWNJ
    "\u30b8\u30e7\u30f3\u30fb\u30b9\u30df\u30b9",  # katakana with the middle dot ・
    "IUSUPOV<<TIMUR", "TIMUR<<<<",  # ICAO 9303 fillers, as copied from an MRZ
    "Anna\u00a0Maria",  # no-break space
])
def test_real_names_are_accepted_as_written(name: str) -> None:
    import unicodedata

    assert validate_name(name, "patronymic", required=False) == unicodedata.normalize(
        "NFC", name)


@pytest.mark.parametrize(("name", "message"), [
    ("Ivanov7", "family name holds a digit ('7', U+0037) at position 7; a name has no digits"),
    ("\u0418\u0432\u0430\u043d\u043e\u0432\u0662",
     "family name holds a digit ('\u0662', U+0662) at position 7; a name has no digits"),
    ("a\tb", "family name holds a control character (U+0009) at position 2"),
    ("a\nb", "family name holds a control character (U+000A) at position 2"),
    ("a\u2028b", "family name holds a control character (U+2028) at position 2"),
    ("Ivanov\u200b", "family name holds an invisible formatting character (U+200B) at "
                     "position 7"),
    ("A\ue000", "family name holds an unassigned or private-use character (U+E000) at "
                "position 2"),
    ("Smith;", "family name holds ';' (U+003B SEMICOLON) at position 6, which is not part "
               "of a name"),
    ("x_y", "family name holds '_' (U+005F LOW LINE) at position 2, which is not part of a "
            "name"),
    ("\U0001f600", "family name holds '\U0001f600' (U+1F600 GRINNING FACE) at position 1, "
                   "which is not part of a name"),
    ("\u042f" * 101, "family name is longer than 100"),
    ("  ", "family name is required"),
])
def test_non_names_are_refused_with_the_reason(name: str, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        validate_name(name, "family name", required=True)
    assert (e.value.message, e.value.reason) == (message, "bad_name")


def test_length_bound_is_checked_after_normalisation() -> None:
    # 100 characters once NFC composes "e" + combining acute: accepted.
    assert len(validate_name("e\u0301" * 100, "given names", required=False)) == 100
    with pytest.raises(InvalidInput):
        validate_name("e\u0301" * 101, "given names", required=False)


def _person(patronymic: str) -> PersonQuery:
    return PersonQuery(family_name="Karimov", given_names="Jasur", patronymic=patronymic,
                       date_of_birth=PartialDate(1990, 4, 12), nationality="UZB", sex=Sex.MALE)


@pytest.mark.parametrize("patronymic", UZBEK_PATRONYMICS)
def test_a_peer_person_query_with_an_uzbek_patronymic_decodes(patronymic: str) -> None:
    header = RequestHeader(requester="KAZ-BS", key_id="k1", operator="op-1",
                           purpose="border_check", legal_basis="agreement", case_ref="C-1",
                           issued_at_ms=1_700_000_000_000, nonce=b"n" * 16)
    req = LookupRequest(header=header, kind=QueryKind.PERSON, items=(_person(patronymic),))
    decoded = decode_request(encode_request(req), max_items=10)
    [item] = decoded.items
    assert isinstance(item, PersonQuery)
    assert item.patronymic == patronymic
    assert item == req.items[0]
