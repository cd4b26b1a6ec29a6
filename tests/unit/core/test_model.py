"""Every constructor validates: an instance that exists is within every bound."""

from __future__ import annotations

import dataclasses

import pytest

from node.core import limits
from node.core.errors import InvalidInput
from node.core.model import (
    DocumentQuery,
    LookupRequest,
    PartialDate,
    PersonQuery,
    QueryKind,
    RequestHeader,
    Sex,
    validate_doc_number,
    validate_doc_type,
    validate_id,
    validate_state,
)


def _reason(fn: object, *args: object, **kw: object) -> str:
    with pytest.raises(InvalidInput) as err:
        fn(*args, **kw)  # type: ignore[operator]
    return err.value.reason


# --- document numbers, states, types, ids ---------------------------------------------------


def test_doc_number_length_bounds_exactly() -> None:
    assert limits.MAX_DOC_NUMBER_LEN == 20
    assert validate_doc_number("A") == "A"
    assert validate_doc_number("A" * 20) == "A" * 20
    assert _reason(validate_doc_number, "A" * 21) == "bad_document_number"
    assert _reason(validate_doc_number, "") == "bad_document_number"


@pytest.mark.parametrize("number", ["ab123", "AB-123", "AB 123", "AB123\n", "АВ123", "Ａ1", "AB_1"])
def test_doc_number_charset(number: str) -> None:
    assert _reason(validate_doc_number, number) == "bad_document_number"


def test_doc_number_digits_and_letters() -> None:
    assert validate_doc_number("N0481516") == "N0481516"
    assert validate_doc_number("0123456789") == "0123456789"


@pytest.mark.parametrize("code", ["KAZ", "KGZ", "UZB", "TJK", "D", "GBD", "UNO", "RKS",
                                  "EUE", "DEU"])
def test_icao_codes_accepted(code: str) -> None:
    assert validate_state(code) == code


@pytest.mark.parametrize("code", ["ZZZ", "kaz", "KA", "KAZA", "", "DE", "D ", " KAZ", "XYZ"])
def test_icao_codes_rejected(code: str) -> None:
    assert _reason(validate_state, code) == "bad_country"


def test_validate_state_names_the_field() -> None:
    with pytest.raises(InvalidInput) as err:
        validate_state("ZZZ", "nationality")
    assert str(err.value) == "nationality must be an ICAO 9303 three-letter code"


@pytest.mark.parametrize("t", ["P", "I", "A", "C", "V", "PD", "PO", "ID", "V1"])
def test_doc_types_accepted(t: str) -> None:
    assert validate_doc_type(t) == t


@pytest.mark.parametrize("t", ["", "X", "p", "PPP", "P-", "IDX", "1"])
def test_doc_types_rejected(t: str) -> None:
    assert _reason(validate_doc_type, t) == "bad_document_type"


def test_validate_id_bounds() -> None:
    assert validate_id("a" * 64, "x") == "a" * 64
    assert validate_id("KAZ-BS.1_a:b@c", "x") == "KAZ-BS.1_a:b@c"
    for bad in ("", "a" * 65, "-lead", ".lead", "has space", "slash/", "кир"):
        assert _reason(validate_id, bad, "x") == "bad_identifier", bad


def test_document_query_validates_every_field() -> None:
    assert DocumentQuery("N1", "KAZ").doc_type == "P"
    assert _reason(DocumentQuery, "n1", "KAZ") == "bad_document_number"
    assert _reason(DocumentQuery, "N1", "ZZZ") == "bad_country"
    assert _reason(DocumentQuery, "N1", "KAZ", "Q") == "bad_document_type"


_NUMBERS = ["N1", "A" * 20, "A" * 21, "", "ab123", "AB-123", "AB123\n", "АВ123", "Ａ1", "0"]
_STATES = ["KAZ", "D", "GBD", "UNO", "RKS", "EUE", "ZZZ", "kaz", "KA", "", " KAZ", "XXA", "XXX"]
_TYPES = ["P", "I", "PD", "V1", "", "X", "p", "PPP", "1"]


def _outcome(fn: object, *args: object) -> str:
    try:
        fn(*args)  # type: ignore[operator]
    except InvalidInput as exc:
        return f"{exc.reason}: {exc.message}"
    return "ok"


@pytest.mark.parametrize("number", _NUMBERS)
def test_document_query_accepts_and_refuses_exactly_as_the_validators(number: str) -> None:
    """The constructor's one-expression check for the usual query: for every combination,
    the same instance or the same refusal (reason and message, first field first) as the
    three validators in turn."""
    for state in _STATES:
        for doc_type in _TYPES:
            want = _outcome(lambda n, s, t: (validate_doc_number(n), validate_state(s),
                                              validate_doc_type(t)), number, state, doc_type)
            assert _outcome(DocumentQuery, number, state, doc_type) == want, (
                number, state, doc_type)


