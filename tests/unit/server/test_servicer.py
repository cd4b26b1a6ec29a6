"""Servicer tests with pytest-grpc's real in-process server (thread pool, plaintext).

pytest-grpc serves over an insecure port, so the TLS identity check (step 5) is
not exercised here; the integration tests cover it over real mTLS.  Everything
else is the real node: SQLCipher file, Rego policy, signed envelopes, audit.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import grpc
import nacl.signing
import pytest

from node.app import NodeRuntime, now_ms
from node.config import load_config
from node.core import envelope as env_mod
from node.core.model import DocumentQuery, LookupAnswer, LookupRequest, QueryKind, RequestHeader
from node.server.grpc_server import REASON_KEY, SignedMethod, SyncNodeServicer, envelope_message
from node.wire import convert
from node.wire._gen import bxnode_pb2_grpc as pb_grpc
from node.wire.convert import pb
from node.wire.trailers import trailers
from tests.federation import make_federation


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeRuntime, Any]]:
    fed = make_federation(tmp_path_factory.mktemp("svc"), node_ids=("KAZ-BS", "KGZ-BS", "UZB-BS"))
    rt = NodeRuntime.load(load_config(fed.dirs["KAZ-BS"]))
    yield rt, fed
    rt.close()


@pytest.fixture(scope="module")
def grpc_add_to_server() -> Any:
    return pb_grpc.add_NodeServiceServicer_to_server


@pytest.fixture(scope="module")
def grpc_servicer(runtime: tuple[NodeRuntime, Any]) -> SyncNodeServicer:
    return SyncNodeServicer(responder=runtime[0].responder, lookup=runtime[0].lookup,
                            dev_plaintext=True)


@pytest.fixture(scope="module")
def grpc_stub_cls(grpc_channel: grpc.Channel) -> Any:
    return pb_grpc.NodeServiceStub


def _request(fed: Any, number: str, node: str = "KGZ-BS", **over: Any) -> pb.LookupRequest:
    seed = (fed.dirs[node] / "signing.key").read_text().strip()
    key = nacl.signing.SigningKey(bytes.fromhex(seed))
    fields: dict[str, Any] = dict(
        requester=node, key_id=env_mod.key_id_for(bytes(key.verify_key)),
        operator="officer-1", purpose="border_check", legal_basis="art. 7", case_ref="C-1",
        issued_at_ms=now_ms(), nonce=os.urandom(24))
    fields.update(over)
    req = LookupRequest(header=RequestHeader(**fields), kind=QueryKind.DOCUMENT,
                        items=(DocumentQuery(number=number, issuing_state="KAZ"),))
    env = env_mod.sign(payload_type=env_mod.REQUEST_TYPE, payload=convert.encode_request(req),
                       signer=node, key=key)
    return pb.LookupRequest(envelope=convert.envelope_to_pb(env))


def test_servicer_answers_a_signed_lookup(grpc_stub: Any, runtime: Any) -> None:
    resp = grpc_stub.Lookup(_request(runtime[1], "N0481516"))
    body = convert.decode_response(resp.envelope.payload)
    assert isinstance(body, LookupAnswer), body
    assert body.responder == "KAZ-BS"
    assert [(r.outcome.value, r.reference) for r in body.results] == [
        ("hit", "KAZ-SLTD-2026-000117")]


def test_servicer_refuses_with_status_and_reason(grpc_stub: Any, runtime: Any) -> None:
    req = _request(runtime[1], "N0481516", "UZB-BS", purpose="criminal_investigation")
    with pytest.raises(grpc.RpcError) as err:
        grpc_stub.Lookup(req)
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    md = trailers(err.value)
    assert md[REASON_KEY] == "purpose_not_agreed"
    with pytest.raises(grpc.RpcError) as again:
        grpc_stub.Lookup(req)  # the very same request again
    assert trailers(again.value)[REASON_KEY] == "replayed_nonce"
    assert again.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_servicer_rejects_an_empty_request(grpc_stub: Any) -> None:
    with pytest.raises(grpc.RpcError) as err:
        grpc_stub.Lookup(pb.LookupRequest())
    assert err.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert trailers(err.value)[REASON_KEY] == "bad_envelope"


@pytest.mark.parametrize("size", [0, 1, 127, 128, 300, 16_383, 16_384, 2_097_152])
def test_a_response_wraps_the_envelope_exactly_as_protobuf_encodes_it(size: int) -> None:
    env = pb.SignedEnvelope(payload_type="t", payload=os.urandom(size), signer="KAZ-BS",
                            key_id="k", signature=b"s" * 64)
    wrapped = envelope_message(env.SerializeToString())
    assert wrapped == pb.LookupResponse(envelope=env).SerializeToString()
    assert pb.LookupResponse.FromString(wrapped).envelope == env


def test_a_signed_method_needs_envelope_as_field_one() -> None:
    with pytest.raises(TypeError, match="SignedEnvelope does not carry"):
        SignedMethod("S", "M", object(), pb.LookupRequest, pb.SignedEnvelope)  # type: ignore[arg-type]
