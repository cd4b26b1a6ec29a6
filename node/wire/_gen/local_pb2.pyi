from . import bxnode_pb2 as _bxnode_pb2
from . import crossings_pb2 as _crossings_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PeerOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PEER_OUTCOME_UNSPECIFIED: _ClassVar[PeerOutcome]
    PEER_OUTCOME_ANSWERED: _ClassVar[PeerOutcome]
    PEER_OUTCOME_REFUSED: _ClassVar[PeerOutcome]
    PEER_OUTCOME_UNREACHABLE: _ClassVar[PeerOutcome]
    PEER_OUTCOME_NOT_ASKED: _ClassVar[PeerOutcome]
    PEER_OUTCOME_UNVERIFIED: _ClassVar[PeerOutcome]
PEER_OUTCOME_UNSPECIFIED: PeerOutcome
PEER_OUTCOME_ANSWERED: PeerOutcome
PEER_OUTCOME_REFUSED: PeerOutcome
PEER_OUTCOME_UNREACHABLE: PeerOutcome
PEER_OUTCOME_NOT_ASKED: PeerOutcome
PEER_OUTCOME_UNVERIFIED: PeerOutcome

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("identity", "method", "roles", "node_id")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    identity: str
    method: str
    roles: _containers.RepeatedScalarFieldContainer[str]
    node_id: str
    def __init__(self, identity: _Optional[str] = ..., method: _Optional[str] = ..., roles: _Optional[_Iterable[str]] = ..., node_id: _Optional[str] = ...) -> None: ...

class CaseContext(_message.Message):
    __slots__ = ("purpose", "legal_basis", "case_ref")
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    CASE_REF_FIELD_NUMBER: _ClassVar[int]
    purpose: str
    legal_basis: str
    case_ref: str
    def __init__(self, purpose: _Optional[str] = ..., legal_basis: _Optional[str] = ..., case_ref: _Optional[str] = ...) -> None: ...

class FanOut(_message.Message):
    __slots__ = ("peers", "context", "deadline_ms")
    PEERS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedScalarFieldContainer[str]
    context: CaseContext
    deadline_ms: int
    def __init__(self, peers: _Optional[_Iterable[str]] = ..., context: _Optional[_Union[CaseContext, _Mapping]] = ..., deadline_ms: _Optional[int] = ...) -> None: ...

class PeerResult(_message.Message):
    __slots__ = ("peer", "outcome", "results", "status", "reason", "refusal_verified", "peer_audit_seq", "request_digest", "hits")
    PEER_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    PEER_AUDIT_SEQ_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    peer: str
    outcome: PeerOutcome
    results: _containers.RepeatedCompositeFieldContainer[_bxnode_pb2.ItemResult]
    status: str
    reason: str
    refusal_verified: bool
    peer_audit_seq: int
    request_digest: bytes
    hits: int
    def __init__(self, peer: _Optional[str] = ..., outcome: _Optional[_Union[PeerOutcome, str]] = ..., results: _Optional[_Iterable[_Union[_bxnode_pb2.ItemResult, _Mapping]]] = ..., status: _Optional[str] = ..., reason: _Optional[str] = ..., refusal_verified: _Optional[bool] = ..., peer_audit_seq: _Optional[int] = ..., request_digest: _Optional[bytes] = ..., hits: _Optional[int] = ...) -> None: ...

class FanOutResult(_message.Message):
    __slots__ = ("peers", "audit_seq")
    PEERS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_SEQ_FIELD_NUMBER: _ClassVar[int]
    peers: _containers.RepeatedCompositeFieldContainer[PeerResult]
    audit_seq: int
    def __init__(self, peers: _Optional[_Iterable[_Union[PeerResult, _Mapping]]] = ..., audit_seq: _Optional[int] = ...) -> None: ...

