"""Airline passenger data: a UN/EDIFACT PAXLST message in, document and person items out.

Airlines send Advance Passenger Information as PAXLST (ICAO Annex 9, 9.8).  The shape
this module reads is the one of the WCO/IATA/ICAO API Guidelines, Annex III "PAXLST
Implementation Guide", version 3.0 (2010), for message versions D02B and D05B; the
comments cite it as "IG" with its section (IG 4.11 is "NAD: name and address, Gr. 4").
The syntax (UNA, separators, the release character ``?``) is ISO 9735's.

Pure, like :mod:`node.core.envelope`: bytes in, typed values out; no I/O, no clock (two-
digit years are read against the interchange's own preparation date).  Bounded where it
is parsed: at most :data:`MAX_PAXLST_BYTES` bytes, :data:`MAX_SEGMENTS` segments,
:data:`MAX_TRAVELLERS` travellers and :data:`MAX_DOCUMENTS_PER_TRAVELLER` documents each.

Tokenizing (separators, release characters, empty components) is pydifact's
:class:`~pydifact.tokenizer.Tokenizer`, one segment at a time: this module finds the
segment boundaries itself first, so every refusal names the segment's ordinal, tag, line
and column, and a truncated last segment (which pydifact would drop silently) is refused.
pydifact's own UNA search is not used: it looks for ``'UNA`` anywhere, which an
escaped apostrophe in a name (``O?'UNA...``) would match.

A malformed message raises :class:`PaxlstError` (an ``InvalidInput``) naming where.  A
message that parses yields a :class:`Flight` whose every item was built by the protocol's
own constructors (:class:`~node.core.model.DocumentQuery`, ``PersonQuery``), so it is
within every bound the peer checks.  What the message does not carry is not guessed:

* no date of birth (DTM+329): the person is not checked, and the traveller says so
  (``person_not_checked``); their documents are still checked;
* no nationality (NAT): the issuing state of the traveller's passport (a document type
  starting with P) stands in, as US-CBP's GTAS does, and a note says so; without a passport
  the person is not checked;
* no issuing state (LOC+91) or a document type ICAO 9303 does not define (IG 4.21 allows
  e.g. F, M, L): that document is not checked, and says so.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pydifact import Characters
from pydifact.exceptions import EDISyntaxError
from pydifact.parser import Parser
from pydifact.tokenizer import Tokenizer

from node.core.errors import InvalidInput
from node.core.model import (
    DocumentQuery,
    ItemResult,
    Outcome,
    PartialDate,
    PersonQuery,
    Query,
    Sex,
    validate_doc_number,
    validate_doc_type,
    validate_state,
)

__all__ = [
    "MAX_DOCUMENTS_PER_TRAVELLER",
    "MAX_PAXLST_BYTES",
    "MAX_SEGMENTS",
    "MAX_TRAVELLERS",
    "Flight",
    "FlightItem",
    "ItemKind",
    "Leg",
    "ListType",
    "PaxlstError",
    "Position",
    "Role",
    "TravelDocument",
    "Traveller",
    "TravellerResult",
    "flight_batches",
    "flight_queries",
    "parse_paxlst",
    "traveller_results",
]

#: The largest message read (a full A380 is about 200 KB; the rest is headroom).
MAX_PAXLST_BYTES = 1024 * 1024
#: Segments in the whole interchange, UNB to UNZ (UNA is not a segment).
MAX_SEGMENTS = 30_000
#: Travellers (Gr. 4) in one message.
MAX_TRAVELLERS = 1_000
#: Documents (Gr. 5) of one traveller.
MAX_DOCUMENTS_PER_TRAVELLER = 5

#: ISO 9735 default service characters when there is no UNA (IG 4.1).
_DEFAULT_UNA = ":+.? '"
#: UNB S001 syntax identifier -> the codec of the message (IG 4.2; ISO 9735 levels).
_CODECS = {"UNOA": "ascii", "UNOB": "ascii", "UNOC": "latin-1", "UNOD": "iso8859-2",
           "UNOE": "iso8859-5", "UNOF": "iso8859-7", "UNOW": "utf-8", "UNOY": "utf-8"}
#: Message versions this module reads (UNH S009 0052:0054, IG 4.4).
_VERSIONS = {("D", "02B"): "D02B", ("D", "05B"): "D05B"}
_TAG = re.compile(r"[A-Z][A-Z0-9]{2}")
_DIGITS = re.compile(r"[0-9]+")


class PaxlstError(InvalidInput):
    """A malformed or oversized PAXLST message; ``position`` names where, when known."""

    def __init__(self, message: str, *, position: Position | None = None,
                 reason: str = "bad_paxlst") -> None:
        where = f"PAXLST {position}: " if position is not None else "PAXLST message: "
        super().__init__(where + message, reason=reason)
        self.position = position


@dataclass(frozen=True, slots=True)
class Position:
    """A segment's place: its ordinal in the interchange (UNB is 1), tag, line, column."""

    segment: int
    tag: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"segment {self.segment} ({self.tag}, line {self.line} column {self.column})"


