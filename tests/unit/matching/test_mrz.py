"""MRZ parsing and ICAO 9303 check digits (Part 3 4.9; Part 4 4.2.2; Part 5 4.2.2)."""

from __future__ import annotations

from datetime import date

import pytest

from node.core.errors import InvalidInput
from node.core.model import DocumentQuery, PartialDate, Sex
from node.matching import check_digit, parse_mrz, read_mrz_fields
from node.matching.mrz import MAX_MRZ_TEXT_LEN

# ICAO Doc 9303 specimens (fictional state Utopia, UTO).
TD3_SPECIMEN = ("P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n"
                "L898902C36UTO7408122F1204159ZE184226B<<<<<10")
TD1_SPECIMEN = ("I<UTOD231458907<<<<<<<<<<<<<<<\n"
                "7408122F1204159UTO<<<<<<<<<<<6\n"
                "ERIKSSON<<ANNA<MARIA<<<<<<<<<<")
# Documents of real states built by the same rules (check digits worked by hand
# with the specimen-verified check_digit).
TD3_KAZ = ("P<KAZIUSUPOV<<KAIRAT<NURLANOVICH<<<<<<<<<<<<\n"
           "N123456785KAZ8507158M3001019<<<<<<<<<<<<<<<6")
TD1_KGZ_LONG_NUMBER = ("IDKGZAN1234567<890123<<<<<<<<<\n"
                       "9203<<0F2906302KGZ<<<<<<<<<<<8\n"
                       "ZHAPAROVA<<AIPERI<<<<<<<<<<<<<")


@pytest.mark.parametrize(("field", "digit"), [
    ("L898902C3", 6), ("740812", 2), ("120415", 9), ("ZE184226B<<<<<", 1),
    ("L898902C36" + "7408122" + "1204159ZE184226B<<<<<1", 0),  # TD3 composite
    ("D23145890", 7),
    ("D231458907<<<<<<<<<<<<<<<" + "7408122" + "1204159" + "<<<<<<<<<<<", 6),  # TD1
    ("<<<<", 0), ("AZ09", (10 * 7 + 35 * 3 + 0 * 1 + 9 * 7) % 10),
])
def test_check_digits_of_the_specimens(field: str, digit: int) -> None:
    assert check_digit(field) == digit


def test_td3_specimen_fields() -> None:
    f = read_mrz_fields(TD3_SPECIMEN)
    assert (f.format, f.doc_type, f.issuing_state, f.number, f.nationality) == (
        "TD3", "P", "UTO", "L898902C3", "UTO")
    assert (f.birth, f.sex, f.expiry, f.optional) == ("740812", "F", "120415", "ZE184226B")
    assert (f.primary, f.secondary) == ("ERIKSSON", "ANNA MARIA")


def test_td1_specimen_fields() -> None:
    f = read_mrz_fields(TD1_SPECIMEN)
    assert (f.format, f.doc_type, f.issuing_state, f.number, f.nationality) == (
        "TD1", "I", "UTO", "D23145890", "UTO")
    assert (f.birth, f.sex, f.expiry, f.primary, f.secondary) == (
        "740812", "F", "120415", "ERIKSSON", "ANNA MARIA")