class LookupDocumentRequest(_message.Message):
    __slots__ = ("target", "document")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    target: FanOut
    document: _bxnode_pb2.DocumentQuery
    def __init__(self, target: _Optional[_Union[FanOut, _Mapping]] = ..., document: _Optional[_Union[_bxnode_pb2.DocumentQuery, _Mapping]] = ...) -> None: ...

class LookupDocumentResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: FanOutResult
    def __init__(self, result: _Optional[_Union[FanOutResult, _Mapping]] = ...) -> None: ...

class LookupPersonRequest(_message.Message):
    __slots__ = ("target", "person")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PERSON_FIELD_NUMBER: _ClassVar[int]
    target: FanOut
    person: _bxnode_pb2.PersonQuery
    def __init__(self, target: _Optional[_Union[FanOut, _Mapping]] = ..., person: _Optional[_Union[_bxnode_pb2.PersonQuery, _Mapping]] = ...) -> None: ...

class LookupPersonResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: FanOutResult
    def __init__(self, result: _Optional[_Union[FanOutResult, _Mapping]] = ...) -> None: ...

class LookupMrzRequest(_message.Message):
    __slots__ = ("target", "mrz")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MRZ_FIELD_NUMBER: _ClassVar[int]
    target: FanOut
    mrz: str
    def __init__(self, target: _Optional[_Union[FanOut, _Mapping]] = ..., mrz: _Optional[str] = ...) -> None: ...

class LookupMrzResponse(_message.Message):
    __slots__ = ("result", "format")
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    result: FanOutResult
    format: str
    def __init__(self, result: _Optional[_Union[FanOutResult, _Mapping]] = ..., format: _Optional[str] = ...) -> None: ...

class LookupManifestRequest(_message.Message):
    __slots__ = ("target", "items")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    target: FanOut
    items: _containers.RepeatedCompositeFieldContainer[_bxnode_pb2.QueryItem]
    def __init__(self, target: _Optional[_Union[FanOut, _Mapping]] = ..., items: _Optional[_Iterable[_Union[_bxnode_pb2.QueryItem, _Mapping]]] = ...) -> None: ...

class LookupManifestResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: FanOutResult
    def __init__(self, result: _Optional[_Union[FanOutResult, _Mapping]] = ...) -> None: ...

