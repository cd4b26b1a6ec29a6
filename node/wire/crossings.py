"""Protobuf <-> core values for crossings and follow-ups (proto/bxnode/v1/crossings.proto).

Decoding is strict, as in :mod:`node.wire.convert`: missing fields, unknown enum
values and out-of-bound values raise :class:`~node.core.errors.InvalidInput`.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from node.core import limits
from node.core.envelope import Envelope
from node.core.errors import InvalidInput
from node.core.model import DocumentQuery, RequestHeader, validate_id
from node.crossings.model import (
    CrossingAnswer,
    CrossingQuestion,
    CrossingRequest,
    CrossingResponse,
    Direction,
    TravelMode,
)
from node.wire import convert
from node.wire._gen import crossings_pb2 as cpb

__all__ = [
    "CROSSING_REQUEST_TYPE",
    "CROSSING_RESPONSE_TYPE",
    "FOLLOWUP_DECISION_TYPE",
    "FOLLOWUP_FILE_TYPE",
    "FOLLOWUP_GET_TYPE",
    "FOLLOWUP_STATUS_TYPE",
    "MAX_FIELDS",
    "FollowUpDecision",
    "FollowUpFile",
    "FollowUpGet",
    "FollowUpStatus",
    "cpb",
]

CROSSING_REQUEST_TYPE = "application/vnd.bxnode.v1.crossing-request+proto"
CROSSING_RESPONSE_TYPE = "application/vnd.bxnode.v1.crossing-response+proto"
FOLLOWUP_FILE_TYPE = "application/vnd.bxnode.v1.followup-file+proto"
FOLLOWUP_GET_TYPE = "application/vnd.bxnode.v1.followup-get+proto"
FOLLOWUP_STATUS_TYPE = "application/vnd.bxnode.v1.followup-status+proto"
FOLLOWUP_DECISION_TYPE = "application/vnd.bxnode.v1.followup-decision+proto"

#: A follow-up asks for at most this many fields; a field name is at most 64 characters.
MAX_FIELDS = 32

_DIR_TO_PB = {Direction.ENTRY: cpb.CROSSING_DIRECTION_ENTRY,
              Direction.EXIT: cpb.CROSSING_DIRECTION_EXIT}
_DIR_FROM_PB = {v: k for k, v in _DIR_TO_PB.items()}
MODE_TO_PB = {TravelMode.ROAD: cpb.TRAVEL_MODE_ROAD, TravelMode.RAIL: cpb.TRAVEL_MODE_RAIL,
              TravelMode.AIR: cpb.TRAVEL_MODE_AIR, TravelMode.FOOT: cpb.TRAVEL_MODE_FOOT}
MODE_FROM_PB = {v: k for k, v in MODE_TO_PB.items()}
STATES = {"pending": cpb.FOLLOW_UP_STATE_PENDING, "approved": cpb.FOLLOW_UP_STATE_APPROVED,
          "denied": cpb.FOLLOW_UP_STATE_DENIED}
_STATE_FROM_PB = {v: k for k, v in STATES.items()}


def _bad(message: str, reason: str = "malformed_payload") -> InvalidInput:
    return InvalidInput(message, reason=reason)


def _parse(cls: type, payload: bytes, what: str) -> object:
    if len(payload) > limits.MAX_ENVELOPE_BYTES:
        raise _bad(f"{what} payload too large", "payload_too_large")
    msg = cls()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise _bad(f"payload is not a valid {what}") from exc
    return msg


def _header(msg: object) -> RequestHeader:
    if not msg.HasField("header"):  # type: ignore[attr-defined]
        raise _bad("request payload has no header")
    return convert.header_from_pb(msg.header)  # type: ignore[attr-defined]


# --- crossings ------------------------------------------------------------------------------


def encode_crossing_request(req: CrossingRequest) -> bytes:
    msg = cpb.CrossingRequestPayload(header=convert.header_to_pb(req.header))
    for q in req.questions:
        m = msg.questions.add(bcp=q.bcp, section=q.section, direction=_DIR_TO_PB[q.direction],
                              window_start_ms=q.window_start_ms, window_end_ms=q.window_end_ms)
        if isinstance(q.subject, DocumentQuery):
            m.document.CopyFrom(convert.pb.DocumentQuery(
                number=q.subject.number, issuing_state=q.subject.issuing_state,
                document_type=q.subject.doc_type))
        else:
            m.person.CopyFrom(convert._person_to_pb(q.subject))
    return bytes(msg.SerializeToString())


def decode_crossing_request(payload: bytes, *, max_questions: int) -> CrossingRequest:
    msg = _parse(cpb.CrossingRequestPayload, payload, "CrossingRequestPayload")
    assert isinstance(msg, cpb.CrossingRequestPayload)
    header = _header(msg)
    if len(msg.questions) > max_questions:
        raise InvalidInput(f"a crossing request may hold at most {max_questions} questions; "
                           f"this one has {len(msg.questions)}", reason="batch_too_large")
    questions = []
    for m in msg.questions:
        which = m.WhichOneof("subject")
        subject: DocumentQuery | object
        if which == "document":
            subject = DocumentQuery(number=m.document.number,
                                    issuing_state=m.document.issuing_state,
                                    doc_type=m.document.document_type)
        elif which == "person":
            subject = convert._person_from_pb(m.person)
        else:
            raise _bad("a question names no document or person", "invalid_argument")
        if m.direction not in _DIR_FROM_PB:
            raise _bad("a question needs a direction (entry or exit)", "bad_direction")
        questions.append(CrossingQuestion(
            subject=subject,
            direction=_DIR_FROM_PB[m.direction], window_start_ms=m.window_start_ms,
            window_end_ms=m.window_end_ms, bcp=m.bcp, section=m.section))
    return CrossingRequest(header=header, questions=tuple(questions))


def encode_crossing_response(r: CrossingResponse) -> bytes:
    msg = cpb.CrossingResponsePayload(responder=r.responder, key_id=r.key_id,
                                      request_digest=r.request_digest,
                                      issued_at_ms=r.issued_at_ms, audit_seq=r.audit_seq)
    for a in r.answers:
        msg.answers.add(index=a.index, outcome=cpb.CROSSING_OUTCOME_CONFIRMED if a.confirmed
                        else cpb.CROSSING_OUTCOME_NOT_FOUND, bcp=a.bcp,
                        crossed_at_ms=a.crossed_at_ms, resolution_minutes=a.resolution_minutes)
    return bytes(msg.SerializeToString())


def decode_crossing_response(payload: bytes) -> CrossingResponse:
    msg = _parse(cpb.CrossingResponsePayload, payload, "CrossingResponsePayload")
    assert isinstance(msg, cpb.CrossingResponsePayload)
    answers = []
    for a in msg.answers:
        if a.outcome not in (cpb.CROSSING_OUTCOME_CONFIRMED, cpb.CROSSING_OUTCOME_NOT_FOUND):
            raise _bad("an answer has no outcome")
        answers.append(CrossingAnswer(index=a.index,
                                      confirmed=a.outcome == cpb.CROSSING_OUTCOME_CONFIRMED,
                                      bcp=a.bcp, crossed_at_ms=a.crossed_at_ms,
                                      resolution_minutes=a.resolution_minutes))
    return CrossingResponse(responder=msg.responder, key_id=msg.key_id,
                            request_digest=msg.request_digest, issued_at_ms=msg.issued_at_ms,
                            answers=tuple(answers), audit_seq=msg.audit_seq)


# --- follow-ups -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FollowUpFile:
    header: RequestHeader
    hit_request_digest: bytes
    hit_item_index: int
    hit_reference: str
    fields: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.hit_request_digest) != 32:
            raise _bad("hit_request_digest must be a 32-byte SHA-256 digest",
                       "bad_hit_reference")
        if self.hit_reference:
            validate_id(self.hit_reference, "hit reference")
        if not self.fields:
            raise _bad("a follow-up asks for at least one field", "no_fields_requested")
        if len(self.fields) > MAX_FIELDS:
            raise _bad(f"a follow-up asks for at most {MAX_FIELDS} fields", "too_many_fields")
        for f in self.fields:
            if not (0 < len(f) <= 64 and f.replace("_", "").isalpha() and f.islower()
                    and f.isascii()):
                raise _bad("field names are lower-case words joined by _", "unknown_field")


@dataclass(frozen=True, slots=True)
class FollowUpGet:
    header: RequestHeader
    followup_id: str

    def __post_init__(self) -> None:
        validate_id(self.followup_id, "follow-up id")


@dataclass(frozen=True, slots=True)
class FollowUpDecision:
    responder: str
    key_id: str
    request_digest: bytes
    issued_at_ms: int
    audit_seq: int
    followup_id: str
    state: str  # approved | denied
    fields: dict[str, str]
    reason: str
    hit_reference: str


@dataclass(frozen=True, slots=True)
class FollowUpStatus:
    responder: str
    key_id: str
    request_digest: bytes
    issued_at_ms: int
    audit_seq: int
    followup_id: str
    state: str  # pending | approved | denied
    deadline_ms: int
    overdue: bool
    decision: Envelope | None = None


def encode_followup_file(f: FollowUpFile) -> bytes:
    return bytes(cpb.FollowUpFilePayload(
        header=convert.header_to_pb(f.header), hit_request_digest=f.hit_request_digest,
        hit_item_index=f.hit_item_index, hit_reference=f.hit_reference,
        fields=list(f.fields)).SerializeToString())


def decode_followup_file(payload: bytes) -> FollowUpFile:
    msg = _parse(cpb.FollowUpFilePayload, payload, "FollowUpFilePayload")
    assert isinstance(msg, cpb.FollowUpFilePayload)
    return FollowUpFile(header=_header(msg), hit_request_digest=msg.hit_request_digest,
                        hit_item_index=msg.hit_item_index, hit_reference=msg.hit_reference,
                        fields=tuple(msg.fields))


def encode_followup_get(g: FollowUpGet) -> bytes:
    return bytes(cpb.FollowUpGetPayload(header=convert.header_to_pb(g.header),
                                        followup_id=g.followup_id).SerializeToString())


def decode_followup_get(payload: bytes) -> FollowUpGet:
    msg = _parse(cpb.FollowUpGetPayload, payload, "FollowUpGetPayload")
    assert isinstance(msg, cpb.FollowUpGetPayload)
    return FollowUpGet(header=_header(msg), followup_id=msg.followup_id)


def encode_followup_decision(d: FollowUpDecision) -> bytes:
    return bytes(cpb.FollowUpDecisionPayload(
        responder=d.responder, key_id=d.key_id, request_digest=d.request_digest,
        issued_at_ms=d.issued_at_ms, audit_seq=d.audit_seq, followup_id=d.followup_id,
        state=STATES[d.state], fields=d.fields, reason=d.reason,
        hit_reference=d.hit_reference).SerializeToString())


def decode_followup_decision(payload: bytes) -> FollowUpDecision:
    msg = _parse(cpb.FollowUpDecisionPayload, payload, "FollowUpDecisionPayload")
    assert isinstance(msg, cpb.FollowUpDecisionPayload)
    state = _STATE_FROM_PB.get(msg.state)
    if state not in ("approved", "denied"):
        raise _bad("a decision is approved or denied")
    return FollowUpDecision(
        responder=msg.responder, key_id=msg.key_id, request_digest=msg.request_digest,
        issued_at_ms=msg.issued_at_ms, audit_seq=msg.audit_seq, followup_id=msg.followup_id,
        state=state, fields=dict(msg.fields), reason=msg.reason,
        hit_reference=msg.hit_reference)


def encode_followup_status(s: FollowUpStatus) -> bytes:
    msg = cpb.FollowUpStatusPayload(
        responder=s.responder, key_id=s.key_id, request_digest=s.request_digest,
        issued_at_ms=s.issued_at_ms, audit_seq=s.audit_seq, followup_id=s.followup_id,
        state=STATES[s.state], deadline_ms=s.deadline_ms, overdue=s.overdue)
    if s.decision is not None:
        msg.decision.CopyFrom(convert.envelope_to_pb(s.decision))
    return bytes(msg.SerializeToString())


def decode_followup_status(payload: bytes) -> FollowUpStatus:
    msg = _parse(cpb.FollowUpStatusPayload, payload, "FollowUpStatusPayload")
    assert isinstance(msg, cpb.FollowUpStatusPayload)
    state = _STATE_FROM_PB.get(msg.state)
    if state is None:
        raise _bad("a follow-up status has no state")
    decision = convert.envelope_from_pb(msg.decision) if msg.HasField("decision") else None
    if (state == "pending") != (decision is None):
        raise _bad("a decided follow-up carries its decision, a pending one none")
    return FollowUpStatus(
        responder=msg.responder, key_id=msg.key_id, request_digest=msg.request_digest,
        issued_at_ms=msg.issued_at_ms, audit_seq=msg.audit_seq, followup_id=msg.followup_id,
        state=state, deadline_ms=msg.deadline_ms, overdue=msg.overdue, decision=decision)