@pytest.mark.parametrize("text", [TD3_SPECIMEN, TD1_SPECIMEN])
def test_specimen_state_utopia_is_rejected_by_the_model(text: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_mrz(text)
    assert e.value.reason == "bad_country"


def test_td3_of_a_real_state() -> None:
    r = parse_mrz(TD3_KAZ)
    assert r.format == "TD3"
    assert r.document == DocumentQuery(number="N12345678", issuing_state="KAZ", doc_type="P")
    assert r.person.family_name == "IUSUPOV"
    assert r.person.given_names == "KAIRAT NURLANOVICH"
    assert r.person.date_of_birth == PartialDate(1985, 7, 15)
    assert r.person.nationality == "KAZ"
    assert r.person.sex is Sex.MALE
    assert r.expiry == date(2030, 1, 1)


def test_td1_long_document_number_and_unknown_day() -> None:
    r = parse_mrz(TD1_KGZ_LONG_NUMBER)
    assert r.format == "TD1"
    assert r.document == DocumentQuery(number="AN123456789012", issuing_state="KGZ",
                                       doc_type="ID")
    assert (r.person.family_name, r.person.given_names) == ("ZHAPAROVA", "AIPERI")
    assert r.person.date_of_birth == PartialDate(1992, 3, None)
    assert r.person.sex is Sex.FEMALE
    assert r.expiry == date(2029, 6, 30)


def test_surrounding_whitespace_and_crlf_are_tolerated() -> None:
    text = "  \r\n" + TD3_KAZ.replace("\n", "  \r\n  ") + "\n\n  "
    assert parse_mrz(text) == parse_mrz(TD3_KAZ)


def test_birth_century_from_today_or_expiry() -> None:
    assert parse_mrz(TD3_KAZ, today=date(2026, 11, 1)).person.date_of_birth.year == 1985
    # Without a clock the pivot is five years before expiry (2030 - 5 = 2025).
    assert parse_mrz(TD3_KAZ).person.date_of_birth.year == 1985


def _swap(text: str, line: int, pos: int, ch: str) -> str:
    lines = text.split("\n")
    lines[line] = lines[line][:pos] + ch + lines[line][pos + 1:]
    return "\n".join(lines)


@pytest.mark.parametrize(("text", "field"), [
    (_swap(TD3_SPECIMEN, 1, 9, "7"), "document number"),
    (_swap(TD3_SPECIMEN, 1, 19, "3"), "date of birth"),
    (_swap(TD3_SPECIMEN, 1, 27, "0"), "date of expiry"),
    (_swap(TD3_SPECIMEN, 1, 42, "2"), "personal number"),
    (_swap(TD3_SPECIMEN, 1, 43, "1"), "composite"),
    (_swap(TD3_SPECIMEN, 1, 0, "M"), "document number"),
    (_swap(TD1_SPECIMEN, 0, 14, "8"), "document number"),
    (_swap(TD1_SPECIMEN, 1, 6, "3"), "date of birth"),
    (_swap(TD1_SPECIMEN, 1, 14, "0"), "date of expiry"),
    (_swap(TD1_SPECIMEN, 1, 29, "7"), "composite"),
    (_swap(TD1_SPECIMEN, 1, 20, "X"), "composite"),
    (_swap(TD3_KAZ, 1, 43, "<"), "composite"),
])
def test_bad_check_digit_names_the_field(text: str, field: str) -> None:
    with pytest.raises(InvalidInput) as e:
        read_mrz_fields(text)
    assert e.value.reason == "bad_check_digit"
    assert str(e.value) == f"check digit of the {field} does not match"


@pytest.mark.parametrize("text", [
    "", TD3_SPECIMEN[:-1], TD3_SPECIMEN + "<", TD1_SPECIMEN.lower(),
    TD3_SPECIMEN.replace("ERIKSSON", "ERIKSSÖN"), "\n".join(TD1_SPECIMEN.split("\n")[:2]),
    TD3_SPECIMEN.replace("P<UTO", "I<UTO"), TD1_SPECIMEN.replace("I<UTO", "P<UTO"),
    "P<KAZ<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<\n" + TD3_KAZ.split("\n")[1],
    "x" * (MAX_MRZ_TEXT_LEN + 1),
])
def test_malformed_zones_are_rejected(text: str) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_mrz(text)
    assert e.value.reason == "bad_mrz"


def test_bound_is_exact() -> None:
    padded = TD3_KAZ + " " * (MAX_MRZ_TEXT_LEN - len(TD3_KAZ))
    assert parse_mrz(padded).document.number == "N12345678"
    with pytest.raises(InvalidInput):
        parse_mrz(padded + " ")


# --- TD2 and visas (Doc 9303 Parts 6 and 7) ---------------------------------------------------

TD2_SPECIMEN = "I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nD231458907UTO7408122F1204159<<<<<<<6"
MRVA_SPECIMEN = ("V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\n"
                 "L8988901C4XXX4009078F96121096ZE184226B<<<<<<")
MRVB_SPECIMEN = "V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<\nL8988901C4XXX4009078F9612109<<<<<<<<"


@pytest.mark.parametrize(("text", "fmt", "number", "optional"), [
    (TD2_SPECIMEN, "TD2", "D23145890", ""),
    (MRVA_SPECIMEN, "MRV-A", "L8988901C", "6ZE184226B"),
    (MRVB_SPECIMEN, "MRV-B", "L8988901C", ""),
])
def test_icao_specimens_of_td2_and_visas(text: str, fmt: str, number: str,
                                        optional: str) -> None:
    from node.matching.mrz import read_mrz_fields

    f = read_mrz_fields(text)
    assert (f.format, f.number, f.primary, f.secondary, f.birth, f.sex, f.optional) == (
        fmt, number, "ERIKSSON", "ANNA MARIA", "740812" if fmt == "TD2" else "400907", "F",
        optional)


def _zone2(width: int, l1: str, number: str, nat: str, dob: str, sex: str, exp: str,
           opt: str, *, composite: bool) -> str:
    from node.matching.mrz import check_digit as cd

    l1 = l1.ljust(width, "<")
    head = f"{number.ljust(9, '<')}{cd(number.ljust(9, '<'))}{nat}{dob}{cd(dob)}{sex}"
    opt_len = width - 28 - (1 if composite else 0)
    body = f"{head}{exp}{cd(exp)}{opt.ljust(opt_len, '<')}"
    if composite:
        body += str(cd(body[0:10] + body[13:20] + body[21:35]))
    return f"{l1}\n{body}"


def test_a_kazakh_td2_card_and_a_visa_become_document_and_person_queries() -> None:
    from node.matching.mrz import parse_mrz

    card = parse_mrz(_zone2(36, "I<KAZSEITKALI<<AIGERIM", "N12345678", "KAZ", "920514", "F",
                            "310101", "", composite=True))
    assert (card.format, card.document.number, card.document.doc_type,
            card.document.issuing_state) == ("TD2", "N12345678", "I", "KAZ")
    assert (card.person.family_name, card.person.given_names) == ("SEITKALI", "AIGERIM")
    visa = parse_mrz(_zone2(36, "V<KAZIUSUPOV<<TIMUR", "V0000123", "UZB", "840317", "M",
                            "270101", "", composite=False))
    assert (visa.format, visa.document.doc_type, visa.person.nationality) == (
        "MRV-B", "V", "UZB")


@pytest.mark.parametrize(("text", "reason"), [
    (TD2_SPECIMEN[:-1] + "7", "bad_check_digit"),            # composite
    (TD2_SPECIMEN.replace("D231458907", "D231458908"), "bad_check_digit"),
    (MRVA_SPECIMEN.replace("4009078", "4009079"), "bad_check_digit"),  # date of birth
    ("P" + TD2_SPECIMEN[1:], "bad_mrz"),                      # a passport is never 2 x 36
    (TD2_SPECIMEN.split("\n")[0] + "\n" + "<" * 35, "bad_mrz"),  # 36 + 35
])
def test_td2_and_visa_refusals(text: str, reason: str) -> None:
    from node.core.errors import InvalidInput
    from node.matching.mrz import read_mrz_fields

    with pytest.raises(InvalidInput) as err:
        read_mrz_fields(text)
    assert err.value.reason == reason