class LookupPaxlstRequest(_message.Message):
    __slots__ = ("target", "message")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    target: FanOut
    message: str
    def __init__(self, target: _Optional[_Union[FanOut, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class LookupPaxlstResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: FanOutResult
    def __init__(self, result: _Optional[_Union[FanOutResult, _Mapping]] = ...) -> None: ...

class ConfirmCrossingsRequest(_message.Message):
    __slots__ = ("peer", "context", "questions")
    PEER_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    peer: str
    context: CaseContext
    questions: _containers.RepeatedCompositeFieldContainer[_crossings_pb2.CrossingQuestion]
    def __init__(self, peer: _Optional[str] = ..., context: _Optional[_Union[CaseContext, _Mapping]] = ..., questions: _Optional[_Iterable[_Union[_crossings_pb2.CrossingQuestion, _Mapping]]] = ...) -> None: ...

class ConfirmCrossingsResponse(_message.Message):
    __slots__ = ("answers", "peer_audit_seq")
    ANSWERS_FIELD_NUMBER: _ClassVar[int]
    PEER_AUDIT_SEQ_FIELD_NUMBER: _ClassVar[int]
    answers: _containers.RepeatedCompositeFieldContainer[_crossings_pb2.CrossingAnswer]
    peer_audit_seq: int
    def __init__(self, answers: _Optional[_Iterable[_Union[_crossings_pb2.CrossingAnswer, _Mapping]]] = ..., peer_audit_seq: _Optional[int] = ...) -> None: ...

class ReconcileCrossingsRequest(_message.Message):
    __slots__ = ("peer", "context", "from_ms", "to_ms", "transit_hours", "batch_size", "transit_ms")
    PEER_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    FROM_MS_FIELD_NUMBER: _ClassVar[int]
    TO_MS_FIELD_NUMBER: _ClassVar[int]
    TRANSIT_HOURS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    TRANSIT_MS_FIELD_NUMBER: _ClassVar[int]
    peer: str
    context: CaseContext
    from_ms: int
    to_ms: int
    transit_hours: int
    batch_size: int
    transit_ms: int
    def __init__(self, peer: _Optional[str] = ..., context: _Optional[_Union[CaseContext, _Mapping]] = ..., from_ms: _Optional[int] = ..., to_ms: _Optional[int] = ..., transit_hours: _Optional[int] = ..., batch_size: _Optional[int] = ..., transit_ms: _Optional[int] = ...) -> None: ...

class ReconcileLine(_message.Message):
    __slots__ = ("outcome", "record_id", "event", "bcp", "crossed_at", "peer_bcp", "peer_crossed_at", "doc_number", "doc_state", "doc_type")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    RECORD_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    BCP_FIELD_NUMBER: _ClassVar[int]
    CROSSED_AT_FIELD_NUMBER: _ClassVar[int]
    PEER_BCP_FIELD_NUMBER: _ClassVar[int]
    PEER_CROSSED_AT_FIELD_NUMBER: _ClassVar[int]
    DOC_NUMBER_FIELD_NUMBER: _ClassVar[int]
    DOC_STATE_FIELD_NUMBER: _ClassVar[int]
    DOC_TYPE_FIELD_NUMBER: _ClassVar[int]
    outcome: str
    record_id: str
    event: str
    bcp: str
    crossed_at: str
    peer_bcp: str
    peer_crossed_at: str
    doc_number: str
    doc_state: str
    doc_type: str
    def __init__(self, outcome: _Optional[str] = ..., record_id: _Optional[str] = ..., event: _Optional[str] = ..., bcp: _Optional[str] = ..., crossed_at: _Optional[str] = ..., peer_bcp: _Optional[str] = ..., peer_crossed_at: _Optional[str] = ..., doc_number: _Optional[str] = ..., doc_state: _Optional[str] = ..., doc_type: _Optional[str] = ...) -> None: ...

class ReconcileCrossingsResponse(_message.Message):
    __slots__ = ("checked", "matched", "exit_without_entry", "entry_without_exit", "batches", "lines")
    CHECKED_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    EXIT_WITHOUT_ENTRY_FIELD_NUMBER: _ClassVar[int]
    ENTRY_WITHOUT_EXIT_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    checked: int
    matched: int
    exit_without_entry: int
    entry_without_exit: int
    batches: int
    lines: _containers.RepeatedCompositeFieldContainer[ReconcileLine]
    def __init__(self, checked: _Optional[int] = ..., matched: _Optional[int] = ..., exit_without_entry: _Optional[int] = ..., entry_without_exit: _Optional[int] = ..., batches: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[ReconcileLine, _Mapping]]] = ...) -> None: ...

class StoreCrossingsRequest(_message.Message):
    __slots__ = ("records", "source")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_crossings_pb2.CrossingRecord]
    source: str
    def __init__(self, records: _Optional[_Iterable[_Union[_crossings_pb2.CrossingRecord, _Mapping]]] = ..., source: _Optional[str] = ...) -> None: ...

class StoreCrossingsResponse(_message.Message):
    __slots__ = ("recorded", "duplicates")
    RECORDED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    recorded: int
    duplicates: int
    def __init__(self, recorded: _Optional[int] = ..., duplicates: _Optional[int] = ...) -> None: ...

class SentFollowUp(_message.Message):
    __slots__ = ("followup_id", "peer", "state", "fields", "reason", "deadline_ms")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    FOLLOWUP_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    followup_id: str
    peer: str
    state: str
    fields: _containers.ScalarMap[str, str]
    reason: str
    deadline_ms: int
    def __init__(self, followup_id: _Optional[str] = ..., peer: _Optional[str] = ..., state: _Optional[str] = ..., fields: _Optional[_Mapping[str, str]] = ..., reason: _Optional[str] = ..., deadline_ms: _Optional[int] = ...) -> None: ...

