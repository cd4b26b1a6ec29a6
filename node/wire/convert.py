"""Protobuf <-> core values.  The only module that touches ``*_pb2``.

Decoding is strict: unknown enum values, missing fields and out-of-bound
values raise :class:`~node.core.errors.InvalidInput`; a payload that is not
valid protobuf raises it with reason ``malformed_payload``.
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from node.core import limits
from node.core.envelope import Envelope
from node.core.errors import InvalidInput
from node.core.model import (
    ActionCode,
    DocumentQuery,
    ItemResult,
    LookupAnswer,
    LookupRequest,
    Outcome,
    PartialDate,
    PersonQuery,
    QueryKind,
    Refusal,
    RequestHeader,
    Sex,
    validate_id,
)
from node.wire._gen import bxnode_pb2 as pb

__all__ = [
    "decode_request",
    "decode_request_header",
    "decode_response",
    "decode_response_head",
    "encode_answer",
    "encode_refusal",
    "encode_request",
    "envelope_from_pb",
    "envelope_to_pb",
    "header_from_pb",
    "header_to_pb",
    "pb",
]

_KIND_TO_PB = {
    QueryKind.DOCUMENT: pb.QUERY_KIND_DOCUMENT,
    QueryKind.PERSON: pb.QUERY_KIND_PERSON,
    QueryKind.BATCH: pb.QUERY_KIND_BATCH,
}
_KIND_FROM_PB = {v: k for k, v in _KIND_TO_PB.items()}
_SEX_TO_PB = {Sex.MALE: pb.SEX_MALE, Sex.FEMALE: pb.SEX_FEMALE, Sex.UNSPECIFIED: pb.SEX_X}
#: SEX_UNSPECIFIED (0, not given) and SEX_X (the document's X) both read as X.
_SEX_FROM_PB = {pb.SEX_MALE: Sex.MALE, pb.SEX_FEMALE: Sex.FEMALE, pb.SEX_X: Sex.UNSPECIFIED,
                pb.SEX_UNSPECIFIED: Sex.UNSPECIFIED}
_ACTION_TO_PB = {
    ActionCode.REFUSE_ENTRY: pb.ACTION_CODE_REFUSE_ENTRY,
    ActionCode.ARREST: pb.ACTION_CODE_ARREST,
    ActionCode.SEIZE_DOCUMENT: pb.ACTION_CODE_SEIZE_DOCUMENT,
    ActionCode.INFORM: pb.ACTION_CODE_INFORM,
    ActionCode.MONITOR: pb.ACTION_CODE_MONITOR,
}
_ACTION_FROM_PB = {v: k for k, v in _ACTION_TO_PB.items()}
_OUTCOME_TO_PB = {Outcome.HIT: pb.OUTCOME_HIT, Outcome.NO_HIT: pb.OUTCOME_NO_HIT}
_OUTCOME_FROM_PB = {v: k for k, v in _OUTCOME_TO_PB.items()}


def _bad(message: str, reason: str = "malformed_payload") -> InvalidInput:
    return InvalidInput(message, reason=reason)


def _valid_id(value: str) -> bool:
    """An agency's short name as the owner records it (1-64 of A-Z a-z 0-9 . _ : @ -)."""
    try:
        validate_id(value, "source agency")
    except InvalidInput:
        return False
    return True


def envelope_from_pb(msg: pb.SignedEnvelope) -> Envelope:
    if not msg.payload:
        raise _bad("envelope has no payload", "bad_envelope")
    return Envelope(
        payload_type=msg.payload_type,
        payload=msg.payload,
        signer=msg.signer,
        key_id=msg.key_id,
        signature=msg.signature,
    )


def envelope_to_pb(env: Envelope) -> pb.SignedEnvelope:
    return pb.SignedEnvelope(
        payload_type=env.payload_type,
        payload=env.payload,
        signer=env.signer,
        key_id=env.key_id,
        signature=env.signature,
    )


# --- requests -------------------------------------------------------------------------------


def _person_to_pb(p: PersonQuery) -> pb.PersonQuery:
    d = p.date_of_birth
    precision = (
        pb.DATE_PRECISION_YEAR if d.month is None
        else pb.DATE_PRECISION_MONTH if d.day is None
        else pb.DATE_PRECISION_DAY
    )
    return pb.PersonQuery(
        family_name=p.family_name,
        given_names=p.given_names,
        patronymic=p.patronymic,
        birth_year=d.year,
        birth_month=d.month or 0,
        birth_day=d.day or 0,
        birth_precision=precision,
        nationality=p.nationality,
        sex=_SEX_TO_PB[p.sex],
    )


def _person_from_pb(m: pb.PersonQuery) -> PersonQuery:
    precision = m.birth_precision
    if precision == pb.DATE_PRECISION_YEAR:
        dob = PartialDate(m.birth_year)
    elif precision == pb.DATE_PRECISION_MONTH:
        dob = PartialDate(m.birth_year, m.birth_month)
    elif precision == pb.DATE_PRECISION_DAY:
        dob = PartialDate(m.birth_year, m.birth_month, m.birth_day)
    else:
        raise _bad("person query needs a birth date precision", "bad_date")
    if m.sex not in _SEX_FROM_PB:
        raise _bad("unknown sex value", "invalid_argument")
    return PersonQuery(
        family_name=m.family_name,
        given_names=m.given_names,
        patronymic=m.patronymic,
        date_of_birth=dob,
        nationality=m.nationality,
        sex=_SEX_FROM_PB[m.sex],
    )