class ListType(StrEnum):
    """BGM 1001 (IG 4.5): 745 passenger list, 250 crew list."""

    PASSENGERS = "passengers"
    CREW = "crew"


class Role(StrEnum):
    """NAD 3035 of Gr. 4 (IG 4.11): FL passenger, FM crew member, DDU in-transit passenger,
    DDT in-transit crew member."""

    PASSENGER = "passenger"
    CREW = "crew"
    TRANSIT_PASSENGER = "in_transit_passenger"
    TRANSIT_CREW = "in_transit_crew"


_ROLES = {"FL": Role.PASSENGER, "FM": Role.CREW, "DDU": Role.TRANSIT_PASSENGER,
          "DDT": Role.TRANSIT_CREW}
_LIST_TYPES = {"745": ListType.PASSENGERS, "250": ListType.CREW}
_ROLES_OF = {ListType.PASSENGERS: (Role.PASSENGER, Role.TRANSIT_PASSENGER),
             ListType.CREW: (Role.CREW, Role.TRANSIT_CREW)}
#: CNT 6069 (IG 4.24): 42 total passengers, 41 total crew.
_COUNT_QUALIFIER = {ListType.PASSENGERS: "42", ListType.CREW: "41"}
#: ATT+2 (IG 4.12) sex codes; U (unknown) and X (unspecified) are the same to us.
_SEX = {"M": Sex.MALE, "F": Sex.FEMALE, "U": Sex.UNSPECIFIED, "X": Sex.UNSPECIFIED}


@dataclass(frozen=True, slots=True)
class Leg:
    """Gr. 2 TDT (IG 4.8) with its Gr. 3 LOC/DTM (IG 4.9, 4.10): one flight leg."""

    flight: str
    departure: str
    arrival: str
    departure_time: dt.datetime | None
    arrival_time: dt.datetime | None
    position: Position


@dataclass(frozen=True, slots=True)
class TravelDocument:
    """Gr. 5 (IG 4.21-4.23): DOC with its DTM+36 expiry and LOC+91 issuing state.

    ``query`` is the document item to check, or None with ``not_checked`` saying why."""

    doc_type: str
    number: str
    issuing_state: str
    expiry: dt.date | None
    position: Position
    query: DocumentQuery | None
    not_checked: str = ""


@dataclass(frozen=True, slots=True)
class Traveller:
    """Gr. 4 (IG 4.11-4.20): one passenger or crew member, ``index`` 1-based in the message.

    ``person`` is the person item to check, or None with ``person_not_checked`` saying
    why; ``notes`` say what was inferred (a nationality taken from the passport)."""

    index: int
    role: Role
    family_name: str
    given_names: str
    sex: Sex
    date_of_birth: PartialDate | None
    nationality: str
    embarkation: str
    debarkation: str
    documents: tuple[TravelDocument, ...]
    position: Position
    person: PersonQuery | None
    person_not_checked: str = ""
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.family_name} {self.given_names}".strip()


@dataclass(frozen=True, slots=True)
class Flight:
    """One PAXLST message (UNH..UNT) of one interchange (UNB..UNZ)."""

    version: str
    list_type: ListType
    sender: str
    recipient: str
    interchange_ref: str
    message_ref: str
    prepared: dt.datetime
    part: int | None
    final_part: bool
    legs: tuple[Leg, ...]
    travellers: tuple[Traveller, ...]

    @property
    def flight(self) -> str:
        return self.legs[0].flight

    @property
    def route(self) -> str:
        return "-".join([self.legs[0].departure, *(leg.arrival for leg in self.legs)])


class ItemKind(StrEnum):
    DOCUMENT = "document"
    PERSON = "person"


@dataclass(frozen=True, slots=True)
class FlightItem:
    """One item to ask about: ``traveller`` is the traveller's 1-based index."""

    traveller: int
    kind: ItemKind
    query: Query
    label: str


@dataclass(frozen=True, slots=True)
class TravellerResult:
    """A traveller with the answer to each of their items, and what was not checked."""

    traveller: Traveller
    checks: tuple[tuple[FlightItem, ItemResult], ...]
    not_checked: tuple[str, ...]

    @property
    def hit(self) -> bool:
        return any(r.outcome is Outcome.HIT for _, r in self.checks)