# --- partial dates --------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "parts", "shown"), [
    ("1990", (1990, None, None), "1990"),
    ("1990-05", (1990, 5, None), "1990-05"),
    ("1990-05-21", (1990, 5, 21), "1990-05-21"),
    ("1990-00", (1990, None, None), "1990"),
    ("1990-00-00", (1990, None, None), "1990"),
    ("1990-05-00", (1990, 5, None), "1990-05"),
    ("1990-00-15", (1990, None, None), "1990"),  # a day without a month is unknown
    (" 1990-05-21 ", (1990, 5, 21), "1990-05-21"),
    ("2000-02-29", (2000, 2, 29), "2000-02-29"),
])
def test_partial_date_parse(text: str, parts: tuple[int, int | None, int | None],
                            shown: str) -> None:
    d = PartialDate.parse(text)
    assert (d.year, d.month, d.day) == parts
    assert str(d) == shown


@pytest.mark.parametrize("text", ["", "90", "19900", "1990-5", "1990-05-1", "1990/05/21",
                                  "1990-13", "1990-02-30", "1900-02-29", "2001-02-29",
                                  "1990-04-31", "1849", "2201", "1990-05-32", "1990-05-21T00"])
def test_partial_date_rejects(text: str) -> None:
    assert _reason(PartialDate.parse, text) == "bad_date"


def test_partial_date_rejects_non_ascii_digits() -> None:
    assert _reason(PartialDate.parse, "１９９０") == "bad_date"


def test_partial_date_year_bounds() -> None:
    assert PartialDate(1850).year == 1850
    assert PartialDate(2200).year == 2200
    assert _reason(PartialDate, 1849) == "bad_date"
    assert _reason(PartialDate, 2201) == "bad_date"
    assert _reason(PartialDate, 1990, None, 5) == "bad_date"
    assert _reason(PartialDate, 1990, 0) == "bad_date"


def test_partial_date_feb_30_message() -> None:
    with pytest.raises(InvalidInput) as err:
        PartialDate.parse("1990-02-30")
    assert str(err.value) == "day does not exist in that month"


@pytest.mark.parametrize(("a", "b", "same"), [
    ("1990", "1990-05-21", True),
    ("1990-05", "1990-05-21", True),
    ("1990-05-21", "1990-05-21", True),
    ("1990-05", "1990", True),
    ("1990", "1991", False),
    ("1990-05", "1990-06-01", False),
    ("1990-05-21", "1990-05-22", False),
    ("1990-05-21", "1991-05-21", False),
])
def test_partial_date_compatible_is_symmetric(a: str, b: str, same: bool) -> None:
    x, y = PartialDate.parse(a), PartialDate.parse(b)
    assert x.compatible(y) is same
    assert y.compatible(x) is same


# --- persons --------------------------------------------------------------------------------


def _person(**over: object) -> PersonQuery:
    base: dict[str, object] = dict(family_name="Асанов", given_names="Бакыт",
                                   date_of_birth=PartialDate(1979, 11, 2), nationality="KGZ",
                                   sex=Sex.MALE, patronymic="Токтогулович")
    base.update(over)
    return PersonQuery(**base)  # type: ignore[arg-type]


def test_person_cyrillic_and_latin_names() -> None:
    p = _person()
    assert (p.family_name, p.given_names, p.patronymic) == ("Асанов", "Бакыт", "Токтогулович")
    assert _person(family_name="O'Neil-Smith").family_name == "O'Neil-Smith"
    assert _person(family_name="Ғафуров", given_names="").given_names == ""
    assert _person(family_name="Oʻzbek").family_name == "Oʻzbek"


def test_person_names_are_nfc_normalised_and_stripped() -> None:
    decomposed = "Jose\u0301"
    assert _person(family_name=f"  {decomposed} ").family_name == "Jos\u00e9"


def test_person_name_length_bounds() -> None:
    assert limits.MAX_NAME_LEN == 100
    assert _person(family_name="Я" * 100).family_name == "Я" * 100
    assert _reason(_person, family_name="Я" * 101) == "bad_name"
    assert _reason(_person, given_names="a" * 101) == "bad_name"
    assert _reason(_person, patronymic="a" * 101) == "bad_name"


@pytest.mark.parametrize("name", ["Ivanov1", "Иванов2", "Smith;", "a\tb", "x_y", "😀"])
def test_person_name_rejects_digits_and_symbols(name: str) -> None:
    assert _reason(_person, family_name=name) == "bad_name"


def test_person_family_name_required_others_optional() -> None:
    assert _reason(_person, family_name="") == "bad_name"
    assert _reason(_person, family_name="   ") == "bad_name"
    p = _person(given_names="", patronymic="")
    assert (p.given_names, p.patronymic) == ("", "")


def test_person_nationality_validated() -> None:
    assert _reason(_person, nationality="ZZZ") == "bad_country"
    assert _person(nationality="D").nationality == "D"


