from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DatePrecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATE_PRECISION_UNSPECIFIED: _ClassVar[DatePrecision]
    DATE_PRECISION_YEAR: _ClassVar[DatePrecision]
    DATE_PRECISION_MONTH: _ClassVar[DatePrecision]
    DATE_PRECISION_DAY: _ClassVar[DatePrecision]

class Sex(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEX_UNSPECIFIED: _ClassVar[Sex]
    SEX_MALE: _ClassVar[Sex]
    SEX_FEMALE: _ClassVar[Sex]
    SEX_X: _ClassVar[Sex]

class QueryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUERY_KIND_UNSPECIFIED: _ClassVar[QueryKind]
    QUERY_KIND_DOCUMENT: _ClassVar[QueryKind]
    QUERY_KIND_PERSON: _ClassVar[QueryKind]
    QUERY_KIND_BATCH: _ClassVar[QueryKind]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_NO_HIT: _ClassVar[Outcome]
    OUTCOME_HIT: _ClassVar[Outcome]

class ActionCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_CODE_UNSPECIFIED: _ClassVar[ActionCode]
    ACTION_CODE_REFUSE_ENTRY: _ClassVar[ActionCode]
    ACTION_CODE_ARREST: _ClassVar[ActionCode]
    ACTION_CODE_SEIZE_DOCUMENT: _ClassVar[ActionCode]
    ACTION_CODE_INFORM: _ClassVar[ActionCode]
    ACTION_CODE_MONITOR: _ClassVar[ActionCode]
DATE_PRECISION_UNSPECIFIED: DatePrecision
DATE_PRECISION_YEAR: DatePrecision
DATE_PRECISION_MONTH: DatePrecision
DATE_PRECISION_DAY: DatePrecision
SEX_UNSPECIFIED: Sex
SEX_MALE: Sex
SEX_FEMALE: Sex
SEX_X: Sex
QUERY_KIND_UNSPECIFIED: QueryKind
QUERY_KIND_DOCUMENT: QueryKind
QUERY_KIND_PERSON: QueryKind
QUERY_KIND_BATCH: QueryKind
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_NO_HIT: Outcome
OUTCOME_HIT: Outcome
ACTION_CODE_UNSPECIFIED: ActionCode
ACTION_CODE_REFUSE_ENTRY: ActionCode
ACTION_CODE_ARREST: ActionCode
ACTION_CODE_SEIZE_DOCUMENT: ActionCode
ACTION_CODE_INFORM: ActionCode
ACTION_CODE_MONITOR: ActionCode

class SignedEnvelope(_message.Message):
    __slots__ = ("payload_type", "payload", "signer", "key_id", "signature")
    PAYLOAD_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    payload_type: str
    payload: bytes
    signer: str
    key_id: str
    signature: bytes
    def __init__(self, payload_type: _Optional[str] = ..., payload: _Optional[bytes] = ..., signer: _Optional[str] = ..., key_id: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class LookupRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[SignedEnvelope, _Mapping]] = ...) -> None: ...

class LookupResponse(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[SignedEnvelope, _Mapping]] = ...) -> None: ...

class RequestHeader(_message.Message):
    __slots__ = ("requester", "key_id", "operator", "purpose", "legal_basis", "case_ref", "issued_at_ms", "nonce")
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    CASE_REF_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    requester: str
    key_id: str
    operator: str
    purpose: str
    legal_basis: str
    case_ref: str
    issued_at_ms: int
    nonce: bytes
    def __init__(self, requester: _Optional[str] = ..., key_id: _Optional[str] = ..., operator: _Optional[str] = ..., purpose: _Optional[str] = ..., legal_basis: _Optional[str] = ..., case_ref: _Optional[str] = ..., issued_at_ms: _Optional[int] = ..., nonce: _Optional[bytes] = ...) -> None: ...

class DocumentQuery(_message.Message):
    __slots__ = ("number", "issuing_state", "document_type")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ISSUING_STATE_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    number: str
    issuing_state: str
    document_type: str
    def __init__(self, number: _Optional[str] = ..., issuing_state: _Optional[str] = ..., document_type: _Optional[str] = ...) -> None: ...