# --- syntax: service characters, character set, segment boundaries ------------------------


@dataclass(frozen=True, slots=True)
class _Seg:
    tag: str
    elements: tuple[tuple[str, ...], ...]
    position: Position

    def get(self, element: int, component: int = 0) -> str:
        """Component ``component`` of data element ``element`` (0 is the first after the tag),
        "" when absent."""
        if element >= len(self.elements) or component >= len(self.elements[element]):
            return ""
        return self.elements[element][component].strip()


def _service_characters(head: bytes) -> tuple[str, int]:
    """The six UNA characters (IG 4.1) and where the UNB segment starts."""
    if not head.startswith(b"UNA"):
        return _DEFAULT_UNA, 0
    una = head[3:9]
    if len(una) < 6 or any(b > 0x7e or b < 0x20 for b in una):
        raise PaxlstError("the UNA service string advice must hold six printable ASCII "
                          "characters", position=Position(0, "UNA", 1, 1))
    chars = una.decode("ascii")
    component, data, release, terminator = chars[0], chars[1], chars[3], chars[5]
    used = [component, data, terminator] + ([release] if release != " " else [])
    if len(set(used)) != len(used) or any(c.isalnum() or c == " " for c in
                                          (component, data, terminator)):
        raise PaxlstError(f"the UNA service characters {chars!r} are not distinct separators",
                          position=Position(0, "UNA", 1, 1))
    return chars, 9


def _decode(data: bytes, una: str, start: int) -> tuple[str, str]:
    """The message as text, in the character set UNB's syntax identifier names (IG 4.2)."""
    m = re.match(rb"[ \r\n]*UNB" + re.escape(una[1].encode()) + rb"([A-Z]{4})", data[start:])
    if m is None:
        raise PaxlstError("an interchange starts with UNB (after an optional UNA)",
                          position=Position(1, data[start:start + 3].decode("latin-1")
                                            .strip() or "end", 1, start + 1))
    syntax = m.group(1).decode()
    codec = _CODECS.get(syntax)
    if codec is None:
        raise PaxlstError(f"UNB syntax identifier {syntax} is not one this node reads "
                          f"({', '.join(sorted(_CODECS))})", position=Position(1, "UNB", 1, 1))
    try:
        return data.decode(codec), syntax
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PaxlstError(f"byte {exc.start + 1} (line {line}) is not {codec} text, which UNB's "
                          f"syntax identifier {syntax} declares", reason="bad_paxlst") from None


def _segments(text: str, una: str, start: int) -> Iterator[tuple[int, int, int, int]]:
    """(start, end, line, column) of each segment; ``end`` is its terminator's offset.

    Whitespace between segments (a newline after each terminator is common) is skipped,
    as pydifact's tokenizer does; a release character makes the next character plain."""
    release = una[3] if una[3] != " " else None
    terminator = una[5]
    line, line_start = 1, 0
    i, n, begin, count = start, len(text), -1, 0
    begin_line = begin_col = 0
    while i < n:
        c = text[i]
        if begin < 0:
            if c in " \r\n":
                if c == "\n":
                    line, line_start = line + 1, i + 1
                i += 1
                continue
            begin, begin_line, begin_col = i, line, i - line_start + 1
        if c == "\n":
            line, line_start = line + 1, i + 1
        if c == release and i + 1 < n:
            if text[i + 1] == "\n":
                line, line_start = line + 1, i + 2
            i += 2
            continue
        if c == terminator:
            yield begin, i, begin_line, begin_col
            begin, count = -1, count + 1
        i += 1
    if begin >= 0:
        tag = text[begin:begin + 3]
        raise PaxlstError(f"the last segment is not terminated with {terminator!r} (the "
                          "message is truncated)",
                          position=Position(count + 1, tag, begin_line, begin_col))


def _tokenize(text: str, una: str, pos: Position) -> _Seg:
    """One segment's data elements and components, by pydifact (ISO 9735 syntax)."""
    chars = Characters(  # type: ignore[no-untyped-call]  # pydifact leaves it untyped
                       component_separator=una[0], data_separator=una[1],
                       decimal_point=una[2],
                       escape_character=una[3] if una[3] != " " else "\x00",
                       segment_terminator=una[5])
    try:
        raw = list(Parser().convert_tokens_to_raw_segments(
            Tokenizer().get_tokens(text, chars)))
    except EDISyntaxError as exc:
        detail = str(exc).removeprefix("EDIFACT Syntax Error: ").split(" (line")[0]
        raise PaxlstError(f"not EDIFACT syntax ({detail.rstrip('.')})", position=pos) from None
    if len(raw) != 1 or not raw[0]:
        raise PaxlstError("not one EDIFACT segment", position=pos)
    tag, *elements = raw[0]
    if not isinstance(tag, str) or _TAG.fullmatch(tag) is None:
        raise PaxlstError(f"a segment starts with a three-character tag (A-Z, 0-9), not "
                          f"{text[:16]!r} (is a separator in the segment before it not "
                          f"released with {una[3]!r}?)", position=pos)
    return _Seg(tag, tuple((e,) if isinstance(e, str) else tuple(e) for e in elements), pos)


