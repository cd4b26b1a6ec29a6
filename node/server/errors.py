"""How a refusal goes on the wire: one builder for every service's trailing metadata.

Every refusal, on every service (peer, auditor, witness, registry, local), is a gRPC
status whose trailing metadata carries, in this order:

* ``bxnode-reason``: the stable reason code (node/core/reasons.py, README "Refusals");
* any service-specific trailer (``bxnode-witness-size`` on a witness's 409);
* ``bxnode-refusal-bin`` once the requester was verified: the signed Refusal envelope;
* ``grpc-status-details-bin``: the standard ``google.rpc.Status`` (code and message equal
  to the call's, as grpcio-status' ``from_call`` checks), whose one detail is an
  ``google.rpc.ErrorInfo{reason, domain: "bxnode", metadata}``, so any gRPC client reads
  the reason without our documentation.  ``ErrorInfo.reason`` is exactly ``bxnode-reason``
  (our lower-case codes, not AIP-193's upper-case: one code, one spelling).

Servicers never assemble these trailers by hand, nor abort a call themselves: they call
:func:`abort`, or build a :class:`~node.server.grpc_server.Reply` with
:func:`refusal_metadata` and end the call with :func:`abort_reply` (``abort_reply_sync``
on a thread-pool server).  tests/unit/server/test_errors.py checks that no other module
aborts a call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "ERROR_DOMAIN",
    "REASON_KEY",
    "REFUSAL_KEY",
    "STATUS_DETAILS_KEY",
    "Metadata",
    "abort",
    "abort_reply",
    "abort_reply_sync",
    "refusal_metadata",
]

REASON_KEY = "bxnode-reason"
REFUSAL_KEY = "bxnode-refusal-bin"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
#: ``ErrorInfo.domain``: the service that generated the error (AIP-193).
ERROR_DOMAIN = "bxnode"

Metadata = tuple[tuple[str, str | bytes], ...]


def refusal_metadata(code: grpc.StatusCode, reason: str, details: str, *,
                     signed_refusal: bytes | None = None,
                     trailers: Sequence[tuple[str, str]] = ()) -> Metadata:
    """The trailing metadata of one refusal.

    ``details`` must be the status message the call is aborted with (the standard
    details repeat it).  ``trailers`` are extra ``bxnode-*`` text trailers, repeated in
    ``ErrorInfo.metadata`` under their lowerCamelCase names (``bxnode-witness-size`` ->
    ``witnessSize``); ``signed_refusal`` is the serialized signed Refusal envelope,
    announced as ``ErrorInfo.metadata["signedRefusal"] = "bxnode-refusal-bin"``.
    """
    if code is grpc.StatusCode.OK:
        raise ValueError("a refusal needs a non-OK status")
    if not reason:
        raise ValueError("a refusal needs a reason code")
    meta = {_info_name(key): value for key, value in trailers}
    if signed_refusal is not None:
        meta["signedRefusal"] = REFUSAL_KEY
    error_info = error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=meta)
    status = status_pb2.Status(code=code.value[0], message=details)
    status.details.add().Pack(error_info)
    md: list[tuple[str, str | bytes]] = [(REASON_KEY, reason), *trailers]
    if signed_refusal is not None:
        md.append((REFUSAL_KEY, signed_refusal))
    md.extend(rpc_status.to_status(status).trailing_metadata)
    return tuple(md)


async def abort(context: grpc.aio.ServicerContext[Any, Any], code: grpc.StatusCode,
                reason: str, details: str, *,
                signed_refusal: bytes | None = None,
                trailers: Sequence[tuple[str, str]] = ()) -> NoReturn:
    """End the call with a refusal (see :func:`refusal_metadata`); never returns."""
    await context.abort(code, details, trailing_metadata=refusal_metadata(
        code, reason, details, signed_refusal=signed_refusal, trailers=trailers))
    raise AssertionError("abort returns by raising")


class RefusedReply(Protocol):
    """What :func:`abort_reply` needs of a reply (``grpc_server.Reply``)."""

    @property
    def code(self) -> grpc.StatusCode: ...
    @property
    def details(self) -> str: ...
    @property
    def metadata(self) -> Metadata: ...


async def abort_reply(context: grpc.aio.ServicerContext[Any, Any],
                      reply: RefusedReply) -> NoReturn:
    """End the call with a refused reply whose metadata :func:`refusal_metadata` built."""
    await context.abort(reply.code, reply.details, trailing_metadata=_checked(reply))
    raise AssertionError("abort returns by raising")


def abort_reply_sync(context: grpc.ServicerContext, reply: RefusedReply) -> NoReturn:
    """:func:`abort_reply` for a thread-pool ``grpc.server``."""
    context.abort_with_status(_Status(reply.code, reply.details, _checked(reply)))
    raise AssertionError("abort_with_status returns by raising")


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, metadata: Metadata) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = metadata


def _checked(reply: RefusedReply) -> Metadata:
    keys = [key for key, _ in reply.metadata]
    if reply.code is grpc.StatusCode.OK or REASON_KEY not in keys or (
            STATUS_DETAILS_KEY not in keys):
        raise AssertionError("a refused reply's metadata comes from refusal_metadata()")
    return reply.metadata


def _info_name(trailer: str) -> str:
    """``bxnode-witness-size`` -> ``witnessSize`` (AIP-193's lowerCamelCase keys)."""
    if not trailer.startswith("bxnode-") or trailer.endswith("-bin"):
        raise ValueError(f"not a bxnode text trailer: {trailer!r}")
    first, *rest = trailer.removeprefix("bxnode-").split("-")
    return first + "".join(word.capitalize() for word in rest)
