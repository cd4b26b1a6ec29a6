from . import bxnode_pb2 as _bxnode_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CrossingDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CROSSING_DIRECTION_UNSPECIFIED: _ClassVar[CrossingDirection]
    CROSSING_DIRECTION_ENTRY: _ClassVar[CrossingDirection]
    CROSSING_DIRECTION_EXIT: _ClassVar[CrossingDirection]

class TravelMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRAVEL_MODE_UNSPECIFIED: _ClassVar[TravelMode]
    TRAVEL_MODE_ROAD: _ClassVar[TravelMode]
    TRAVEL_MODE_RAIL: _ClassVar[TravelMode]
    TRAVEL_MODE_AIR: _ClassVar[TravelMode]
    TRAVEL_MODE_FOOT: _ClassVar[TravelMode]

class CrossingOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CROSSING_OUTCOME_UNSPECIFIED: _ClassVar[CrossingOutcome]
    CROSSING_OUTCOME_NOT_FOUND: _ClassVar[CrossingOutcome]
    CROSSING_OUTCOME_CONFIRMED: _ClassVar[CrossingOutcome]

class FollowUpState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FOLLOW_UP_STATE_UNSPECIFIED: _ClassVar[FollowUpState]
    FOLLOW_UP_STATE_PENDING: _ClassVar[FollowUpState]
    FOLLOW_UP_STATE_APPROVED: _ClassVar[FollowUpState]
    FOLLOW_UP_STATE_DENIED: _ClassVar[FollowUpState]
CROSSING_DIRECTION_UNSPECIFIED: CrossingDirection
CROSSING_DIRECTION_ENTRY: CrossingDirection
CROSSING_DIRECTION_EXIT: CrossingDirection
TRAVEL_MODE_UNSPECIFIED: TravelMode
TRAVEL_MODE_ROAD: TravelMode
TRAVEL_MODE_RAIL: TravelMode
TRAVEL_MODE_AIR: TravelMode
TRAVEL_MODE_FOOT: TravelMode
CROSSING_OUTCOME_UNSPECIFIED: CrossingOutcome
CROSSING_OUTCOME_NOT_FOUND: CrossingOutcome
CROSSING_OUTCOME_CONFIRMED: CrossingOutcome
FOLLOW_UP_STATE_UNSPECIFIED: FollowUpState
FOLLOW_UP_STATE_PENDING: FollowUpState
FOLLOW_UP_STATE_APPROVED: FollowUpState
FOLLOW_UP_STATE_DENIED: FollowUpState

class ConfirmCrossingRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _bxnode_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_bxnode_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class ConfirmCrossingResponse(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _bxnode_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_bxnode_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class FileFollowUpRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _bxnode_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_bxnode_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class FileFollowUpResponse(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _bxnode_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_bxnode_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class GetFollowUpRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _bxnode_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_bxnode_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class GetFollowUpResponse(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _bxnode_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_bxnode_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class WatchFollowUpRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _bxnode_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_bxnode_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class WatchFollowUpResponse(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _bxnode_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_bxnode_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class CrossingQuestion(_message.Message):
    __slots__ = ("document", "person", "bcp", "section", "direction", "window_start_ms", "window_end_ms")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    PERSON_FIELD_NUMBER: _ClassVar[int]
    BCP_FIELD_NUMBER: _ClassVar[int]
    SECTION_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_MS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_MS_FIELD_NUMBER: _ClassVar[int]
    document: _bxnode_pb2.DocumentQuery
    person: _bxnode_pb2.PersonQuery
    bcp: str
    section: str
    direction: CrossingDirection
    window_start_ms: int
    window_end_ms: int
    def __init__(self, document: _Optional[_Union[_bxnode_pb2.DocumentQuery, _Mapping]] = ..., person: _Optional[_Union[_bxnode_pb2.PersonQuery, _Mapping]] = ..., bcp: _Optional[str] = ..., section: _Optional[str] = ..., direction: _Optional[_Union[CrossingDirection, str]] = ..., window_start_ms: _Optional[int] = ..., window_end_ms: _Optional[int] = ...) -> None: ...

class CrossingRequestPayload(_message.Message):
    __slots__ = ("header", "questions")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    header: _bxnode_pb2.RequestHeader
    questions: _containers.RepeatedCompositeFieldContainer[CrossingQuestion]
    def __init__(self, header: _Optional[_Union[_bxnode_pb2.RequestHeader, _Mapping]] = ..., questions: _Optional[_Iterable[_Union[CrossingQuestion, _Mapping]]] = ...) -> None: ...

class CrossingAnswer(_message.Message):
    __slots__ = ("index", "outcome", "bcp", "crossed_at_ms", "resolution_minutes")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    BCP_FIELD_NUMBER: _ClassVar[int]
    CROSSED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    RESOLUTION_MINUTES_FIELD_NUMBER: _ClassVar[int]
    index: int
    outcome: CrossingOutcome
    bcp: str
    crossed_at_ms: int
    resolution_minutes: int
    def __init__(self, index: _Optional[int] = ..., outcome: _Optional[_Union[CrossingOutcome, str]] = ..., bcp: _Optional[str] = ..., crossed_at_ms: _Optional[int] = ..., resolution_minutes: _Optional[int] = ...) -> None: ...

class CrossingResponsePayload(_message.Message):
    __slots__ = ("responder", "key_id", "request_digest", "issued_at_ms", "audit_seq", "answers")
    RESPONDER_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_SEQ_FIELD_NUMBER: _ClassVar[int]
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    responder: str
    key_id: str
    request_digest: bytes
    issued_at_ms: int
    audit_seq: int
    answers: _containers.RepeatedCompositeFieldContainer[CrossingAnswer]
    def __init__(self, responder: _Optional[str] = ..., key_id: _Optional[str] = ..., request_digest: _Optional[bytes] = ..., issued_at_ms: _Optional[int] = ..., audit_seq: _Optional[int] = ..., answers: _Optional[_Iterable[_Union[CrossingAnswer, _Mapping]]] = ...) -> None: ...

class FollowUpFilePayload(_message.Message):
    __slots__ = ("header", "hit_request_digest", "hit_item_index", "hit_reference", "fields")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    HIT_REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    HIT_ITEM_INDEX_FIELD_NUMBER: _ClassVar[int]
    HIT_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    header: _bxnode_pb2.RequestHeader
    hit_request_digest: bytes
    hit_item_index: int
    hit_reference: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, header: _Optional[_Union[_bxnode_pb2.RequestHeader, _Mapping]] = ..., hit_request_digest: _Optional[bytes] = ..., hit_item_index: _Optional[int] = ..., hit_reference: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class FollowUpGetPayload(_message.Message):
    __slots__ = ("header", "followup_id")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    FOLLOWUP_ID_FIELD_NUMBER: _ClassVar[int]
    header: _bxnode_pb2.RequestHeader
    followup_id: str
    def __init__(self, header: _Optional[_Union[_bxnode_pb2.RequestHeader, _Mapping]] = ..., followup_id: _Optional[str] = ...) -> None: ...

class FollowUpDecisionPayload(_message.Message):
    __slots__ = ("responder", "key_id", "request_digest", "issued_at_ms", "audit_seq", "followup_id", "state", "fields", "reason", "hit_reference")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RESPONDER_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_SEQ_FIELD_NUMBER: _ClassVar[int]
    FOLLOWUP_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    HIT_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    responder: str
    key_id: str
    request_digest: bytes
    issued_at_ms: int
    audit_seq: int
    followup_id: str
    state: FollowUpState
    fields: _containers.ScalarMap[str, str]
    reason: str
    hit_reference: str
    def __init__(self, responder: _Optional[str] = ..., key_id: _Optional[str] = ..., request_digest: _Optional[bytes] = ..., issued_at_ms: _Optional[int] = ..., audit_seq: _Optional[int] = ..., followup_id: _Optional[str] = ..., state: _Optional[_Union[FollowUpState, str]] = ..., fields: _Optional[_Mapping[str, str]] = ..., reason: _Optional[str] = ..., hit_reference: _Optional[str] = ...) -> None: ...

class FollowUpStatusPayload(_message.Message):
    __slots__ = ("responder", "key_id", "request_digest", "issued_at_ms", "audit_seq", "followup_id", "state", "deadline_ms", "overdue", "decision")
    RESPONDER_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_SEQ_FIELD_NUMBER: _ClassVar[int]
    FOLLOWUP_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    responder: str
    key_id: str
    request_digest: bytes
    issued_at_ms: int
    audit_seq: int
    followup_id: str
    state: FollowUpState
    deadline_ms: int
    overdue: bool
    decision: _bxnode_pb2.SignedEnvelope
    def __init__(self, responder: _Optional[str] = ..., key_id: _Optional[str] = ..., request_digest: _Optional[bytes] = ..., issued_at_ms: _Optional[int] = ..., audit_seq: _Optional[int] = ..., followup_id: _Optional[str] = ..., state: _Optional[_Union[FollowUpState, str]] = ..., deadline_ms: _Optional[int] = ..., overdue: _Optional[bool] = ..., decision: _Optional[_Union[_bxnode_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class CrossingRecord(_message.Message):
    __slots__ = ("record_id", "event", "bcp", "crossed_at_ms", "mode", "document", "family_name", "given_names", "date_of_birth", "nationality")
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    BCP_FIELD_NUMBER: _ClassVar[int]
    CROSSED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    FAMILY_NAME_FIELD_NUMBER: _ClassVar[int]
    GIVEN_NAMES_FIELD_NUMBER: _ClassVar[int]
    DATE_OF_BIRTH_FIELD_NUMBER: _ClassVar[int]
    NATIONALITY_FIELD_NUMBER: _ClassVar[int]
    record_id: str
    event: str
    bcp: str
    crossed_at_ms: int
    mode: TravelMode
    document: _bxnode_pb2.DocumentQuery
    family_name: str
    given_names: str
    date_of_birth: str
    nationality: str
    def __init__(self, record_id: _Optional[str] = ..., event: _Optional[str] = ..., bcp: _Optional[str] = ..., crossed_at_ms: _Optional[int] = ..., mode: _Optional[_Union[TravelMode, str]] = ..., document: _Optional[_Union[_bxnode_pb2.DocumentQuery, _Mapping]] = ..., family_name: _Optional[str] = ..., given_names: _Optional[str] = ..., date_of_birth: _Optional[str] = ..., nationality: _Optional[str] = ...) -> None: ...

class RecordCrossingsRequest(_message.Message):
    __slots__ = ("records", "operator", "source")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[CrossingRecord]
    operator: str
    source: str
    def __init__(self, records: _Optional[_Iterable[_Union[CrossingRecord, _Mapping]]] = ..., operator: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class RecordCrossingsResponse(_message.Message):
    __slots__ = ("recorded", "duplicates")
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    duplicates: int
    def __init__(self, recorded: _Optional[int] = ..., duplicates: _Optional[int] = ...) -> None: ...