class SendFollowUpRequest(_message.Message):
    __slots__ = ("peer", "context", "reference", "lookup_digest", "item_index", "fields")
    PEER_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    LOOKUP_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ITEM_INDEX_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    peer: str
    context: CaseContext
    reference: str
    lookup_digest: bytes
    item_index: int
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, peer: _Optional[str] = ..., context: _Optional[_Union[CaseContext, _Mapping]] = ..., reference: _Optional[str] = ..., lookup_digest: _Optional[bytes] = ..., item_index: _Optional[int] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class SendFollowUpResponse(_message.Message):
    __slots__ = ("followup",)
    FOLLOWUP_FIELD_NUMBER: _ClassVar[int]
    followup: SentFollowUp
    def __init__(self, followup: _Optional[_Union[SentFollowUp, _Mapping]] = ...) -> None: ...

class PollFollowUpRequest(_message.Message):
    __slots__ = ("peer", "followup_id", "context")
    PEER_FIELD_NUMBER: _ClassVar[int]
    FOLLOWUP_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    peer: str
    followup_id: str
    context: CaseContext
    def __init__(self, peer: _Optional[str] = ..., followup_id: _Optional[str] = ..., context: _Optional[_Union[CaseContext, _Mapping]] = ...) -> None: ...

class PollFollowUpResponse(_message.Message):
    __slots__ = ("followup",)
    FOLLOWUP_FIELD_NUMBER: _ClassVar[int]
    followup: SentFollowUp
    def __init__(self, followup: _Optional[_Union[SentFollowUp, _Mapping]] = ...) -> None: ...

class AwaitFollowUpRequest(_message.Message):
    __slots__ = ("peer", "followup_id", "context", "timeout_s")
    PEER_FIELD_NUMBER: _ClassVar[int]
    FOLLOWUP_ID_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    peer: str
    followup_id: str
    context: CaseContext
    timeout_s: int
    def __init__(self, peer: _Optional[str] = ..., followup_id: _Optional[str] = ..., context: _Optional[_Union[CaseContext, _Mapping]] = ..., timeout_s: _Optional[int] = ...) -> None: ...

class AwaitFollowUpResponse(_message.Message):
    __slots__ = ("followup",)
    FOLLOWUP_FIELD_NUMBER: _ClassVar[int]
    followup: SentFollowUp
    def __init__(self, followup: _Optional[_Union[SentFollowUp, _Mapping]] = ...) -> None: ...