def _split(data: bytes) -> tuple[list[_Seg], str]:
    if len(data) > MAX_PAXLST_BYTES:
        raise PaxlstError(f"the message is larger than {MAX_PAXLST_BYTES} bytes",
                          reason="paxlst_too_large")
    if not data.strip():
        raise PaxlstError("the message is empty", reason="empty_request")
    lead = len(data) - len(data.lstrip(b" \r\n"))
    una, start = _service_characters(data[lead:])
    start += lead
    text, syntax = _decode(data, una, start)
    if una[3] == " " and "\x00" in text:
        raise PaxlstError("the message holds a NUL character")
    out: list[_Seg] = []
    for begin, end, line, column in _segments(text, una, start):
        n = len(out) + 1
        pos = Position(n, text[begin:begin + 3], line, column)
        if n > MAX_SEGMENTS:
            raise PaxlstError(f"the interchange holds more than {MAX_SEGMENTS} segments",
                              position=pos, reason="paxlst_too_large")
        out.append(_tokenize(text[begin:end + 1], una, pos))
    return out, syntax


# --- values: dates, codes --------------------------------------------------------------


def _parse_date(seg: _Seg, *, what: str, pivot_year: int | None,
                partial: bool = False) -> tuple[int, int | None, int | None, str]:
    """(year, month, day, HHMM) of a DTM segment.  Two-digit years: in ``pivot_year``'s
    century unless that is later than ``pivot_year`` (then the century before); without a
    pivot, 20YY.  With ``partial`` a 00 month or day means unknown (as in the watchlist)."""
    value, fmt = seg.get(0, 1), seg.get(0, 2)
    if not value or _DIGITS.fullmatch(value) is None:
        raise PaxlstError(f"{what} {value!r} is not a date of digits", position=seg.position,
                          reason="bad_date")
    lengths = {"101": 6, "102": 8, "201": 10, "203": 12}
    if len(value) not in (6, 8, 10, 12) or (fmt and lengths.get(fmt) != len(value)):
        raise PaxlstError(f"{what} {value!r} does not match date format {fmt or '(none)'}",
                          position=seg.position, reason="bad_date")
    if len(value) in (8, 12):
        year, rest = int(value[:4]), value[4:]
    else:
        yy, rest = int(value[:2]), value[2:]
        year = 2000 + yy
        if pivot_year is not None and year > pivot_year:
            year -= 100
    month, day, hhmm = int(rest[:2]), int(rest[2:4]), rest[4:]
    if partial:
        m = month or None
        return year, m, (day or None) if m else None, hhmm
    return year, month, day, hhmm


def _calendar_date(seg: _Seg, *, what: str) -> dt.date:
    year, month, day, _ = _parse_date(seg, what=what, pivot_year=None)
    try:
        return dt.date(year, month or 0, day or 0)
    except ValueError:
        raise PaxlstError(f"{what} {seg.get(0, 1)!r} is not a calendar date",
                          position=seg.position, reason="bad_date") from None


def _date_time(seg: _Seg, *, what: str) -> dt.datetime:
    year, month, day, hhmm = _parse_date(seg, what=what, pivot_year=None)
    try:
        return dt.datetime(year, month or 0, day or 0, int(hhmm[:2] or 0), int(hhmm[2:] or 0))
    except ValueError:
        raise PaxlstError(f"{what} {seg.get(0, 1)!r} is not a calendar date and time",
                          position=seg.position, reason="bad_date") from None


def _checked(seg: _Seg, validate: Callable[..., object], *args: str) -> None:
    """Run a model validator; its refusal, with its reason, names ``seg``."""
    try:
        validate(*args)
    except PaxlstError:
        raise
    except InvalidInput as exc:
        raise PaxlstError(str(exc), position=seg.position, reason=exc.reason) from None


# --- structure: service segments and the PAXLST message (IG 3.0) --------------------------


def _count(seg: _Seg, element: int, what: str, component: int = 0) -> int:
    value = seg.get(element, component)
    if _DIGITS.fullmatch(value) is None:
        raise PaxlstError(f"{what} {value!r} is not a number", position=seg.position)
    return int(value)


