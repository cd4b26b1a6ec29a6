"""RegistryService messages <-> bytes (the only place the registry stubs are imported)."""

from __future__ import annotations

from google.protobuf.message import DecodeError

from node.core.errors import InvalidInput, Unauthenticated
from node.wire._gen import registry_pb2 as rpb

__all__ = ["GET_REGISTRY_METHOD", "SERVICE_NAME", "decode_get_request", "decode_get_response",
           "encode_get_request", "encode_get_response"]

SERVICE_NAME: str = rpb.DESCRIPTOR.services_by_name["RegistryService"].full_name
GET_REGISTRY_METHOD = f"/{SERVICE_NAME}/GetRegistry"


def encode_get_request(version: int) -> bytes:
    return bytes(rpb.GetRegistryRequest(version=version).SerializeToString())


def decode_get_request(raw: bytes) -> int:
    try:
        return int(rpb.GetRegistryRequest.FromString(raw).version)
    except DecodeError:
        raise InvalidInput("request is not a GetRegistryRequest",
                           reason="malformed_request") from None


def encode_get_response(document: bytes, version: int) -> bytes:
    return bytes(rpb.GetRegistryResponse(document=document, version=version).SerializeToString())


def decode_get_response(raw: bytes) -> bytes:
    try:
        return bytes(rpb.GetRegistryResponse.FromString(raw).document)
    except DecodeError:
        raise Unauthenticated("response is not a GetRegistryResponse",
                              reason="bad_response") from None