class DeskFollowUp(_message.Message):
    __slots__ = ("followup_id", "requester", "state", "record_kind", "requested", "released", "purpose", "case_ref", "filed_ms", "deadline_ms", "decided_by", "approval_pending_by", "approval_pending_fields", "hit_reference", "hit_audit_seq", "hit_item_index", "legal_basis", "operator", "allowed", "decided_ms", "deny_reason", "fetched_ms", "overdue")
    FOLLOWUP_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RECORD_KIND_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CASE_REF_FIELD_NUMBER: _ClassVar[int]
    FILED_MS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_PENDING_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_PENDING_FIELDS_FIELD_NUMBER: _ClassVar[int]
    HIT_REFERENCE_FIELD_NUMBER: _ClassVar[int]
    HIT_AUDIT_SEQ_FIELD_NUMBER: _ClassVar[int]
    HIT_ITEM_INDEX_FIELD_NUMBER: _ClassVar[int]
    LEGAL_BASIS_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    DECIDED_MS_FIELD_NUMBER: _ClassVar[int]
    DENY_REASON_FIELD_NUMBER: _ClassVar[int]
    FETCHED_MS_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    followup_id: str
    requester: str
    state: str
    record_kind: str
    requested: _containers.RepeatedScalarFieldContainer[str]
    released: _containers.RepeatedScalarFieldContainer[str]
    purpose: str
    case_ref: str
    filed_ms: int
    deadline_ms: int
    decided_by: str
    approval_pending_by: str
    approval_pending_fields: _containers.RepeatedScalarFieldContainer[str]
    hit_reference: str
    hit_audit_seq: int
    hit_item_index: int
    legal_basis: str
    operator: str
    allowed: _containers.RepeatedScalarFieldContainer[str]
    decided_ms: int
    deny_reason: str
    fetched_ms: int
    overdue: bool
    def __init__(self, followup_id: _Optional[str] = ..., requester: _Optional[str] = ..., state: _Optional[str] = ..., record_kind: _Optional[str] = ..., requested: _Optional[_Iterable[str]] = ..., released: _Optional[_Iterable[str]] = ..., purpose: _Optional[str] = ..., case_ref: _Optional[str] = ..., filed_ms: _Optional[int] = ..., deadline_ms: _Optional[int] = ..., decided_by: _Optional[str] = ..., approval_pending_by: _Optional[str] = ..., approval_pending_fields: _Optional[_Iterable[str]] = ..., hit_reference: _Optional[str] = ..., hit_audit_seq: _Optional[int] = ..., hit_item_index: _Optional[int] = ..., legal_basis: _Optional[str] = ..., operator: _Optional[str] = ..., allowed: _Optional[_Iterable[str]] = ..., decided_ms: _Optional[int] = ..., deny_reason: _Optional[str] = ..., fetched_ms: _Optional[int] = ..., overdue: _Optional[bool] = ...) -> None: ...

class ListDeskFollowUpsRequest(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...

class ListDeskFollowUpsResponse(_message.Message):
    __slots__ = ("followups",)
    FOLLOWUPS_FIELD_NUMBER: _ClassVar[int]
    followups: _containers.RepeatedCompositeFieldContainer[DeskFollowUp]
    def __init__(self, followups: _Optional[_Iterable[_Union[DeskFollowUp, _Mapping]]] = ...) -> None: ...

class ShowDeskFollowUpRequest(_message.Message):
    __slots__ = ("followup_id",)
    FOLLOWUP_ID_FIELD_NUMBER: _ClassVar[int]
    followup_id: str
    def __init__(self, followup_id: _Optional[str] = ...) -> None: ...

class ShowDeskFollowUpResponse(_message.Message):
    __slots__ = ("followup",)
    FOLLOWUP_FIELD_NUMBER: _ClassVar[int]
    followup: DeskFollowUp
    def __init__(self, followup: _Optional[_Union[DeskFollowUp, _Mapping]] = ...) -> None: ...

class ApproveFollowUpRequest(_message.Message):
    __slots__ = ("followup_id", "fields")
    FOLLOWUP_ID_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    followup_id: str
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, followup_id: _Optional[str] = ..., fields: _Optional[_Iterable[str]] = ...) -> None: ...

class ApproveFollowUpResponse(_message.Message):
    __slots__ = ("followup", "confirmation_pending")
    FOLLOWUP_FIELD_NUMBER: _ClassVar[int]
    CONFIRMATION_PENDING_FIELD_NUMBER: _ClassVar[int]
    followup: DeskFollowUp
    confirmation_pending: bool
    def __init__(self, followup: _Optional[_Union[DeskFollowUp, _Mapping]] = ..., confirmation_pending: _Optional[bool] = ...) -> None: ...