def _expect(seg: _Seg | None, tag: str, after: str, last: _Seg) -> _Seg:
    if seg is None:
        raise PaxlstError(f"the interchange ends where {tag} should follow {after}",
                          position=last.position)
    if seg.tag != tag:
        raise PaxlstError(f"{tag} should follow {after}, not {seg.tag}", position=seg.position)
    return seg


class _Reader:
    def __init__(self, segments: list[_Seg]) -> None:
        self.segments = segments
        self.i = 0

    def peek(self) -> _Seg | None:
        return self.segments[self.i] if self.i < len(self.segments) else None

    def take(self) -> _Seg:
        seg = self.segments[self.i]
        self.i += 1
        return seg

    def take_while(self, tags: frozenset[str]) -> list[_Seg]:
        out = []
        while (seg := self.peek()) is not None and seg.tag in tags:
            out.append(self.take())
        return out

    @property
    def last(self) -> _Seg:
        return self.segments[min(self.i, len(self.segments)) - 1]


#: Gr. 4 segments after NAD (IG 4.12-4.20) and Gr. 5 after DOC (IG 4.22-4.23; D05B adds
#: GEI, RFF, CPI and QTY there).  Those the check does not need are read past.
_GR4 = frozenset({"ATT", "DTM", "MEA", "GEI", "FTX", "LOC", "COM", "EMP", "NAT", "RFF", "QTY",
                  "CPI"})
_GR5 = frozenset({"DTM", "GEI", "RFF", "LOC", "CPI", "QTY"})
_IN_MESSAGE = frozenset({"BGM", "RFF", "DTM", "LOC", "NAD", "CTA", "COM", "TDT", "DOC",
                         "CNT", "UNT"}) | _GR4


def parse_paxlst(data: bytes) -> Flight:
    """Parse one PAXLST interchange (UNA? UNB UNG? UNH ... UNT UNE? UNZ, IG 3.0 and 3.2).

    Raises :class:`PaxlstError` naming the segment and its position on anything malformed
    or beyond a bound; nothing in a refused message is partly returned."""
    segments, _syntax = _split(data)
    r = _Reader(segments)
    unb = r.take()
    if unb.tag != "UNB":  # _decode checked the bytes; this is the tokenized segment
        raise PaxlstError("an interchange starts with UNB", position=unb.position)
    prepared = _interchange_date(unb)
    unb_ref = unb.get(4)
    ung = r.take() if (s := r.peek()) is not None and s.tag == "UNG" else None
    unh = _expect(r.peek(), "UNH", "UNG" if ung else "UNB", r.last)
    r.take()
    first = r.i - 1
    version, part, final = _message_header(unh)
    flight = _message(r, unh, prepared, version, part, final, sender=unb.get(1),
                      recipient=unb.get(2), interchange_ref=unb_ref)
    unt = _expect(r.peek(), "UNT", "the message", r.last)
    r.take()
    declared = _count(unt, 0, "UNT's segment count")
    if declared != r.i - first:
        raise PaxlstError(f"UNT counts {declared} segments but the message UNH..UNT holds "
                          f"{r.i - first}", position=unt.position)
    if unt.get(1) != unh.get(0):
        raise PaxlstError(f"UNT's reference {unt.get(1)!r} is not UNH's {unh.get(0)!r}",
                          position=unt.position)
    nxt = r.peek()
    if nxt is not None and nxt.tag == "UNH":
        raise PaxlstError("the interchange holds a second message; send each PAXLST message "
                          "(each part of a flight) on its own", position=nxt.position)
    if ung is not None:
        une = _expect(r.peek(), "UNE", "UNT", r.last)
        r.take()
        if _count(une, 0, "UNE's message count") != 1 or une.get(1) != ung.get(4):
            raise PaxlstError("UNE does not close UNG (one message, UNG's reference)",
                              position=une.position)
    unz = _expect(r.peek(), "UNZ", "UNE" if ung else "UNT", r.last)
    r.take()
    if _count(unz, 0, "UNZ's count") != 1 or unz.get(1) != unb_ref:
        raise PaxlstError(f"UNZ does not close UNB (count 1, reference {unb_ref!r})",
                          position=unz.position)
    if (extra := r.peek()) is not None:
        raise PaxlstError("a segment follows UNZ, the end of the interchange",
                          position=extra.position)
    return flight


