"""A plain gRPC client reads every refusal's reason from the standard details.

Real nodes over mTLS on 127.0.0.1 (and KAZ-BS's LocalService on its unix socket): each
refusal is read with grpcio-status' ``rpc_status.from_call`` (which also checks the
``google.rpc.Status`` code and message against the call's), its one detail unpacked as
``google.rpc.ErrorInfo``; its reason always equals ``bxnode-reason``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from node.core.model import DocumentQuery, QueryKind
from node.local.server import LocalApiServer, build_local_api
from node.wire import convert
from node.wire import registry as registry_wire
from node.wire.audit import apb
from node.wire.convert import pb
from node.wire.trailers import trailers
from tests.federation import CTX, Federation, make_federation

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    f = make_federation(tmp_path_factory.mktemp("details"), ("KAZ-BS", "KGZ-BS"),
                        registry=True)
    with (f.dirs["KAZ-BS"] / "node.toml").open("a") as toml:
        toml.write(f'\n[local]\napi_socket = "unix:officers.sock"\n'
                   f'client_ca = "{f.dirs["KAZ-BS"] / "ca.crt"}"\n')
    node = f.start("KAZ-BS")

    async def local_api() -> LocalApiServer:
        api = build_local_api(node.runtime, node.server)
        assert api is not None
        await api.start()
        return api

    api = asyncio.run_coroutine_threadsafe(local_api(), node.loop).result(10)
    yield f
    asyncio.run_coroutine_threadsafe(api.stop(0.5), node.loop).result(10)
    f.stop_all()


def _refusal(err: grpc.RpcError) -> tuple[str, str, str, dict[str, str], bool]:
    """(status, bxnode-reason, ErrorInfo.reason, ErrorInfo.metadata, signed refusal sent)."""
    md = trailers(err)
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no grpc-status-details-bin"
    [detail] = status.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert info.domain == "bxnode"
    return (err.code().name, str(md["bxnode-reason"]), info.reason, dict(info.metadata),
            "bxnode-refusal-bin" in md)


def _call(channel: grpc.Channel, method: str, raw: bytes,
          metadata: tuple[tuple[str, str], ...] = ()) -> tuple[str, str, str, dict[str, str],
                                                                bool]:
    call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
    with pytest.raises(grpc.RpcError) as err:
        call(raw, timeout=10, metadata=metadata)
    return _refusal(err.value)


def _peer_channel(fed: Federation, as_node: str) -> grpc.Channel:
    d = fed.dirs[as_node]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{fed.ports['KAZ-BS']}", creds)


@pytest.mark.parametrize(("method", "raw", "expected"), [
    ("/bxnode.v1.NodeService/Lookup", b"\xff\xff",
     ("INVALID_ARGUMENT", "malformed_request", "malformed_request", {}, False)),
    ("/bxnode.v1.NodeService/Lookup", b"",
     ("INVALID_ARGUMENT", "bad_envelope", "bad_envelope", {}, False)),
    ("/bxnode.v1.AuditorService/SearchEntries", apb.SearchEntriesRequest().SerializeToString(),
     ("PERMISSION_DENIED", "not_an_auditor", "not_an_auditor", {}, False)),
    ("/bxnode.v1.WitnessService/AddCheckpoint",
     apb.AddCheckpointRequest(body=b"garbage").SerializeToString(),
     ("INVALID_ARGUMENT", "bad_witness_request", "bad_witness_request", {}, False)),
    (registry_wire.GET_REGISTRY_METHOD, b"\xff\xff\xff",
     ("INVALID_ARGUMENT", "malformed_request", "malformed_request", {}, False)),
])
def test_peer_services_refusals_carry_the_standard_details(
        fed: Federation, method: str, raw: bytes,
        expected: tuple[str, str, str, dict[str, str], bool]) -> None:
    with _peer_channel(fed, "KGZ-BS") as ch:
        assert _call(ch, method, raw) == expected


def test_a_replay_carries_the_signed_refusal_and_says_so_in_the_error_info(
        fed: Federation) -> None:
    client = fed.client("KGZ-BS", store=False)
    request = client.build(CTX, QueryKind.DOCUMENT,
                           [DocumentQuery(number="N1122334", issuing_state="KAZ")])
    raw = pb.LookupRequest(envelope=convert.envelope_to_pb(request)).SerializeToString()
    with _peer_channel(fed, "KGZ-BS") as ch:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = ch.unary_unary(
            "/bxnode.v1.NodeService/Lookup")
        assert pb.LookupResponse.FromString(call(raw, timeout=10)).HasField("envelope")
        assert _call(ch, "/bxnode.v1.NodeService/Lookup", raw) == (
            "UNAUTHENTICATED", "replayed_nonce", "replayed_nonce",
            {"signedRefusal": "bxnode-refusal-bin"}, True)


def _local_channel(fed: Federation) -> grpc.Channel:
    d: Path = fed.dirs["KAZ-BS"]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    return grpc.secure_channel(f"unix:{(d / 'officers.sock').resolve()}", creds,
                               options=(("grpc.ssl_target_name_override", "localhost"),))


@pytest.mark.parametrize(("metadata", "expected"), [
    ((), ("PERMISSION_DENIED", "role_required", "role_required", {}, False)),
    ((("authorization", "Basic a2F6"),),
     ("UNAUTHENTICATED", "bad_token", "bad_token", {}, False)),
])
def test_local_service_refusals_carry_the_standard_details(
        fed: Federation, metadata: tuple[tuple[str, str], ...],
        expected: tuple[str, str, str, dict[str, str], bool]) -> None:
    """The node's own certificate, presented as an officer's, holds no role here."""
    with _local_channel(fed) as ch:
        assert _call(ch, "/bxnode.v1.LocalService/WhoAmI", b"", metadata) == expected
