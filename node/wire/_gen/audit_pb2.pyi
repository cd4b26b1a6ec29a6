from . import bxnode_pb2 as _bxnode_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetInclusionProofRequest(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _bxnode_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_bxnode_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class GetInclusionProofResponse(_message.Message):
    __slots__ = ("envelope",)
    ENVELOPE_FIELD_NUMBER: _ClassVar[int]
    envelope: _bxnode_pb2.SignedEnvelope
    def __init__(self, envelope: _Optional[_Union[_bxnode_pb2.SignedEnvelope, _Mapping]] = ...) -> None: ...

class InclusionProofPayload(_message.Message):
    __slots__ = ("header", "request_digest")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    header: _bxnode_pb2.RequestHeader
    request_digest: bytes
    def __init__(self, header: _Optional[_Union[_bxnode_pb2.RequestHeader, _Mapping]] = ..., request_digest: _Optional[bytes] = ...) -> None: ...

class InclusionProofResultPayload(_message.Message):
    __slots__ = ("responder", "key_id", "request_digest", "issued_at_ms", "audit_seq", "bundle")
    RESPONDER_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    AUDIT_SEQ_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    responder: str
    key_id: str
    request_digest: bytes
    issued_at_ms: int
    audit_seq: int
    bundle: bytes
    def __init__(self, responder: _Optional[str] = ..., key_id: _Optional[str] = ..., request_digest: _Optional[bytes] = ..., issued_at_ms: _Optional[int] = ..., audit_seq: _Optional[int] = ..., bundle: _Optional[bytes] = ...) -> None: ...

class AddCheckpointRequest(_message.Message):
    __slots__ = ("body",)
    BODY_FIELD_NUMBER: _ClassVar[int]
    body: bytes
    def __init__(self, body: _Optional[bytes] = ...) -> None: ...

class AddCheckpointResponse(_message.Message):
    __slots__ = ("cosignatures",)
    COSIGNATURES_FIELD_NUMBER: _ClassVar[int]
    cosignatures: bytes
    def __init__(self, cosignatures: _Optional[bytes] = ...) -> None: ...

class GetWitnessedCheckpointRequest(_message.Message):
    __slots__ = ("origin",)
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    origin: str
    def __init__(self, origin: _Optional[str] = ...) -> None: ...

class GetWitnessedCheckpointResponse(_message.Message):
    __slots__ = ("checkpoint", "cosignatures")
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    COSIGNATURES_FIELD_NUMBER: _ClassVar[int]
    checkpoint: bytes
    cosignatures: bytes
    def __init__(self, checkpoint: _Optional[bytes] = ..., cosignatures: _Optional[bytes] = ...) -> None: ...

class SearchEntriesRequest(_message.Message):
    __slots__ = ("peer", "purpose", "outcome", "operator", "case_ref", "from_ms", "to_ms", "limit")
    PEER_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    CASE_REF_FIELD_NUMBER: _ClassVar[int]
    FROM_MS_FIELD_NUMBER: _ClassVar[int]
    TO_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    peer: str
    purpose: str
    outcome: str
    operator: str
    case_ref: str
    from_ms: int
    to_ms: int
    limit: int
    def __init__(self, peer: _Optional[str] = ..., purpose: _Optional[str] = ..., outcome: _Optional[str] = ..., operator: _Optional[str] = ..., case_ref: _Optional[str] = ..., from_ms: _Optional[int] = ..., to_ms: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class SearchEntriesResponse(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, entries: _Optional[_Iterable[bytes]] = ...) -> None: ...

class GetProofBundleRequest(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class GetProofBundleResponse(_message.Message):
    __slots__ = ("bundle",)
    BUNDLE_FIELD_NUMBER: _ClassVar[int]
    bundle: bytes
    def __init__(self, bundle: _Optional[bytes] = ...) -> None: ...