def _interchange_date(unb: _Seg) -> dt.datetime:
    """UNB S004 (IG 4.2): date YYMMDD (or CCYYMMDD) and time HHMM of preparation."""
    value, time = unb.get(3, 0), unb.get(3, 1)
    if _DIGITS.fullmatch(value) is None or len(value) not in (6, 8) or (
            time and (_DIGITS.fullmatch(time) is None or len(time) != 4)):
        raise PaxlstError(f"UNB's date of preparation {value}:{time} is not YYMMDD:HHMM",
                          position=unb.position, reason="bad_date")
    year = int(value[:-4]) + (2000 if len(value) == 6 else 0)
    try:
        return dt.datetime(year, int(value[-4:-2]), int(value[-2:]), int(time[:2] or 0),
                           int(time[2:] or 0))
    except ValueError:
        raise PaxlstError(f"UNB's date of preparation {value}:{time} is not a calendar date",
                          position=unb.position, reason="bad_date") from None


def _message_header(unh: _Seg) -> tuple[str, int | None, bool]:
    """UNH (IG 4.4): PAXLST:D:02B:UN:IATA or D:05B; S010 sequence of transfers (01:C, 02:F)."""
    if not unh.get(0):
        raise PaxlstError("UNH has no message reference (0062)", position=unh.position)
    if unh.get(1, 0) != "PAXLST":
        raise PaxlstError(f"the message is {unh.get(1, 0) or 'untyped'}, not PAXLST",
                          position=unh.position)
    version = _VERSIONS.get((unh.get(1, 1), unh.get(1, 2)))
    if version is None:
        raise PaxlstError(f"PAXLST version {unh.get(1, 1)}:{unh.get(1, 2)} is not one this "
                          "node reads (D:02B, D:05B)", position=unh.position)
    seq, first_last = unh.get(3, 0), unh.get(3, 1)
    if seq and _DIGITS.fullmatch(seq) is None:
        raise PaxlstError(f"UNH's sequence of transfers {seq!r} is not a number",
                          position=unh.position)
    if first_last not in ("", "C", "F"):
        raise PaxlstError(f"UNH's first and last transfer {first_last!r} is not C or F",
                          position=unh.position)
    return version, int(seq) if seq else None, first_last != "C"


def _message(r: _Reader, unh: _Seg, prepared: dt.datetime, version: str, part: int | None,
             final: bool, *, sender: str, recipient: str, interchange_ref: str) -> Flight:
    bgm = _expect(r.peek(), "BGM", "UNH", r.last)
    r.take()
    list_type = _LIST_TYPES.get(bgm.get(0))
    if list_type is None:
        raise PaxlstError(f"BGM document name code {bgm.get(0)!r} is neither 745 (passenger "
                          "list) nor 250 (crew list)", position=bgm.position)
    r.take_while(frozenset({"RFF", "DTM", "LOC"}))  # message reference and dates (D05B)
    while (s := r.peek()) is not None and s.tag == "NAD" and s.get(0) not in _ROLES:
        # Gr. 1, the reporting party (IG 4.6: NAD+MS); a traveller's NAD is Gr. 4's
        r.take()
        r.take_while(frozenset({"CTA", "COM"}))
    legs = []
    while (s := r.peek()) is not None and s.tag == "TDT":
        legs.append(_leg(r))
    if not legs:
        seg = r.peek()
        raise PaxlstError("a PAXLST message has at least one TDT (the flight) after BGM "
                          "and the reporting party", position=(seg or r.last).position)
    travellers: list[Traveller] = []
    while (s := r.peek()) is not None and s.tag == "NAD":
        if len(travellers) == MAX_TRAVELLERS:
            raise PaxlstError(f"the message holds more than {MAX_TRAVELLERS} travellers",
                              position=s.position, reason="paxlst_too_large")
        travellers.append(_traveller(r, len(travellers) + 1, list_type, prepared.year))
    seg = r.peek()
    if seg is not None and seg.tag == "CNT":  # IG 4.24
        r.take()
        qualifier = _COUNT_QUALIFIER[list_type]
        if seg.get(0, 0) != qualifier:
            raise PaxlstError(f"CNT qualifier {seg.get(0, 0)!r} should be {qualifier} in a "
                              f"{list_type.value} list", position=seg.position)
        declared = _count(seg, 0, "CNT's total", component=1)
        if declared != len(travellers):
            raise PaxlstError(f"CNT declares {declared} travellers but the message holds "
                              f"{len(travellers)}", position=seg.position)
        seg = r.peek()
    if seg is not None and seg.tag != "UNT":
        what = ("has no place in a PAXLST message" if seg.tag not in _IN_MESSAGE
                else "is out of place here (IG 3.0 message structure)")
        raise PaxlstError(f"{seg.tag} {what}", position=seg.position)
    return Flight(version=version, list_type=list_type, sender=sender, recipient=recipient,
                  interchange_ref=interchange_ref, message_ref=unh.get(0), prepared=prepared,
                  part=part, final_part=final, legs=tuple(legs), travellers=tuple(travellers))


