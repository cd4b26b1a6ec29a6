"""Typed values for border crossings: records, BCPs, questions and answers.

Constructors validate: an instance that exists is within every bound (STYLE.md 7, 8);
anything else raises :class:`~node.core.errors.InvalidInput` with a stable reason.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

from node.core.errors import InvalidInput
from node.core.model import DocumentQuery, PartialDate, PersonQuery, RequestHeader, validate_id

__all__ = [
    "EARLIEST_MS",
    "LATEST_MS",
    "MAX_QUESTIONS_HARD",
    "MAX_WINDOW_MS",
    "CrossingAnswer",
    "CrossingEvent",
    "CrossingQuestion",
    "CrossingRecord",
    "CrossingRequest",
    "Direction",
    "Subject",
    "TravelMode",
    "validate_bcp_code",
]

#: A request holds at most this many questions, whatever an agreement says.
MAX_QUESTIONS_HARD = 1000
#: No question's window may be longer than this (31 days), whatever an agreement says.
MAX_WINDOW_MS = 31 * 24 * 3600 * 1000
#: Crossing times outside [2000-01-01, 2100-01-01) are refused as nonsense.
EARLIEST_MS = 946_684_800_000
LATEST_MS = 4_102_444_800_000

_BCP = re.compile(r"[A-Z]{3}-[A-Z0-9][A-Z0-9-]{0,30}")


def _bad(message: str, reason: str) -> InvalidInput:
    return InvalidInput(message, reason=reason)


def validate_bcp_code(code: str, what: str = "BCP code") -> str:
    """``KAZ-KORDAI``: the country's ICAO code, a hyphen, then A-Z 0-9 - (at most 35)."""
    if _BCP.fullmatch(code) is None:
        raise _bad(f"{what} must look like KAZ-KORDAI (country code, hyphen, A-Z 0-9 -)",
                   "bad_bcp_code")
    return code


def _check_time(ms: int, what: str) -> int:
    if not EARLIEST_MS <= ms < LATEST_MS:
        raise _bad(f"{what} is not a time between 2000 and 2100", "bad_time")
    return ms


class CrossingEvent(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"
    REFUSED_ENTRY = "refused_entry"


class Direction(StrEnum):
    """Seen from the country whose BCP recorded the crossing."""

    ENTRY = "entry"
    EXIT = "exit"


class TravelMode(StrEnum):
    ROAD = "road"
    RAIL = "rail"
    AIR = "air"
    FOOT = "foot"


Subject = DocumentQuery | PersonQuery


def fold(name: str) -> str:
    """Names compare after NFC normalisation, case folding and collapsing spaces."""
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


@dataclass(frozen=True, slots=True)
class CrossingRecord:
    """One crossing as this node's own BCP recorded it."""

    record_id: str
    event: CrossingEvent
    bcp: str
    crossed_at_ms: int
    mode: TravelMode
    document: DocumentQuery
    family_name: str = ""
    given_names: str = ""
    date_of_birth: PartialDate | None = None
    nationality: str = ""

    def __post_init__(self) -> None:
        validate_id(self.record_id, "record_id")
        validate_bcp_code(self.bcp)
        _check_time(self.crossed_at_ms, "crossing time")
        if self.given_names and not self.family_name:
            raise _bad("given names without a family name", "bad_name")
        if self.family_name:  # validated like a person query
            PersonQuery(family_name=self.family_name, given_names=self.given_names,
                        date_of_birth=self.date_of_birth or PartialDate(1900),
                        nationality=self.nationality or self.document.issuing_state)

    @property
    def direction(self) -> Direction:
        return Direction.EXIT if self.event is CrossingEvent.EXIT else Direction.ENTRY

    @property
    def crossed(self) -> bool:
        """A refused entry is recorded, but the traveller did not cross."""
        return self.event is not CrossingEvent.REFUSED_ENTRY

    def matches(self, subject: Subject) -> bool:
        if isinstance(subject, DocumentQuery):
            d = self.document
            return (d.number, d.issuing_state, d.doc_type) == (
                subject.number, subject.issuing_state, subject.doc_type)
        if not self.family_name or fold(self.family_name) != fold(subject.family_name):
            return False
        if subject.given_names and fold(self.given_names) != fold(subject.given_names):
            return False
        if self.date_of_birth is None or not self.date_of_birth.compatible(
                subject.date_of_birth):
            return False
        return (self.nationality or self.document.issuing_state) == subject.nationality


@dataclass(frozen=True, slots=True)
class CrossingQuestion:
    """Did ``subject`` cross at ``bcp`` (or any BCP of ``section``) in ``direction``,
    between ``window_start_ms`` and ``window_end_ms`` (both inclusive)?"""

    subject: Subject
    direction: Direction
    window_start_ms: int
    window_end_ms: int
    bcp: str = ""
    section: str = ""

    def __post_init__(self) -> None:
        if bool(self.bcp) == bool(self.section):
            raise _bad("a question names exactly one of a BCP or a border section",
                       "bad_location")
        if self.bcp:
            validate_bcp_code(self.bcp)
        else:
            validate_bcp_code(self.section, "border section")
        _check_time(self.window_start_ms, "window start")
        _check_time(self.window_end_ms, "window end")
        if self.window_end_ms < self.window_start_ms:
            raise _bad("the window ends before it starts", "bad_window")
        if self.window_end_ms - self.window_start_ms > MAX_WINDOW_MS:
            raise _bad("the window is longer than the protocol allows (31 days)",
                       "window_too_long")

    @property
    def window_ms(self) -> int:
        return self.window_end_ms - self.window_start_ms

    @property
    def dataset(self) -> str:
        return "documents" if isinstance(self.subject, DocumentQuery) else "persons"


@dataclass(frozen=True, slots=True)
class CrossingRequest:
    header: RequestHeader
    questions: tuple[CrossingQuestion, ...]

    def __post_init__(self) -> None:
        if not self.questions:
            raise _bad("a crossing request needs at least one question", "empty_request")
        if len(self.questions) > MAX_QUESTIONS_HARD:
            raise _bad(f"a crossing request may hold at most {MAX_QUESTIONS_HARD} questions",
                       "batch_too_large")


@dataclass(frozen=True, slots=True)
class CrossingAnswer:
    index: int
    confirmed: bool
    bcp: str = ""
    crossed_at_ms: int = 0
    resolution_minutes: int = 0


@dataclass(frozen=True, slots=True)
class CrossingResponse:
    responder: str
    key_id: str
    request_digest: bytes
    issued_at_ms: int
    answers: tuple[CrossingAnswer, ...]
    audit_seq: int = 0

    @property
    def confirmed(self) -> int:
        return sum(1 for a in self.answers if a.confirmed)
