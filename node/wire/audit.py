"""Protobuf <-> values for the audit services (proto/bxnode/v1/audit.proto)."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError

from node.core.errors import InvalidInput, Unauthenticated
from node.core.model import RequestHeader
from node.wire import convert
from node.wire._gen import audit_pb2 as apb

__all__ = [
    "PROOF_REQUEST_TYPE",
    "PROOF_RESPONSE_TYPE",
    "ProofRequest",
    "apb",
    "decode_proof_answer",
    "decode_proof_request",
    "encode_proof_answer",
    "encode_proof_request",
]

PROOF_REQUEST_TYPE = "application/vnd.bxnode.v1.inclusion-proof-request+proto"
PROOF_RESPONSE_TYPE = "application/vnd.bxnode.v1.inclusion-proof+proto"


@dataclass(frozen=True, slots=True)
class ProofRequest:
    header: RequestHeader
    request_digest: bytes


def encode_proof_request(r: ProofRequest) -> bytes:
    return bytes(apb.InclusionProofPayload(
        header=convert.header_to_pb(r.header),
        request_digest=r.request_digest).SerializeToString())


def decode_proof_request(payload: bytes) -> ProofRequest:
    try:
        msg = apb.InclusionProofPayload.FromString(payload)
    except DecodeError as exc:
        raise InvalidInput("proof request does not parse", reason="malformed_payload") from exc
    if not msg.HasField("header"):
        raise InvalidInput("proof request has no header", reason="malformed_payload")
    if len(msg.request_digest) != 32:
        raise InvalidInput("request digest must be 32 bytes", reason="malformed_payload")
    return ProofRequest(convert.header_from_pb(msg.header), bytes(msg.request_digest))


def encode_proof_answer(*, responder: str, key_id: str, request_digest: bytes,
                        issued_at_ms: int, audit_seq: int, bundle: bytes) -> bytes:
    return bytes(apb.InclusionProofResultPayload(
        responder=responder, key_id=key_id, request_digest=request_digest,
        issued_at_ms=issued_at_ms, audit_seq=audit_seq, bundle=bundle).SerializeToString())


def decode_proof_answer(payload: bytes) -> bytes:
    """The bundle carried by a (signature-checked) proof answer."""
    try:
        return bytes(apb.InclusionProofResultPayload.FromString(payload).bundle)
    except DecodeError as exc:
        raise Unauthenticated("proof answer does not parse", reason="bad_response") from exc