def encode_request(req: LookupRequest) -> bytes:
    msg = pb.RequestPayload(header=header_to_pb(req.header), kind=_KIND_TO_PB[req.kind])
    for item in req.items:
        if isinstance(item, DocumentQuery):
            msg.items.add(document=pb.DocumentQuery(
                number=item.number, issuing_state=item.issuing_state, document_type=item.doc_type))
        else:
            msg.items.add(person=_person_to_pb(item))
    return msg.SerializeToString()


def decode_request(payload: bytes, *, max_items: int) -> LookupRequest:
    """Parse a signed request payload.  ``max_items`` is the configured batch bound."""
    if len(payload) > limits.MAX_ENVELOPE_BYTES:
        raise _bad("request payload too large", "payload_too_large")
    msg = pb.RequestPayload()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise _bad("request payload is not a valid RequestPayload") from exc
    if not msg.HasField("header"):
        raise _bad("request payload has no header")
    if msg.kind not in _KIND_FROM_PB:
        raise _bad("request has no known query kind", "invalid_argument")
    if len(msg.items) > max_items:
        raise InvalidInput(f"a batch may hold at most {max_items} items; this one has "
                           f"{len(msg.items)}", reason="batch_too_large")
    header = header_from_pb(msg.header)
    items: list[DocumentQuery | PersonQuery] = []
    for it in msg.items:
        which = it.WhichOneof("item")
        if which == "document":
            d = it.document
            items.append(DocumentQuery(d.number, d.issuing_state, d.document_type))
        elif which == "person":
            items.append(_person_from_pb(it.person))
        else:
            raise _bad("query item is empty", "invalid_argument")
    return LookupRequest(header=header, kind=_KIND_FROM_PB[msg.kind], items=tuple(items))


# --- responses ------------------------------------------------------------------------------


def encode_answer(ans: LookupAnswer) -> bytes:
    msg = pb.ResponsePayload(
        responder=ans.responder,
        key_id=ans.key_id,
        request_digest=ans.request_digest,
        issued_at_ms=ans.issued_at_ms,
        audit_seq=ans.audit_seq,
        lookup=pb.LookupResult(),
    )
    for r in ans.results:
        msg.lookup.results.add(
            index=r.index,
            outcome=_OUTCOME_TO_PB[r.outcome],
            reference=r.reference,
            action=_ACTION_TO_PB[r.action] if r.action else pb.ACTION_CODE_UNSPECIFIED,
            contact=r.contact,
            source_agency=r.source_agency,
        )
    return msg.SerializeToString()


def encode_refusal(ref: Refusal) -> bytes:
    return pb.ResponsePayload(
        responder=ref.responder,
        key_id=ref.key_id,
        request_digest=ref.request_digest,
        issued_at_ms=ref.issued_at_ms,
        audit_seq=ref.audit_seq,
        refusal=pb.Refusal(status=ref.status, reason=ref.reason, reasons=list(ref.reasons)),
    ).SerializeToString()


def decode_response_head(payload: bytes) -> pb.ResponseHead:
    """The fields every response payload starts with (unknown fields are skipped)."""
    try:
        return pb.ResponseHead.FromString(payload)
    except DecodeError as exc:
        raise _bad("response payload does not parse") from exc


def decode_request_header(payload: bytes) -> RequestHeader:
    """The header (field 1) of any bxnode request payload, validated."""
    msg = pb.RequestPayload()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise _bad("request payload does not parse") from exc
    if not msg.HasField("header"):
        raise _bad("request payload has no header")
    return header_from_pb(msg.header)


def header_from_pb(h: pb.RequestHeader) -> RequestHeader:
    return RequestHeader(
        requester=h.requester,
        key_id=h.key_id,
        operator=h.operator,
        purpose=h.purpose,
        legal_basis=h.legal_basis,
        case_ref=h.case_ref,
        issued_at_ms=h.issued_at_ms,
        nonce=h.nonce,
    )


def header_to_pb(h: RequestHeader) -> pb.RequestHeader:
    return pb.RequestHeader(
        requester=h.requester,
        key_id=h.key_id,
        operator=h.operator,
        purpose=h.purpose,
        legal_basis=h.legal_basis,
        case_ref=h.case_ref,
        issued_at_ms=h.issued_at_ms,
        nonce=h.nonce,
    )


def decode_response(payload: bytes) -> LookupAnswer | Refusal:
    msg = pb.ResponsePayload()
    try:
        msg.ParseFromString(payload)
    except DecodeError as exc:
        raise _bad("response payload is not a valid ResponsePayload") from exc
    which = msg.WhichOneof("body")
    if which == "refusal":
        return Refusal(
            responder=msg.responder,
            key_id=msg.key_id,
            request_digest=msg.request_digest,
            issued_at_ms=msg.issued_at_ms,
            status=msg.refusal.status,
            reason=msg.refusal.reason,
            reasons=tuple(msg.refusal.reasons),
            audit_seq=msg.audit_seq,
        )
    if which != "lookup":
        raise _bad("response has neither an answer nor a refusal")
    results = []
    for r in msg.lookup.results:
        if r.outcome not in _OUTCOME_FROM_PB:
            raise _bad("result has no outcome")
        if r.source_agency and not _valid_id(r.source_agency):
            raise _bad("result has a malformed source agency")
        results.append(ItemResult(
            index=r.index,
            outcome=_OUTCOME_FROM_PB[r.outcome],
            reference=r.reference,
            action=_ACTION_FROM_PB.get(r.action),
            contact=r.contact,
            source_agency=r.source_agency,
        ))
    return LookupAnswer(
        responder=msg.responder,
        key_id=msg.key_id,
        request_digest=msg.request_digest,
        issued_at_ms=msg.issued_at_ms,
        results=tuple(results),
        audit_seq=msg.audit_seq,
    )
