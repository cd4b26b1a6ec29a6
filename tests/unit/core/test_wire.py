"""Protobuf <-> core values: exact roundtrips and strict decoding of anything else."""

from __future__ import annotations

import pytest

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
)
from node.wire import convert
from node.wire.convert import pb

HEADER = RequestHeader(requester="KGZ-BS", key_id="0011223344556677", operator="officer-7",
                       purpose="border_check", legal_basis="art. 7 — соглашение",
                       case_ref="CASE-1", issued_at_ms=1_763_900_000_123, nonce=bytes(range(24)))
DOC = DocumentQuery("N0481516", "KAZ", "P")
ID_CARD = DocumentQuery("ID0099887", "KGZ", "I")


def _person(dob: str, sex: Sex = Sex.FEMALE) -> PersonQuery:
    return PersonQuery(family_name="Каримова", given_names="Дилноза", patronymic="",
                       date_of_birth=PartialDate.parse(dob), nationality="UZB", sex=sex)


def _roundtrip(req: LookupRequest, max_items: int = 500) -> LookupRequest:
    return convert.decode_request(convert.encode_request(req), max_items=max_items)


def _reason(payload: bytes, max_items: int = 500) -> str:
    with pytest.raises(InvalidInput) as err:
        convert.decode_request(payload, max_items=max_items)
    return err.value.reason


def test_document_request_roundtrip() -> None:
    req = LookupRequest(HEADER, QueryKind.DOCUMENT, (DOC,))
    assert _roundtrip(req) == req


@pytest.mark.parametrize("dob", ["1995", "1995-08", "1995-08-21"])
@pytest.mark.parametrize("sex", list(Sex))
def test_person_request_roundtrip_with_partial_dates(dob: str, sex: Sex) -> None:
    req = LookupRequest(HEADER, QueryKind.PERSON, (_person(dob, sex),))
    back = _roundtrip(req)
    assert back == req
    assert str(back.items[0].date_of_birth) == dob  # type: ignore[union-attr]


def test_person_precision_on_the_wire() -> None:
    msg = pb.RequestPayload.FromString(convert.encode_request(
        LookupRequest(HEADER, QueryKind.PERSON, (_person("1995-08"),))))
    p = msg.items[0].person
    assert (p.birth_year, p.birth_month, p.birth_day, p.birth_precision) == (
        1995, 8, 0, pb.DATE_PRECISION_MONTH)


def test_batch_roundtrip_keeps_order() -> None:
    items = (DOC, _person("1995-08-21"), ID_CARD, _person("1990"))
    req = LookupRequest(HEADER, QueryKind.BATCH, items)
    back = _roundtrip(req)
    assert back == req
    assert [type(i).__name__ for i in back.items] == [
        "DocumentQuery", "PersonQuery", "DocumentQuery", "PersonQuery"]


def test_encoding_is_deterministic() -> None:
    req = LookupRequest(HEADER, QueryKind.BATCH, (DOC, _person("1995")))
    assert convert.encode_request(req) == convert.encode_request(req)


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff", b"\x0a\xff", b"\x08", b"\x12\x05ab"])
def test_garbage_is_malformed_payload(garbage: bytes) -> None:
    assert _reason(garbage) == "malformed_payload"


def test_empty_payload_has_no_header() -> None:
    with pytest.raises(InvalidInput) as err:
        convert.decode_request(b"", max_items=500)
    assert (err.value.reason, str(err.value)) == ("malformed_payload",
                                                  "request payload has no header")


def _payload(**fields: object) -> bytes:
    msg = pb.RequestPayload.FromString(convert.encode_request(
        LookupRequest(HEADER, QueryKind.DOCUMENT, (DOC,))))
    for k, v in fields.items():
        if v is None:
            msg.ClearField(k)
        else:
            setattr(msg, k, v)
    return bytes(msg.SerializeToString())


def test_missing_header() -> None:
    assert _reason(_payload(header=None)) == "malformed_payload"


def test_kind_unspecified() -> None:
    assert _reason(_payload(kind=pb.QUERY_KIND_UNSPECIFIED)) == "invalid_argument"


def test_unknown_kind_number() -> None:
    assert _reason(_payload(kind=99)) == "invalid_argument"


def test_batch_over_max_items() -> None:
    req = LookupRequest(HEADER, QueryKind.BATCH, (DOC,) * 6)
    raw = convert.encode_request(req)
    assert len(convert.decode_request(raw, max_items=6).items) == 6
    with pytest.raises(InvalidInput) as err:
        convert.decode_request(raw, max_items=5)
    assert err.value.reason == "batch_too_large"
    assert str(err.value) == "a batch may hold at most 5 items; this one has 6"


