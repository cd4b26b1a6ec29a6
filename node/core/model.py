"""Typed values of the protocol: queries, requests, answers and decisions.

Constructors validate: an instance that exists is within every bound.  The
core raises :class:`~node.core.errors.InvalidInput` on anything else.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from node.core import limits
from node.core.countries import NATIONALITY_ONLY, is_icao_code, is_icao_issuer
from node.core.errors import InvalidInput

__all__ = [
    "ActionCode",
    "Decision",
    "DocumentQuery",
    "ItemResult",
    "LookupAnswer",
    "LookupRequest",
    "Outcome",
    "PartialDate",
    "PersonQuery",
    "PolicyInput",
    "Purpose",
    "QueryKind",
    "RequestHeader",
    "Sex",
    "validate_doc_number",
    "validate_doc_type",
    "validate_state",
]


class QueryKind(StrEnum):
    DOCUMENT = "document"
    PERSON = "person"
    BATCH = "batch"


class Outcome(StrEnum):
    NO_HIT = "no_hit"
    HIT = "hit"


class ActionCode(StrEnum):
    """What the owner asks the border guard to do on a hit (as SIS alerts do)."""

    REFUSE_ENTRY = "refuse_entry"
    ARREST = "arrest"
    SEIZE_DOCUMENT = "seize_document"
    INFORM = "inform"
    MONITOR = "monitor"


class Sex(StrEnum):
    MALE = "M"
    FEMALE = "F"
    UNSPECIFIED = "X"


class Purpose(StrEnum):
    """Purposes a request may state.  Agreements in policy data say which are allowed."""

    BORDER_CHECK = "border_check"
    VISA_APPLICATION = "visa_application"
    MIGRATION_CONTROL = "migration_control"
    CRIMINAL_INVESTIGATION = "criminal_investigation"
    COUNTER_TERRORISM = "counter_terrorism"


_DOC_NUMBER = re.compile(r"[A-Z0-9]+")
_DOC_TYPE = re.compile(r"[PIACV][A-Z0-9]?")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")
#: What validate_doc_number and validate_doc_type accept, as one match each.
_doc_number_ok = re.compile(rf"[A-Z0-9]{{1,{limits.MAX_DOC_NUMBER_LEN}}}").fullmatch
_doc_type_ok = _DOC_TYPE.fullmatch
#: Besides letters (any script, Unicode L*), combining marks (M*), spaces (Zs)
#: and hyphens/dashes (Pd), a name may hold: dots (Catalan ·, Japanese ・), the
#: apostrophe family that keyboards put for Uzbek oʻ, gʻ and the tutuq belgisi ʼ
#: (REFERENCE.md "Uzbek Latin": U+02BB, U+02BC, ', ‘ ’, `, and the look-alikes ‛ ´ ′ ＇ ՚),
#: the double marks romanisations write for Ъ (BGN/PCGN ” ″, ISO 9 ʺ, typed "), the
#: joiners Persian and Indic names need (ZWNJ, ZWJ), and the ICAO 9303 filler
#: ``<`` (Part 3, 4.6) of names copied from a machine-readable zone.
_NAME_DOTS = frozenset(".\u00b7\u2027\u30fb")
_NAME_APOSTROPHES = frozenset("'`\u00b4\u02b9\u02bb\u02bc\u02bd\u02c8\u055a\u2018\u2019\u201b"
                              "\u2032\uff07\"\u02ba\u02ee\u201c\u201d\u2033")
_NAME_EXTRA = _NAME_DOTS | _NAME_APOSTROPHES | frozenset("\u200c\u200d<")


def _require(cond: bool, message: str, reason: str = "invalid_argument") -> None:
    if not cond:
        raise InvalidInput(message, reason=reason)


def validate_state(code: str, what: str = "issuing state") -> str:
    """An issuing state, or a node's or crossing point's country: ICAO 9303 codes except
    the nationality-only XXA, XXB, XXC and XXX (no state issues documents under them)."""
    if code in NATIONALITY_ONLY:
        raise InvalidInput(f"{what} {code} is a nationality code (stateless, refugee or "
                           "unspecified) that never names an issuing state",
                           reason="bad_country")
    _require(is_icao_code(code), f"{what} must be an ICAO 9303 three-letter code", "bad_country")
    return code


def validate_nationality(code: str) -> str:
    _require(is_icao_code(code), "nationality must be an ICAO 9303 three-letter code",
             "bad_country")
    return code


def validate_doc_number(number: str) -> str:
    _require(
        0 < len(number) <= limits.MAX_DOC_NUMBER_LEN and _DOC_NUMBER.fullmatch(number) is not None,
        f"document number must be 1-{limits.MAX_DOC_NUMBER_LEN} characters A-Z, 0-9",
        "bad_document_number",
    )
    return number


def validate_doc_type(doc_type: str) -> str:
    _require(
        _DOC_TYPE.fullmatch(doc_type) is not None,
        "document type must be an ICAO 9303 type code such as P, I, A, C or V",
        "bad_document_type",
    )
    return doc_type


def validate_id(value: str, what: str) -> str:
    _require(
        0 < len(value) <= limits.MAX_ID_LEN and _ID.fullmatch(value) is not None,
        f"{what} must be 1-{limits.MAX_ID_LEN} characters of A-Z a-z 0-9 . _ : @ -",
        "bad_identifier",
    )
    return value


def _name_char_problem(ch: str, pos: int) -> str | None:
    """Why ``ch`` (at 1-based ``pos``) cannot be part of a name, or None when it can."""
    cat = unicodedata.category(ch)
    if cat[0] in "LM" or cat in ("Zs", "Pd") or ch in _NAME_EXTRA:
        return None
    code = f"U+{ord(ch):04X}"
    if cat == "Cc" or cat in ("Zl", "Zp"):
        return f"a control character ({code}) at position {pos}"
    if cat[0] == "N":
        return f"a digit ({ch!r}, {code}) at position {pos}; a name has no digits"
    if cat == "Cf":
        return f"an invisible formatting character ({code}) at position {pos}"
    if cat in ("Cs", "Co", "Cn"):
        return f"an unassigned or private-use character ({code}) at position {pos}"
    return (f"{ch!r} ({code} {unicodedata.name(ch, 'symbol')}) at position {pos}, "
            "which is not part of a name")


def validate_name(value: str, what: str, *, required: bool) -> str:
    """A name as written, NFC and stripped; raises ``bad_name`` naming the first problem.

    Accepts every script's letters and marks, spaces, hyphens, dots and the
    apostrophe family (see ``_NAME_EXTRA``); refuses control characters,
    digits, symbols and values longer than ``limits.MAX_NAME_LEN``.
    """
    value = unicodedata.normalize("NFC", value).strip()
    if not value:
        _require(not required, f"{what} is required", "bad_name")
        return value
    _require(len(value) <= limits.MAX_NAME_LEN, f"{what} is longer than {limits.MAX_NAME_LEN}",
             "bad_name")
    for pos, ch in enumerate(value, start=1):
        problem = _name_char_problem(ch, pos)
        if problem is not None:
            raise InvalidInput(f"{what} holds {problem}", reason="bad_name")
    return value


@dataclass(frozen=True, slots=True)
class PartialDate:
    """A date of birth known to year, month or day precision (ICAO 9303 allows unknown parts)."""

    year: int
    month: int | None = None
    day: int | None = None

    def __post_init__(self) -> None:
        _require(1850 <= self.year <= 2200, "year of birth out of range", "bad_date")
        _require(self.month is None or 1 <= self.month <= 12, "month out of range", "bad_date")
        _require(self.day is None or (self.month is not None and 1 <= self.day <= 31),
                 "day out of range or given without a month", "bad_date")
        if self.day is not None and self.month is not None:
            import calendar

            _require(self.day <= calendar.monthrange(self.year, self.month)[1],
                     "day does not exist in that month", "bad_date")

    @classmethod
    def parse(cls, text: str) -> PartialDate:
        """Parse ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``; ``00`` means unknown."""
        m = re.fullmatch(r"([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?", text.strip())
        _require(m is not None, "date must be YYYY, YYYY-MM or YYYY-MM-DD", "bad_date")
        assert m is not None
        year = int(m.group(1))
        month = int(m.group(2)) if m.group(2) and m.group(2) != "00" else None
        day = int(m.group(3)) if m.group(3) and m.group(3) != "00" and month else None
        return cls(year, month, day)

    def __str__(self) -> str:
        if self.month is None:
            return f"{self.year:04d}"
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"

    def compatible(self, other: PartialDate) -> bool:
        """True when both dates could be the same day at their shared precision."""
        if self.year != other.year:
            return False
        if self.month is None or other.month is None:
            return True
        if self.month != other.month:
            return False
        return self.day is None or other.day is None or self.day == other.day


@dataclass(frozen=True, slots=True)
class DocumentQuery:
    number: str
    issuing_state: str
    doc_type: str = "P"

    def __post_init__(self) -> None:
        # The usual, valid query in one expression (a batch holds hundreds); anything else
        # goes through the validators one by one for its precise refusal.
        if (_doc_number_ok(self.number) is None or not is_icao_issuer(self.issuing_state)
                or _doc_type_ok(self.doc_type) is None):
            validate_doc_number(self.number)
            validate_state(self.issuing_state)
            validate_doc_type(self.doc_type)

    kind = QueryKind.DOCUMENT
    data_types = ("document_number", "issuing_state", "document_type")


@dataclass(frozen=True, slots=True)
class PersonQuery:
    """A person as written on their document, in the original script."""

    family_name: str
    given_names: str
    date_of_birth: PartialDate
    nationality: str
    sex: Sex = Sex.UNSPECIFIED
    patronymic: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "family_name", validate_name(self.family_name, "family name",
                                                              required=True))
        object.__setattr__(self, "given_names", validate_name(self.given_names, "given names",
                                                              required=False))
        object.__setattr__(self, "patronymic", validate_name(self.patronymic, "patronymic",
                                                             required=False))
        validate_nationality(self.nationality)

    kind = QueryKind.PERSON
    data_types = ("name", "date_of_birth", "nationality", "sex")


Query = DocumentQuery | PersonQuery


#: Every purpose's value (a StrEnum member equals and hashes as its value).
_PURPOSES = frozenset(p.value for p in Purpose)


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """Who asks, why, when; signed as part of the payload."""

    requester: str
    key_id: str
    operator: str
    purpose: str
    legal_basis: str
    case_ref: str
    issued_at_ms: int
    nonce: bytes

    def __post_init__(self) -> None:
        validate_id(self.requester, "requester node id")
        validate_id(self.key_id, "key id")
        validate_id(self.operator, "operator id")
        _require(self.purpose in _PURPOSES, "purpose is not one this protocol knows",
                 "unknown_purpose")
        _require(0 < len(self.legal_basis) <= limits.MAX_LEGAL_BASIS_LEN,
                 f"legal basis is required (at most {limits.MAX_LEGAL_BASIS_LEN} characters)",
                 "bad_legal_basis")
        _require(0 < len(self.case_ref) <= limits.MAX_CASE_REF_LEN,
                 f"case reference is required (at most {limits.MAX_CASE_REF_LEN} characters)",
                 "bad_case_ref")
        _require(self.issued_at_ms > 0, "issued-at time is required", "bad_timestamp")
        _require(limits.MIN_NONCE_LEN <= len(self.nonce) <= limits.MAX_NONCE_LEN,
                 f"nonce must be {limits.MIN_NONCE_LEN}-{limits.MAX_NONCE_LEN} bytes", "bad_nonce")


@dataclass(frozen=True, slots=True)
class LookupRequest:
    header: RequestHeader
    kind: QueryKind
    items: tuple[Query, ...]

    def __post_init__(self) -> None:
        _require(len(self.items) > 0, "a lookup needs at least one item", "empty_request")
        _require(len(self.items) <= limits.MAX_BATCH_ITEMS_HARD,
                 f"a batch may hold at most {limits.MAX_BATCH_ITEMS_HARD} items",
                 "batch_too_large")
        if self.kind is not QueryKind.BATCH:
            _require(len(self.items) == 1, "a single lookup holds exactly one item",
                     "invalid_argument")
            _require(self.items[0].kind is self.kind, "item does not match the query kind",
                     "invalid_argument")

    @property
    def data_types(self) -> tuple[str, ...]:
        """The data types of the items' kinds, in the order the kinds first appear (read
        per kind of item, not per item: a batch holds hundreds)."""
        seen: dict[str, None] = {}
        classes: dict[type[Query], None] = dict.fromkeys(map(type, self.items))
        for cls in classes:
            for t in cls.data_types:
                seen[t] = None
        return tuple(seen)

    @property
    def datasets(self) -> tuple[str, ...]:
        classes: set[type[Query]] = set(map(type, self.items))
        kinds = {cls.kind for cls in classes}
        return tuple(sorted("documents" if k is QueryKind.DOCUMENT else "persons" for k in kinds))


@dataclass(frozen=True, slots=True)
class ItemResult:
    """One answer per item, in request order.  Only policy-disclosed fields are filled."""

    index: int
    outcome: Outcome
    reference: str = ""
    action: ActionCode | None = None
    contact: str = ""
    #: The agency the alert came from, only where the owner's policy discloses it.
    source_agency: str = ""


@dataclass(frozen=True, slots=True)
class LookupAnswer:
    responder: str
    key_id: str
    request_digest: bytes
    issued_at_ms: int
    results: tuple[ItemResult, ...]
    audit_seq: int = 0

    @property
    def hits(self) -> int:
        return sum(1 for r in self.results if r.outcome is Outcome.HIT)


@dataclass(frozen=True, slots=True)
class PolicyInput:
    """Exactly what the policy reads.  Two equal inputs always get the same decision."""

    requester_node: str
    requester_country: str
    requester_agency: str
    operator: str
    purpose: str
    legal_basis: str
    case_ref: str
    query_kind: str
    datasets: tuple[str, ...]
    data_types: tuple[str, ...]
    batch_size: int
    items_today: int
    time_ms: int
    responder_node: str

    def as_document(self) -> dict[str, Any]:
        return {
            "requester": {
                "node": self.requester_node,
                "country": self.requester_country,
                "agency": self.requester_agency,
                "operator": self.operator,
            },
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "case_ref": self.case_ref,
            "query": {
                "kind": self.query_kind,
                "datasets": list(self.datasets),
                "data_types": list(self.data_types),
                "batch_size": self.batch_size,
            },
            "usage": {"items_today": self.items_today},
            "time_ms": self.time_ms,
            "responder": {"node": self.responder_node},
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The policy's verdict.  ``disclose`` names the answer fields that may leave the node."""

    allow: bool
    reasons: tuple[str, ...] = ()
    disclose: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if not self.allow and not self.reasons:
            object.__setattr__(self, "reasons", ("policy_denied",))


@dataclass(frozen=True, slots=True)
class Refusal:
    """A signed refusal: the responder verified who asked, then said no."""

    responder: str
    key_id: str
    request_digest: bytes
    issued_at_ms: int
    status: str
    reason: str
    reasons: tuple[str, ...] = ()
    audit_seq: int = 0