def _leg(r: _Reader) -> Leg:
    """Gr. 2 TDT+20+UA123+++UA (IG 4.8) and Gr. 3 LOC+125/87 with DTM+189/232 (IG 4.9-4.10).
    LOC+92 (a place both of arrival and departure, multi-leg) counts as either."""
    tdt = r.take()
    if not tdt.get(1):
        raise PaxlstError("TDT has no flight identification (8028)", position=tdt.position)
    r.take_while(frozenset({"DTM"}))
    departure = arrival = ""
    dep_time = arr_time = None
    while (s := r.peek()) is not None and s.tag == "LOC":
        loc = r.take()
        code, place = loc.get(0), loc.get(1)
        dtms = r.take_while(frozenset({"DTM"}))
        when = next((_date_time(d, what=f"DTM+{d.get(0)}") for d in dtms
                     if d.get(0) in ("189", "232")), None)
        if code in ("125", "92") and not departure:
            departure, dep_time = place, when
        elif code in ("87", "92"):
            arrival, arr_time = place, when
    if not departure or not arrival:
        raise PaxlstError("the flight has no place of departure (LOC+125) and arrival "
                          "(LOC+87)", position=tdt.position)
    return Leg(flight=tdt.get(1), departure=departure, arrival=arrival,
               departure_time=dep_time, arrival_time=arr_time, position=tdt.position)


def _traveller(r: _Reader, index: int, list_type: ListType, pivot_year: int) -> Traveller:
    nad = r.take()
    role = _ROLES.get(nad.get(0))
    if role is None:
        raise PaxlstError(f"NAD party function {nad.get(0)!r} is not a traveller (FL, FM, DDU, "
                          "DDT)", position=nad.position)
    if role not in _ROLES_OF[list_type]:
        raise PaxlstError(f"a {role.value.replace('_', ' ')} (NAD+{nad.get(0)}) in a "
                          f"{list_type.value} list (BGM)", position=nad.position)
    family = nad.get(3, 0)
    if not family:
        raise PaxlstError("the traveller has no family name (NAD C080 3036)",
                          position=nad.position)
    given = " ".join(c.strip() for c in nad.elements[3][1:] if c.strip())
    sex = Sex.UNSPECIFIED
    dob: PartialDate | None = None
    dob_seg: _Seg | None = None
    nationality, nat_seg = "", None
    embark = debark = ""
    for seg in r.take_while(_GR4):
        if seg.tag == "ATT" and seg.get(0) == "2":  # IG 4.12
            code = seg.get(2).upper()
            if code not in _SEX:
                raise PaxlstError(f"ATT sex {code!r} is not M, F, U or X",
                                  position=seg.position)
            sex = _SEX[code]
        elif seg.tag == "DTM" and seg.get(0, 0) == "329":  # IG 4.13
            if dob_seg is not None:
                raise PaxlstError("a second date of birth (DTM+329)", position=seg.position)
            dob_seg = seg
            year, month, day, _ = _parse_date(seg, what="date of birth", pivot_year=pivot_year,
                                              partial=True)
            try:
                dob = PartialDate(year, month, day)
            except InvalidInput as exc:
                raise PaxlstError(f"date of birth {seg.get(0, 1)!r}: {exc}",
                                  position=seg.position, reason=exc.reason) from None
        elif seg.tag == "LOC" and seg.get(0) in ("178", "179"):  # IG 4.17
            if seg.get(0) == "178":
                embark = seg.get(1)
            else:
                debark = seg.get(1)
        elif seg.tag == "NAT":  # IG 4.19
            if nat_seg is not None:
                raise PaxlstError("a second nationality (NAT)", position=seg.position)
            nationality, nat_seg = seg.get(1).upper(), seg
            _checked(seg, validate_state, nationality, "nationality")
    documents: list[TravelDocument] = []
    while (s := r.peek()) is not None and s.tag == "DOC":
        if len(documents) == MAX_DOCUMENTS_PER_TRAVELLER:
            raise PaxlstError(f"the traveller holds more than {MAX_DOCUMENTS_PER_TRAVELLER} "
                              "documents", position=s.position, reason="paxlst_too_large")
        documents.append(_document(r))
    notes: list[str] = []
    if not nationality:
        passport = next((d for d in documents if d.doc_type.startswith("P")
                         and d.issuing_state), None)
        if passport is not None:
            nationality = passport.issuing_state
            notes.append(f"nationality {nationality} taken from the passport's issuing state "
                         "(no NAT)")
    person: PersonQuery | None = None
    why = ""
    if dob is None:
        why = "no date of birth (DTM+329)"
    elif not nationality:
        why = "no nationality (NAT) and no passport"
    else:
        try:
            person = PersonQuery(family_name=family, given_names=given, date_of_birth=dob,
                                 nationality=nationality, sex=sex)
        except InvalidInput as exc:
            raise PaxlstError(str(exc), position=nad.position, reason=exc.reason) from None
    return Traveller(index=index, role=role, family_name=family, given_names=given, sex=sex,
                     date_of_birth=dob, nationality=nationality, embarkation=embark,
                     debarkation=debark, documents=tuple(documents), position=nad.position,
                     person=person, person_not_checked=why, notes=tuple(notes))