def test_person_without_precision_is_bad_date() -> None:
    msg = pb.RequestPayload.FromString(convert.encode_request(
        LookupRequest(HEADER, QueryKind.PERSON, (_person("1995-08-21"),))))
    msg.items[0].person.birth_precision = pb.DATE_PRECISION_UNSPECIFIED
    assert _reason(msg.SerializeToString()) == "bad_date"


def test_empty_item_is_rejected() -> None:
    msg = pb.RequestPayload.FromString(convert.encode_request(
        LookupRequest(HEADER, QueryKind.BATCH, (DOC,))))
    msg.items.add()
    assert _reason(msg.SerializeToString()) == "invalid_argument"


def test_decoded_fields_are_validated() -> None:
    msg = pb.RequestPayload.FromString(convert.encode_request(
        LookupRequest(HEADER, QueryKind.DOCUMENT, (DOC,))))
    msg.items[0].document.number = "n0481516"
    assert _reason(msg.SerializeToString()) == "bad_document_number"
    msg = pb.RequestPayload.FromString(convert.encode_request(
        LookupRequest(HEADER, QueryKind.DOCUMENT, (DOC,))))
    msg.header.nonce = bytes(8)
    assert _reason(msg.SerializeToString()) == "bad_nonce"


def test_oversized_payload() -> None:
    from node.core import limits

    assert _reason(bytes(limits.MAX_ENVELOPE_BYTES + 1)) == "payload_too_large"


# --- responses ------------------------------------------------------------------------------


def test_answer_roundtrip() -> None:
    ans = LookupAnswer(responder="KAZ-BS", key_id="8899aabbccddeeff", request_digest=bytes(32),
                       issued_at_ms=1_763_900_000_999, audit_seq=42, results=(
                           ItemResult(0, Outcome.NO_HIT),
                           ItemResult(1, Outcome.HIT, "KAZ-SLTD-2026-000117",
                                      ActionCode.SEIZE_DOCUMENT, "KAZ-BS desk"),
                           ItemResult(2, Outcome.HIT, "", None, ""),
                       ))
    back = convert.decode_response(convert.encode_answer(ans))
    assert back == ans
    assert isinstance(back, LookupAnswer)
    assert back.hits == 2


def test_refusal_roundtrip() -> None:
    ref = Refusal(responder="KAZ-BS", key_id="8899aabbccddeeff", request_digest=b"\x01" * 32,
                  issued_at_ms=5, status="PERMISSION_DENIED", reason="purpose_not_agreed",
                  reasons=("purpose_not_agreed", "quota_exhausted"), audit_seq=7)
    back = convert.decode_response(convert.encode_refusal(ref))
    assert back == ref
    assert isinstance(back, Refusal)


def test_response_garbage_and_empty() -> None:
    with pytest.raises(InvalidInput) as err:
        convert.decode_response(b"\xff\xff")
    assert err.value.reason == "malformed_payload"
    with pytest.raises(InvalidInput) as err:
        convert.decode_response(b"")
    assert str(err.value) == "response has neither an answer nor a refusal"


def test_response_result_without_outcome() -> None:
    msg = pb.ResponsePayload(responder="KAZ-BS", lookup=pb.LookupResult())
    msg.lookup.results.add(index=0)
    with pytest.raises(InvalidInput) as err:
        convert.decode_response(msg.SerializeToString())
    assert str(err.value) == "result has no outcome"


def test_envelope_pb_roundtrip_and_empty_payload() -> None:
    from node.core.envelope import Envelope

    env = Envelope(payload_type="t", payload=b"p", signer="KAZ-BS", key_id="k",
                   signature=bytes(64))
    assert convert.envelope_from_pb(convert.envelope_to_pb(env)) == env
    with pytest.raises(InvalidInput) as err:
        convert.envelope_from_pb(pb.SignedEnvelope(payload_type="t", signer="s", key_id="k"))
    assert err.value.reason == "bad_envelope"


def test_sex_x_is_sent_as_sex_x_and_unspecified_reads_as_x() -> None:
    """ICAO 9303 X travels as SEX_X; an outside client's SEX_UNSPECIFIED (not given) is X."""
    from node.core.model import PartialDate, PersonQuery, Sex
    from node.wire import convert
    from node.wire.convert import pb

    p = PersonQuery(family_name="Doe", given_names="Sam", date_of_birth=PartialDate(1990),
                    nationality="KAZ", sex=Sex.UNSPECIFIED)
    assert convert._person_to_pb(p).sex == pb.SEX_X
    for wire_sex in (pb.SEX_X, pb.SEX_UNSPECIFIED):
        m = convert._person_to_pb(p)
        m.sex = wire_sex
        assert convert._person_from_pb(m).sex is Sex.UNSPECIFIED