# --- request header -------------------------------------------------------------------------


def _header(**over: object) -> RequestHeader:
    base: dict[str, object] = dict(requester="KGZ-BS", key_id="0011223344556677",
                                   operator="officer-7", purpose="border_check",
                                   legal_basis="art. 7", case_ref="CASE-1",
                                   issued_at_ms=1_700_000_000_000, nonce=bytes(24))
    base.update(over)
    return RequestHeader(**base)  # type: ignore[arg-type]


def test_header_nonce_bounds_exactly() -> None:
    assert (limits.MIN_NONCE_LEN, limits.MAX_NONCE_LEN) == (16, 64)
    assert _header(nonce=bytes(16)).nonce == bytes(16)
    assert _header(nonce=bytes(64)).nonce == bytes(64)
    assert _reason(_header, nonce=bytes(15)) == "bad_nonce"
    assert _reason(_header, nonce=bytes(65)) == "bad_nonce"
    assert _reason(_header, nonce=b"") == "bad_nonce"


def test_header_case_ref_bounds() -> None:
    assert _header(case_ref="c" * 128).case_ref == "c" * 128
    assert _reason(_header, case_ref="") == "bad_case_ref"
    assert _reason(_header, case_ref="c" * 129) == "bad_case_ref"


def test_header_legal_basis_bounds() -> None:
    assert _header(legal_basis="l" * 256).legal_basis == "l" * 256
    assert _reason(_header, legal_basis="") == "bad_legal_basis"
    assert _reason(_header, legal_basis="l" * 257) == "bad_legal_basis"


@pytest.mark.parametrize("purpose", ["", "fun", "BORDER_CHECK", "border check", "Border_check"])
def test_header_unknown_purpose(purpose: str) -> None:
    assert _reason(_header, purpose=purpose) == "unknown_purpose"


@pytest.mark.parametrize("purpose", ["border_check", "visa_application", "migration_control",
                                     "criminal_investigation", "counter_terrorism"])
def test_header_known_purposes(purpose: str) -> None:
    assert _header(purpose=purpose).purpose == purpose


def test_header_ids_and_time() -> None:
    assert _reason(_header, requester="") == "bad_identifier"
    assert _reason(_header, operator="bad op") == "bad_identifier"
    assert _reason(_header, key_id="k" * 65) == "bad_identifier"
    assert _reason(_header, issued_at_ms=0) == "bad_timestamp"
    assert _reason(_header, issued_at_ms=-1) == "bad_timestamp"


# --- lookup requests ------------------------------------------------------------------------

DOC = DocumentQuery("N0481516", "KAZ")


def test_lookup_request_empty_items() -> None:
    assert _reason(LookupRequest, _header(), QueryKind.BATCH, ()) == "empty_request"
    assert _reason(LookupRequest, _header(), QueryKind.DOCUMENT, ()) == "empty_request"


def test_lookup_request_single_kind_mismatch() -> None:
    assert _reason(LookupRequest, _header(), QueryKind.PERSON, (DOC,)) == "invalid_argument"
    assert _reason(LookupRequest, _header(), QueryKind.DOCUMENT, (_person(),)) == (
        "invalid_argument")
    assert _reason(LookupRequest, _header(), QueryKind.DOCUMENT, (DOC, DOC)) == (
        "invalid_argument")


def test_lookup_request_batch_bounds() -> None:
    assert len(LookupRequest(_header(), QueryKind.BATCH, (DOC,) * 10_000).items) == 10_000
    assert _reason(LookupRequest, _header(), QueryKind.BATCH, (DOC,) * 10_001) == (
        "batch_too_large")


def test_lookup_request_datasets_and_data_types() -> None:
    r = LookupRequest(_header(), QueryKind.BATCH, (DOC, _person(), DOC))
    assert r.datasets == ("documents", "persons")
    assert r.data_types == ("document_number", "issuing_state", "document_type", "name",
                            "date_of_birth", "nationality", "sex")
    assert LookupRequest(_header(), QueryKind.DOCUMENT, (DOC,)).datasets == ("documents",)


def test_models_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        DOC.number = "X"  # type: ignore[misc]


@pytest.mark.parametrize("code", ["XXA", "XXB", "XXC", "XXX"])
def test_nationality_only_codes_never_name_an_issuing_state(code: str) -> None:
    """ICAO 9303 Part 3 5.1: stateless, refugee and unspecified are nationalities only."""
    from node.core.errors import InvalidInput
    from node.core.model import DocumentQuery, PartialDate, PersonQuery, Sex

    with pytest.raises(InvalidInput) as err:
        DocumentQuery(number="N1234567", issuing_state=code)
    assert err.value.reason == "bad_country" and code in err.value.message
    person = PersonQuery(family_name="Doe", given_names="J", nationality=code,
                         date_of_birth=PartialDate(1980, 1, 1), sex=Sex.MALE)
    assert person.nationality == code  # as a nationality it is valid
