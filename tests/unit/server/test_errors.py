"""node/server/errors.py: every refusal's trailers, and that no other module aborts a call."""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from node.server.errors import abort_reply_sync, refusal_metadata
from node.wire.trailers import reason, trailers

NODE = Path(__file__).resolve().parents[3] / "node"


def _standard(md: tuple[tuple[str, str | bytes], ...]) -> tuple[status_pb2.Status,
                                                                   error_details_pb2.ErrorInfo]:
    [raw] = [v for k, v in md if k == "grpc-status-details-bin"]
    assert isinstance(raw, bytes)
    status = status_pb2.Status.FromString(raw)
    [detail] = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    return status, info


def test_a_plain_refusal_carries_the_reason_twice_and_nothing_else() -> None:
    md = refusal_metadata(grpc.StatusCode.INVALID_ARGUMENT, "malformed_request",
                          "malformed_request: request is not a valid LookupRequest")
    assert [k for k, _ in md] == ["bxnode-reason", "grpc-status-details-bin"]
    assert md[0] == ("bxnode-reason", "malformed_request")
    status, info = _standard(md)
    assert (status.code, status.message) == (
        3, "malformed_request: request is not a valid LookupRequest")
    assert status.details[0].type_url == "type.googleapis.com/google.rpc.ErrorInfo"
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "malformed_request", "bxnode", {})


def test_a_signed_refusal_and_service_trailers_are_announced_in_the_error_info() -> None:
    md = refusal_metadata(grpc.StatusCode.ABORTED, "old_size_mismatch", "old_size_mismatch: x",
                          signed_refusal=b"\x0a\x01x",
                          trailers=(("bxnode-witness-size", "12"),))
    assert md[:3] == (("bxnode-reason", "old_size_mismatch"), ("bxnode-witness-size", "12"),
                      ("bxnode-refusal-bin", b"\x0a\x01x"))
    status, info = _standard(md)
    assert (status.code, info.reason, dict(info.metadata)) == (
        10, "old_size_mismatch", {"witnessSize": "12", "signedRefusal": "bxnode-refusal-bin"})


@pytest.mark.parametrize(("code", "why", "trailer", "error"), [
    (grpc.StatusCode.OK, "x", (), "a refusal needs a non-OK status"),
    (grpc.StatusCode.INTERNAL, "", (), "a refusal needs a reason code"),
    (grpc.StatusCode.INTERNAL, "x", (("witness-size", "1"),), "not a bxnode text trailer"),
    (grpc.StatusCode.INTERNAL, "x", (("bxnode-x-bin", "1"),), "not a bxnode text trailer"),
])
def test_a_malformed_refusal_is_a_bug_not_a_wire_message(
        code: grpc.StatusCode, why: str, trailer: tuple[tuple[str, str], ...],
        error: str) -> None:
    with pytest.raises(ValueError, match=error):
        refusal_metadata(code, why, "details", trailers=trailer)


class _Reply:
    def __init__(self, md: tuple[tuple[str, str | bytes], ...]) -> None:
        self.code, self.details, self.metadata = grpc.StatusCode.INTERNAL, "d", md


class _RecordingContext:
    """Stands in for a grpc.ServicerContext: records what abort_with_status was given."""

    def __init__(self) -> None:
        self.status: grpc.Status | None = None

    def abort_with_status(self, status: grpc.Status) -> None:
        self.status = status
        raise RuntimeError("aborted")


def test_a_reply_whose_metadata_was_made_by_hand_is_never_sent() -> None:
    ctx = _RecordingContext()
    with pytest.raises(AssertionError, match="refusal_metadata"):
        abort_reply_sync(ctx, _Reply((("bxnode-reason", "internal_error"),)))  # type: ignore[arg-type]
    assert ctx.status is None
    md = refusal_metadata(grpc.StatusCode.INTERNAL, "internal_error", "d")
    with pytest.raises(RuntimeError, match="aborted"):
        abort_reply_sync(ctx, _Reply(md))  # type: ignore[arg-type]
    assert ctx.status is not None
    assert (ctx.status.code, ctx.status.details, ctx.status.trailing_metadata) == (
        grpc.StatusCode.INTERNAL, "d", md)


def test_no_module_but_errors_py_ends_a_call() -> None:
    """Every refusal goes through node/server/errors.py, so every one carries the standard
    details: a servicer calling ``context.abort`` (or setting a status) itself fails here."""
    ends = {"abort", "abort_with_status", "set_code", "set_details", "set_trailing_metadata"}
    found = []
    for path in sorted(NODE.rglob("*.py")):
        if "_gen" in path.parts or path == NODE / "server" / "errors.py":
            continue
        for n in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                    and n.func.attr in ends):
                found.append(f"{path.relative_to(NODE)}:{n.lineno} .{n.func.attr}(")
    assert found == []


class _Metadatum(tuple[str, str | bytes]):
    """grpc's synchronous trailers are named tuples like this one."""


class _Err:
    def __init__(self, md: object) -> None:
        self._md = md

    def trailing_metadata(self) -> object:
        return self._md


def test_trailers_of_either_grpc_flavour() -> None:
    sync = _Err((_Metadatum(("bxnode-reason", "stale_request")),
                 _Metadatum(("bxnode-reason", "second")), _Metadatum(("x-bin", b"\x00"))))
    assert trailers(sync) == {"bxnode-reason": "stale_request", "x-bin": b"\x00"}
    aio = _Err(grpc.aio.Metadata(("bxnode-reason", "rate_limited")))
    assert (trailers(aio), reason(aio)) == ({"bxnode-reason": "rate_limited"}, "rate_limited")
    assert (trailers(_Err(None)), trailers(object()), reason(object())) == ({}, {}, "")