class PersonQuery(_message.Message):
    __slots__ = ("family_name", "given_names", "patronymic", "birth_year", "birth_month", "birth_day", "birth_precision", "nationality", "sex")
    FAMILY_NAME_FIELD_NUMBER: _ClassVar[int]
    GIVEN_NAMES_FIELD_NUMBER: _ClassVar[int]
    PATRONYMIC_FIELD_NUMBER: _ClassVar[int]
    BIRTH_YEAR_FIELD_NUMBER: _ClassVar[int]
    BIRTH_MONTH_FIELD_NUMBER: _ClassVar[int]
    BIRTH_DAY_FIELD_NUMBER: _ClassVar[int]
    BIRTH_PRECISION_FIELD_NUMBER: _ClassVar[int]
    NATIONALITY_FIELD_NUMBER: _ClassVar[int]
    SEX_FIELD_NUMBER: _ClassVar[int]
    family_name: str
    given_names: str
    patronymic: str
    birth_year: int
    birth_month: int
    birth_day: int
    birth_precision: DatePrecision
    nationality: str
    sex: Sex
    def __init__(self, family_name: _Optional[str] = ..., given_names: _Optional[str] = ..., patronymic: _Optional[str] = ..., birth_year: _Optional[int] = ..., birth_month: _Optional[int] = ..., birth_day: _Optional[int] = ..., birth_precision: _Optional[_Union[DatePrecision, str]] = ..., nationality: _Optional[str] = ..., sex: _Optional[_Union[Sex, str]] = ...) -> None: ...

class QueryItem(_message.Message):
    __slots__ = ("document", "person")
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    PERSON_FIELD_NUMBER: _ClassVar[int]
    document: DocumentQuery
    person: PersonQuery
    def __init__(self, document: _Optional[_Union[DocumentQuery, _Mapping]] = ..., person: _Optional[_Union[PersonQuery, _Mapping]] = ...) -> None: ...

class RequestPayload(_message.Message):
    __slots__ = ("header", "kind", "items")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    header: RequestHeader
    kind: QueryKind
    items: _containers.RepeatedCompositeFieldContainer[QueryItem]
    def __init__(self, header: _Optional[_Union[RequestHeader, _Mapping]] = ..., kind: _Optional[_Union[QueryKind, str]] = ..., items: _Optional[_Iterable[_Union[QueryItem, _Mapping]]] = ...) -> None: ...

class ItemResult(_message.Message):
    __slots__ = ("index", "outcome", "reference", "action", "contact", "source_agency")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_AGENCY_FIELD_NUMBER: _ClassVar[int]
    index: int
    outcome: Outcome
    reference: str
    action: ActionCode
    contact: str
    source_agency: str
    def __init__(self, index: _Optional[int] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., reference: _Optional[str] = ..., action: _Optional[_Union[ActionCode, str]] = ..., contact: _Optional[str] = ..., source_agency: _Optional[str] = ...) -> None: ...

class LookupResult(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ItemResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ItemResult, _Mapping]]] = ...) -> None: ...

class Refusal(_message.Message):
    __slots__ = ("status", "reason", "reasons")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REASONS_FIELD_NUMBER: _ClassVar[int]
    status: str
    reason: str
    reasons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, status: _Optional[str] = ..., reason: _Optional[str] = ..., reasons: _Optional[_Iterable[str]] = ...) -> None: ...

class ResponseHead(_message.Message):
    __slots__ = ("responder", "key_id", "request_digest", "issued_at_ms", "audit_seq")
    RESPONDER_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_SEQ_FIELD_NUMBER: _ClassVar[int]
    responder: str
    key_id: str
    request_digest: bytes
    issued_at_ms: int
    audit_seq: int
    def __init__(self, responder: _Optional[str] = ..., key_id: _Optional[str] = ..., request_digest: _Optional[bytes] = ..., issued_at_ms: _Optional[int] = ..., audit_seq: _Optional[int] = ...) -> None: ...

class ResponsePayload(_message.Message):
    __slots__ = ("responder", "key_id", "request_digest", "issued_at_ms", "audit_seq", "lookup", "refusal")
    RESPONDER_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_SEQ_FIELD_NUMBER: _ClassVar[int]
    LOOKUP_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    responder: str
    key_id: str
    request_digest: bytes
    issued_at_ms: int
    audit_seq: int
    lookup: LookupResult
    refusal: Refusal
    def __init__(self, responder: _Optional[str] = ..., key_id: _Optional[str] = ..., request_digest: _Optional[bytes] = ..., issued_at_ms: _Optional[int] = ..., audit_seq: _Optional[int] = ..., lookup: _Optional[_Union[LookupResult, _Mapping]] = ..., refusal: _Optional[_Union[Refusal, _Mapping]] = ...) -> None: ...