def _document(r: _Reader) -> TravelDocument:
    """Gr. 5 (IG 4.21-4.23): DOC+P:110:111+MB140241, DTM+36 expiry, LOC+91 issuing state."""
    doc = r.take()
    doc_type, number = doc.get(0, 0).upper(), doc.get(1, 0).upper()
    if not doc_type or not number:
        raise PaxlstError("DOC needs a document type (1001) and number (1004)",
                          position=doc.position)
    expiry: dt.date | None = None
    issuing, loc_seg = "", None
    for seg in r.take_while(_GR5):
        if seg.tag == "DTM" and seg.get(0, 0) == "36":
            expiry = _calendar_date(seg, what="document expiry date")
        elif seg.tag == "LOC" and seg.get(0) == "91":
            issuing, loc_seg = seg.get(1).upper(), seg
    if loc_seg is not None:
        _checked(loc_seg, validate_state, issuing)
    why = ""
    try:
        validate_doc_type(doc_type)
    except InvalidInput:
        why = f"document type {doc_type} is not an ICAO 9303 travel document"
    if not why and not issuing:
        why = "no issuing state (LOC+91)"
    query: DocumentQuery | None = None
    if why:
        _checked(doc, validate_doc_number, number)
    else:
        try:
            query = DocumentQuery(number=number, issuing_state=issuing, doc_type=doc_type)
        except InvalidInput as exc:
            raise PaxlstError(str(exc), position=doc.position, reason=exc.reason) from None
    return TravelDocument(doc_type=doc_type, number=number, issuing_state=issuing,
                          expiry=expiry, position=doc.position, query=query, not_checked=why)


# --- items, batches, answers ----------------------------------------------------------------


def flight_queries(flight: Flight) -> list[FlightItem]:
    """Every item to ask about, traveller by traveller: the person (when checked), then each
    checked document.  One traveller may thus be two or more items of a batch."""
    items: list[FlightItem] = []
    for t in flight.travellers:
        if t.person is not None:
            items.append(FlightItem(t.index, ItemKind.PERSON, t.person, "person"))
        for d in t.documents:
            if d.query is not None:
                items.append(FlightItem(t.index, ItemKind.DOCUMENT, d.query,
                                        f"document {d.doc_type} {d.number} {d.issuing_state}"))
    return items


def flight_batches(items: Sequence[FlightItem], max_batch: int) -> list[list[FlightItem]]:
    """Split ``items`` into batches of at most ``max_batch``, in order, keeping each
    traveller's items in one batch unless they alone exceed it."""
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1")
    batches: list[list[FlightItem]] = []
    current: list[FlightItem] = []
    i = 0
    while i < len(items):
        j = i
        while j < len(items) and items[j].traveller == items[i].traveller:
            j += 1
        group = list(items[i:j])
        if current and len(current) + len(group) > max_batch:
            batches.append(current)
            current = []
        while len(group) > max_batch:
            batches.append(group[:max_batch])
            group = group[max_batch:]
        current.extend(group)
        i = j
    if current:
        batches.append(current)
    return batches


def traveller_results(flight: Flight, items: Sequence[FlightItem],
                      results: Sequence[ItemResult]) -> list[TravellerResult]:
    """Each traveller with the answers to their items (``results`` in ``items`` order, the
    batches' answers one after the other) and what was not checked, in message order."""
    if len(items) != len(results):
        raise ValueError("one result per item is needed")
    by_traveller: dict[int, list[tuple[FlightItem, ItemResult]]] = {}
    for item, result in zip(items, results, strict=True):
        by_traveller.setdefault(item.traveller, []).append((item, result))
    out = []
    for t in flight.travellers:
        skipped = ([f"person not checked: {t.person_not_checked}"] if t.person is None else [])
        skipped += [f"document {d.doc_type} {d.number} not checked: {d.not_checked}"
                    for d in t.documents if d.query is None]
        out.append(TravellerResult(t, tuple(by_traveller.get(t.index, ())), tuple(skipped)))
    return out