class DenyFollowUpRequest(_message.Message):
    __slots__ = ("followup_id", "reason")
    FOLLOWUP_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    followup_id: str
    reason: str
    def __init__(self, followup_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DenyFollowUpResponse(_message.Message):
    __slots__ = ("followup",)
    FOLLOWUP_FIELD_NUMBER: _ClassVar[int]
    followup: DeskFollowUp
    def __init__(self, followup: _Optional[_Union[DeskFollowUp, _Mapping]] = ...) -> None: ...

class AlertRecord(_message.Message):
    __slots__ = ("kind", "owner_ref", "action", "expires", "contact", "number", "issuing_state", "doc_type", "loss_type", "family_name", "given_names", "patronymic", "dob", "nationality", "sex")
    KIND_FIELD_NUMBER: _ClassVar[int]
    OWNER_REF_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ISSUING_STATE_FIELD_NUMBER: _ClassVar[int]
    DOC_TYPE_FIELD_NUMBER: _ClassVar[int]
    LOSS_TYPE_FIELD_NUMBER: _ClassVar[int]
    FAMILY_NAME_FIELD_NUMBER: _ClassVar[int]
    GIVEN_NAMES_FIELD_NUMBER: _ClassVar[int]
    PATRONYMIC_FIELD_NUMBER: _ClassVar[int]
    DOB_FIELD_NUMBER: _ClassVar[int]
    NATIONALITY_FIELD_NUMBER: _ClassVar[int]
    SEX_FIELD_NUMBER: _ClassVar[int]
    kind: str
    owner_ref: str
    action: str
    expires: str
    contact: str
    number: str
    issuing_state: str
    doc_type: str
    loss_type: str
    family_name: str
    given_names: str
    patronymic: str
    dob: str
    nationality: str
    sex: str
    def __init__(self, kind: _Optional[str] = ..., owner_ref: _Optional[str] = ..., action: _Optional[str] = ..., expires: _Optional[str] = ..., contact: _Optional[str] = ..., number: _Optional[str] = ..., issuing_state: _Optional[str] = ..., doc_type: _Optional[str] = ..., loss_type: _Optional[str] = ..., family_name: _Optional[str] = ..., given_names: _Optional[str] = ..., patronymic: _Optional[str] = ..., dob: _Optional[str] = ..., nationality: _Optional[str] = ..., sex: _Optional[str] = ...) -> None: ...

class AlertView(_message.Message):
    __slots__ = ("owner_ref", "kind", "source", "state", "action", "expires", "alert_id", "withdrawn_ms", "records")
    OWNER_REF_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_FIELD_NUMBER: _ClassVar[int]
    ALERT_ID_FIELD_NUMBER: _ClassVar[int]
    WITHDRAWN_MS_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    owner_ref: str
    kind: str
    source: str
    state: str
    action: str
    expires: str
    alert_id: str
    withdrawn_ms: int
    records: _containers.RepeatedCompositeFieldContainer[AlertRecord]
    def __init__(self, owner_ref: _Optional[str] = ..., kind: _Optional[str] = ..., source: _Optional[str] = ..., state: _Optional[str] = ..., action: _Optional[str] = ..., expires: _Optional[str] = ..., alert_id: _Optional[str] = ..., withdrawn_ms: _Optional[int] = ..., records: _Optional[_Iterable[_Union[AlertRecord, _Mapping]]] = ...) -> None: ...

class AddAlertRequest(_message.Message):
    __slots__ = ("alert", "source", "reason")
    ALERT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    alert: AlertRecord
    source: str
    reason: str
    def __init__(self, alert: _Optional[_Union[AlertRecord, _Mapping]] = ..., source: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class AddAlertResponse(_message.Message):
    __slots__ = ("alert",)
    ALERT_FIELD_NUMBER: _ClassVar[int]
    alert: AlertView
    def __init__(self, alert: _Optional[_Union[AlertView, _Mapping]] = ...) -> None: ...

class UpdateAlertRequest(_message.Message):
    __slots__ = ("owner_ref", "changes", "reason")
    class ChangesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    OWNER_REF_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    owner_ref: str
    changes: _containers.ScalarMap[str, str]
    reason: str
    def __init__(self, owner_ref: _Optional[str] = ..., changes: _Optional[_Mapping[str, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class UpdateAlertResponse(_message.Message):
    __slots__ = ("alert",)
    ALERT_FIELD_NUMBER: _ClassVar[int]
    alert: AlertView
    def __init__(self, alert: _Optional[_Union[AlertView, _Mapping]] = ...) -> None: ...

class WithdrawAlertRequest(_message.Message):
    __slots__ = ("owner_ref", "reason")
    OWNER_REF_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    owner_ref: str
    reason: str
    def __init__(self, owner_ref: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class WithdrawAlertResponse(_message.Message):
    __slots__ = ("alert",)
    ALERT_FIELD_NUMBER: _ClassVar[int]
    alert: AlertView
    def __init__(self, alert: _Optional[_Union[AlertView, _Mapping]] = ...) -> None: ...

class ShowAlertRequest(_message.Message):
    __slots__ = ("owner_ref",)
    OWNER_REF_FIELD_NUMBER: _ClassVar[int]
    owner_ref: str
    def __init__(self, owner_ref: _Optional[str] = ...) -> None: ...

class ShowAlertResponse(_message.Message):
    __slots__ = ("alert",)
    ALERT_FIELD_NUMBER: _ClassVar[int]
    alert: AlertView
    def __init__(self, alert: _Optional[_Union[AlertView, _Mapping]] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("kind", "source", "state", "action", "limit")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    source: str
    state: str
    action: str
    limit: int
    def __init__(self, kind: _Optional[str] = ..., source: _Optional[str] = ..., state: _Optional[str] = ..., action: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts", "matched")
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    MATCHED_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[AlertView]
    matched: int
    def __init__(self, alerts: _Optional[_Iterable[_Union[AlertView, _Mapping]]] = ..., matched: _Optional[int] = ...) -> None: ...

class AlertStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AlertCount(_message.Message):
    __slots__ = ("kind", "source", "state", "count")
    KIND_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    kind: str
    source: str
    state: str
    count: int
    def __init__(self, kind: _Optional[str] = ..., source: _Optional[str] = ..., state: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class AlertStatsResponse(_message.Message):
    __slots__ = ("counts", "generation")
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedCompositeFieldContainer[AlertCount]
    generation: str
    def __init__(self, counts: _Optional[_Iterable[_Union[AlertCount, _Mapping]]] = ..., generation: _Optional[str] = ...) -> None: ...

class RetentionHold(_message.Message):
    __slots__ = ("case_ref", "placed_by", "placed_role", "placed_ms")
    CASE_REF_FIELD_NUMBER: _ClassVar[int]
    PLACED_BY_FIELD_NUMBER: _ClassVar[int]
    PLACED_ROLE_FIELD_NUMBER: _ClassVar[int]
    PLACED_MS_FIELD_NUMBER: _ClassVar[int]
    case_ref: str
    placed_by: str
    placed_role: str
    placed_ms: int
    def __init__(self, case_ref: _Optional[str] = ..., placed_by: _Optional[str] = ..., placed_role: _Optional[str] = ..., placed_ms: _Optional[int] = ...) -> None: ...

class PlaceHoldRequest(_message.Message):
    __slots__ = ("case_ref", "reason")
    CASE_REF_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    case_ref: str
    reason: str
    def __init__(self, case_ref: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class PlaceHoldResponse(_message.Message):
    __slots__ = ("hold", "by", "role")
    HOLD_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    hold: RetentionHold
    by: str
    role: str
    def __init__(self, hold: _Optional[_Union[RetentionHold, _Mapping]] = ..., by: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...

class ReleaseHoldRequest(_message.Message):
    __slots__ = ("case_ref", "reason")
    CASE_REF_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    case_ref: str
    reason: str
    def __init__(self, case_ref: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ReleaseHoldResponse(_message.Message):
    __slots__ = ("hold", "by", "role")
    HOLD_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    hold: RetentionHold
    by: str
    role: str
    def __init__(self, hold: _Optional[_Union[RetentionHold, _Mapping]] = ..., by: _Optional[str] = ..., role: _Optional[str] = ...) -> None: ...
