"""Machine-readable zones of travel documents and visas.

ICAO Doc 9303 (8th ed., 2021):

* Part 3, section 4.9: check digits.  Weights 7, 3, 1 repeating; digits keep
  their value, A–Z count 10–35, the filler ``<`` counts 0; the sum modulo 10.
* Part 4, section 4.2.2: TD3 — two lines of 44 characters.
* Part 5, section 4.2.2: TD1 — three lines of 30 characters.
* Part 6, section 4.2.2: TD2 — two lines of 36 characters (ID cards, types I, A, C).
* Part 7, sections 8.2 and 9.2: visas — MRV-A, two lines of 44, and MRV-B, two lines
  of 36 (type V), with no composite check digit.
* Part 3, section 4.6: names — primary identifier, ``<<``, secondary
  identifier; ``<`` between name components.

Parsing is in two steps.  :func:`read_mrz_fields` checks the layout and every
check digit and returns the raw fields; :func:`parse_mrz` then builds the
validated model types.  The ICAO specimens use the fictional state ``UTO``,
which :class:`~node.core.model.DocumentQuery` rejects (``bad_country``): we
fail closed and do not special-case it, so the specimens are tested with
:func:`read_mrz_fields` and full parsing is tested on documents of real states.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

from node.core.errors import InvalidInput
from node.core.model import DocumentQuery, PartialDate, PersonQuery, Sex

__all__ = ["MAX_MRZ_TEXT_LEN", "MrzFields", "MrzResult", "check_digit", "parse_mrz",
           "read_mrz_fields"]

#: Longest text accepted (TD3 is 2 × 44 characters; room for whitespace and CRLF).
MAX_MRZ_TEXT_LEN = 200

Format = Literal["TD1", "TD2", "TD3", "MRV-A", "MRV-B"]

_MRZ_LINE = re.compile(r"[A-Z0-9<]+")
_WEIGHTS = (7, 3, 1)


def _bad(message: str) -> InvalidInput:
    return InvalidInput(message, reason="bad_mrz")


def check_digit(field: str) -> int:
    """ICAO 9303 Part 3, 4.9: the check digit of ``field`` (A–Z, 0–9, ``<``)."""
    total = 0
    for i, ch in enumerate(field):
        if "0" <= ch <= "9":
            value = ord(ch) - 48
        elif "A" <= ch <= "Z":
            value = ord(ch) - 55
        elif ch == "<":
            value = 0
        else:
            raise _bad(f"character {ch!r} is not allowed in a machine-readable zone")
        total += value * _WEIGHTS[i % 3]
    return total % 10


def _verify(what: str, field: str, digit: str, *, filler_ok: bool = False) -> None:
    if digit == "<" and filler_ok:
        digit = "0"
    if not digit.isdigit() or int(digit) != check_digit(field):
        raise InvalidInput(f"check digit of the {what} does not match", reason="bad_check_digit")


@dataclass(frozen=True, slots=True)
class MrzFields:
    """Raw fields of an MRZ whose layout and check digits are valid."""

    format: Format
    doc_type: str
    issuing_state: str
    number: str
    nationality: str
    birth: str
    sex: str
    expiry: str
    primary: str
    secondary: str
    optional: str


@dataclass(frozen=True, slots=True)
class MrzResult:
    document: DocumentQuery
    person: PersonQuery
    expiry: date
    format: Format


def _lines(text: str) -> list[str]:
    if len(text) > MAX_MRZ_TEXT_LEN:
        raise _bad(f"machine-readable zone longer than {MAX_MRZ_TEXT_LEN} characters")
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    for line in lines:
        if _MRZ_LINE.fullmatch(line) is None:
            raise _bad("machine-readable zone may hold only A-Z, 0-9 and '<'")
    return lines


def _names(field: str) -> tuple[str, str]:
    primary, _, secondary = field.partition("<<")
    primary = " ".join(primary.replace("<", " ").split())
    secondary = " ".join(secondary.replace("<", " ").split())
    if not primary:
        raise _bad("primary identifier (family name) is empty")
    return primary, secondary


def _strip(field: str) -> str:
    return field.replace("<", "")


def read_mrz_fields(text: str) -> MrzFields:
    """Check layout and every check digit; return the raw fields."""
    lines = _lines(text)
    if len(lines) == 2 and all(len(line) == 44 for line in lines):
        return _visa(lines[0], lines[1], "MRV-A") if lines[0][0] == "V" else _td3(*lines)
    if len(lines) == 2 and all(len(line) == 36 for line in lines):
        return _visa(lines[0], lines[1], "MRV-B") if lines[0][0] == "V" else _td2(*lines)
    if len(lines) == 3 and all(len(line) == 30 for line in lines):
        return _td1(*lines)
    shape = " + ".join(str(len(line)) for line in lines) or "nothing"
    raise _bad(f"expected TD3 or MRV-A (2 lines of 44), TD2 or MRV-B (2 lines of 36) or TD1 "
               f"(3 lines of 30), got {shape}")


def _td3(l1: str, l2: str) -> MrzFields:
    """Doc 9303 Part 4, 4.2.2: the TD3 MRZ."""
    if l1[0] != "P":
        raise _bad("a TD3 machine-readable zone must be a passport (type P)")
    _verify("document number", l2[0:9], l2[9])
    _verify("date of birth", l2[13:19], l2[19])
    _verify("date of expiry", l2[21:27], l2[27])
    _verify("personal number", l2[28:42], l2[42], filler_ok=l2[28:42] == "<" * 14)
    _verify("composite", l2[0:10] + l2[13:20] + l2[21:43], l2[43])
    primary, secondary = _names(l1[5:44])
    return MrzFields(
        format="TD3", doc_type=_strip(l1[0:2]), issuing_state=_strip(l1[2:5]),
        number=_strip(l2[0:9]), nationality=_strip(l2[10:13]), birth=l2[13:19], sex=l2[20],
        expiry=l2[21:27], primary=primary, secondary=secondary, optional=_strip(l2[28:42]),
    )


def _long_number(first9: str, digit: str, optional: str, what: str) -> tuple[str, str]:
    """Doc 9303 Part 5 note j / Part 6 note j: a document number longer than 9 goes on in
    the optional field (check digit position ``<``), ending with its own check digit.
    Returns the number and what is left of the optional field."""
    if digit == "<" and optional[:1] not in ("", "<"):
        extra = optional.split("<", 1)[0]
        if len(extra) < 2:
            raise _bad(f"long {what} has no check digit")
        number = first9 + extra[:-1]
        _verify(what, number, extra[-1])
        return number, optional[len(extra):]
    _verify(what, first9, digit)
    return first9, optional


def _td2(l1: str, l2: str) -> MrzFields:
    """Doc 9303 Part 6, 4.2.2: the TD2 MRZ (ID card), with the long number of note j."""
    if l1[0] not in "IAC":
        raise _bad("a TD2 machine-readable zone must be an ID card (type I, A or C)")
    number, optional = _long_number(l2[0:9], l2[9], l2[28:35], "document number")
    _verify("date of birth", l2[13:19], l2[19])
    _verify("date of expiry", l2[21:27], l2[27])
    _verify("composite", l2[0:10] + l2[13:20] + l2[21:35], l2[35])
    primary, secondary = _names(l1[5:36])
    return MrzFields(
        format="TD2", doc_type=_strip(l1[0:2]), issuing_state=_strip(l1[2:5]),
        number=_strip(number), nationality=_strip(l2[10:13]), birth=l2[13:19], sex=l2[20],
        expiry=l2[21:27], primary=primary, secondary=secondary, optional=_strip(optional),
    )


def _visa(l1: str, l2: str, fmt: Format) -> MrzFields:
    """Doc 9303 Part 7, 8.2 (MRV-A, 2 x 44) and 9.2 (MRV-B, 2 x 36): a visa; no composite
    check digit.  The "document" is the visa, its number the visa number."""
    width = len(l1)
    _verify("visa number", l2[0:9], l2[9])
    _verify("date of birth", l2[13:19], l2[19])
    _verify("date of expiry", l2[21:27], l2[27])
    primary, secondary = _names(l1[5:width])
    return MrzFields(
        format=fmt, doc_type=_strip(l1[0:2]), issuing_state=_strip(l1[2:5]),
        number=_strip(l2[0:9]), nationality=_strip(l2[10:13]), birth=l2[13:19], sex=l2[20],
        expiry=l2[21:27], primary=primary, secondary=secondary, optional=_strip(l2[28:width]),
    )


def _td1(l1: str, l2: str, l3: str) -> MrzFields:
    """Doc 9303 Part 5, 4.2.2: the TD1 MRZ, with the long document number of note j."""
    if l1[0] not in "IAC":
        raise _bad("a TD1 machine-readable zone must be an ID card (type I, A or C)")
    optional1 = l1[15:30]
    if l1[14] == "<" and optional1[0] != "<":
        # Document number longer than 9: it goes on in the optional field, whose
        # last character before the filler is the check digit.
        extra = optional1.split("<", 1)[0]
        if len(extra) < 2:
            raise _bad("long document number has no check digit")
        number = l1[5:14] + extra[:-1]
        _verify("document number", number, extra[-1])
        optional1 = optional1[len(extra):]
    else:
        number = l1[5:14]
        _verify("document number", number, l1[14])
    _verify("date of birth", l2[0:6], l2[6])
    _verify("date of expiry", l2[8:14], l2[14])
    _verify("composite", l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29], l2[29])
    primary, secondary = _names(l3)
    return MrzFields(
        format="TD1", doc_type=_strip(l1[0:2]), issuing_state=_strip(l1[2:5]),
        number=_strip(number), nationality=_strip(l2[15:18]), birth=l2[0:6], sex=l2[7],
        expiry=l2[8:14], primary=primary, secondary=secondary,
        optional=_strip(optional1) + _strip(l2[18:29]),
    )


def _expiry(yymmdd: str) -> date:
    if not yymmdd.isdigit():
        raise _bad("date of expiry must be YYMMDD")
    yy = int(yymmdd[:2])
    try:
        return date(2000 + yy if yy < 70 else 1900 + yy, int(yymmdd[2:4]), int(yymmdd[4:6]))
    except ValueError:
        raise _bad("date of expiry does not exist") from None


def _birth(yymmdd: str, pivot_year: int) -> PartialDate:
    """Doc 9303 Part 3, 4.7: an unknown month or day is ``<<`` (``00`` is seen too)."""
    yy, mm, dd = yymmdd[:2], yymmdd[2:4], yymmdd[4:6]
    if not yy.isdigit():
        raise _bad("year of birth is unknown; a person lookup needs it")
    if not all(part.isdigit() or part == "<<" for part in (mm, dd)):
        raise _bad("date of birth must be YYMMDD")
    year = 2000 + int(yy)
    if year > pivot_year:
        year -= 100
    month = int(mm) if mm.isdigit() and mm != "00" else None
    day = int(dd) if dd.isdigit() and dd != "00" and month is not None else None
    try:
        return PartialDate(year, month, day)
    except InvalidInput:
        raise _bad("date of birth does not exist") from None


def parse_mrz(text: str, *, today: date | None = None) -> MrzResult:
    """Parse an MRZ (TD1, TD2, TD3, MRV-A, MRV-B) into a document query and a person query.

    Raises :class:`~node.core.errors.InvalidInput` with reason ``bad_mrz``
    (layout, characters, dates), ``bad_check_digit`` (naming the field), or
    the model's reason (``bad_country``, ``bad_name``, ...).

    Two-digit birth years: with ``today`` given, a year not after today is
    20YY, else 19YY.  Without it (no clock in the core), the pivot is five
    years before expiry, as no passport is issued before birth and the
    shortest passport validity is five years; a holder aged about a hundred
    may come out a century late.
    """
    f = read_mrz_fields(text)
    expiry = _expiry(f.expiry)
    pivot = today.year if today is not None else expiry.year - 5
    dob = _birth(f.birth, pivot)
    sex = {"M": Sex.MALE, "F": Sex.FEMALE}.get(f.sex, Sex.UNSPECIFIED)
    document = DocumentQuery(number=f.number, issuing_state=f.issuing_state,
                             doc_type=f.doc_type)
    person = PersonQuery(family_name=f.primary, given_names=f.secondary, date_of_birth=dob,
                         nationality=f.nationality, sex=sex)
    return MrzResult(document=document, person=person, expiry=expiry, format=f.format)
