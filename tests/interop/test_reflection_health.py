"""Reflection as grpc.reflection.v1 (and v1alpha) and health per service, on a real node.

The reflection client here is built from raw bytes, field numbers as in the upstream
``grpc/reflection/v1/reflection.proto`` (not from the node's own descriptors), so a v1
the node described wrongly would fail here.  Health: every served service has its own
status besides "", and all of them turn NOT_SERVING together when the database does not
answer (the SQLCipher file locked by another process), SERVING again after.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2

from node.core.errors import RemoteError
from node.core.model import DocumentQuery, QueryKind
from tests.federation import CTX, Federation, make_federation
from tests.waiting import until

pytestmark = pytest.mark.integration

SERVICES = ["bxnode.v1.AuditService", "bxnode.v1.AuditorService", "bxnode.v1.CrossingService",
            "bxnode.v1.FollowUpService", "bxnode.v1.NodeService", "bxnode.v1.RegistryService",
            "bxnode.v1.WitnessService"]
REFLECTION = ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"]


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Federation]:
    f = make_federation(tmp_path_factory.mktemp("reflect"), ("KAZ-BS", "KGZ-BS"),
                        registry=True)
    f.start("KAZ-BS")
    yield f
    f.stop_all()


def channel(fed: Federation) -> grpc.Channel:
    d = fed.dirs["KGZ-BS"]
    creds = grpc.ssl_channel_credentials(
        root_certificates=(d / "ca.crt").read_bytes(), private_key=(d / "tls.key").read_bytes(),
        certificate_chain=(d / "tls.crt").read_bytes())
    return grpc.secure_channel(f"127.0.0.1:{fed.ports['KAZ-BS']}", creds)


# --- protobuf wire format, by hand (https://protobuf.dev/programming-guides/encoding/) -------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: bytes) -> bytes:  # wire type 2: length-delimited
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _fields(raw: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    i = 0

    def varint() -> int:
        nonlocal i
        n = shift = 0
        while True:
            b = raw[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n

    while i < len(raw):
        key = varint()
        if key & 7 == 0:
            out.append((key >> 3, varint()))
        elif key & 7 == 2:
            size = varint()
            out.append((key >> 3, raw[i:i + size]))
            i += size
        else:
            raise AssertionError(f"unexpected wire type {key & 7}")
    return out


def reflect(fed: Federation, service: str, requests: list[bytes]) -> list[dict[int, Any]]:
    """ServerReflectionInfo on ``service``: each answer as {field number: value} (the last
    value of a repeated field is kept; see _all for the others)."""
    with channel(fed) as ch:
        call: grpc.StreamStreamMultiCallable[bytes, bytes] = ch.stream_stream(
            f"/{service}/ServerReflectionInfo")
        answers = list(call(iter(requests), timeout=10))
    return [dict(_fields(a)) for a in answers]


def _all(raw: bytes, number: int) -> list[bytes]:
    return [v for n, v in _fields(raw) if n == number and isinstance(v, bytes)]


# ServerReflectionRequest: host = 1, file_by_filename = 3, file_containing_symbol = 4,
# list_services = 7.  ServerReflectionResponse: valid_host = 1, original_request = 2,
# file_descriptor_response = 4 {repeated bytes file_descriptor_proto = 1},
# list_services_response = 6 {repeated ServiceResponse service = 1 {name = 1}},
# error_response = 7 {int32 error_code = 1, string error_message = 2}.
LIST = _field(7, b"")


def symbol(name: str) -> bytes:
    return _field(4, name.encode())


def listed(answer: dict[int, Any]) -> list[str]:
    return sorted(_all(s, 1)[-1].decode() for s in _all(answer[6], 1))  # name = 1


def files(answer: dict[int, Any]) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    out = {}
    for raw in _all(answer[4], 1):
        fdp = descriptor_pb2.FileDescriptorProto.FromString(raw)
        out[fdp.name] = fdp
    return out


@pytest.mark.parametrize("service", REFLECTION)
def test_reflection_lists_every_service_and_describes_them(fed: Federation,
                                                            service: str) -> None:
    listing, node, own, missing = reflect(fed, service, [
        LIST, symbol("bxnode.v1.NodeService"), symbol("grpc.reflection.v1.ServerReflection"),
        symbol("bxnode.v1.NoSuchService")])
    assert listed(listing) == sorted([*SERVICES, "grpc.health.v1.Health", *REFLECTION])
    assert listing[2] == LIST  # original_request echoed
    fdp = files(node)["bxnode/v1/bxnode.proto"]
    assert (fdp.package, [s.name for s in fdp.service]) == ("bxnode.v1", ["NodeService"])
    assert [(m.name, m.input_type, m.output_type) for m in fdp.service[0].method] == [
        ("Lookup", ".bxnode.v1.LookupRequest", ".bxnode.v1.LookupResponse")]
    v1 = files(own)["grpc/reflection/v1/reflection.proto"]
    assert v1.package == "grpc.reflection.v1"
    [method] = v1.service[0].method
    assert (v1.service[0].name, method.name, method.input_type, method.output_type,
            method.client_streaming, method.server_streaming) == (
        "ServerReflection", "ServerReflectionInfo", ".grpc.reflection.v1.ServerReflectionRequest",
        ".grpc.reflection.v1.ServerReflectionResponse", True, True)
    assert {f.type_name for m in v1.message_type for f in m.field if f.type_name} == {
        f".grpc.reflection.v1.{n}" for n in (
            "ExtensionRequest", "ServerReflectionRequest", "FileDescriptorResponse",
            "ExtensionNumberResponse", "ListServiceResponse", "ErrorResponse",
            "ServiceResponse")}
    error = dict(_fields(missing[7]))
    assert error[1] == grpc.StatusCode.NOT_FOUND.value[0]


def test_dependencies_are_fetched_by_file_name(fed: Federation) -> None:
    [answer] = reflect(fed, REFLECTION[0], [_field(3, b"bxnode/v1/bxnode.proto")])
    fdp = files(answer)["bxnode/v1/bxnode.proto"]
    deps = reflect(fed, REFLECTION[0], [_field(3, d.encode()) for d in fdp.dependency])
    assert [sorted(files(a)) for a in deps] == [[d] for d in fdp.dependency]


# --- health ----------------------------------------------------------------------------------

def health(fed: Federation, names: list[str]) -> list[str]:
    with channel(fed) as ch:
        check: grpc.UnaryUnaryMultiCallable[health_pb2.HealthCheckRequest,
                                            health_pb2.HealthCheckResponse] = ch.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString)
        out = []
        for name in names:
            try:
                status = check(health_pb2.HealthCheckRequest(service=name), timeout=5).status
                out.append(health_pb2.HealthCheckResponse.ServingStatus.Name(status))
            except grpc.RpcError as err:
                out.append(err.code().name)
    return out


def poll(cond: Callable[[], bool], *, timeout: float, what: str) -> None:
    until(what, cond, timeout=timeout)


LOCKER = """
import sys, sqlcipher3
conn = sqlcipher3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA key = \\"x'" + sys.stdin.readline().strip() + "'\\"")
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT OR REPLACE INTO meta VALUES ('held_by_another_process', '1')")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def test_health_per_service_turns_not_serving_together(tmp_path: Any) -> None:
    fed = make_federation(tmp_path, ("KAZ-BS", "KGZ-BS"), registry=True)
    toml = fed.dirs["KAZ-BS"] / "node.toml"
    text = toml.read_text()
    assert "\n[storage]\n" in text
    toml.write_text(text.replace("\n[storage]\n", "\n[storage]\nbusy_timeout_s = 1\n"))
    node = fed.start("KAZ-BS")
    names = ["", *SERVICES]
    assert node.server.health_names == tuple(names)
    locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(fed.dirs["KAZ-BS"] / "node.db")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    client = fed.client("KGZ-BS", store=False)
    try:
        assert health(fed, [*names, "bxnode.v1.NoSuchService"]) == [
            *["SERVING"] * len(names), "NOT_FOUND"]
        assert locker.stdin is not None and locker.stdout is not None
        locker.stdin.write((fed.dirs["KAZ-BS"] / "db.key").read_text().strip() + "\n")
        locker.stdin.flush()
        assert locker.stdout.readline().strip() == "locked"
        request = client.build(CTX, QueryKind.DOCUMENT,
                               [DocumentQuery(number="N1122334", issuing_state="KAZ")])
        with pytest.raises(RemoteError) as err:  # its batch cannot commit
            client.send("KAZ-BS", request, expected_items=1)
        assert (err.value.status, err.value.reason) == ("UNAVAILABLE", "audit_unavailable")
        poll(lambda: health(fed, names) == ["NOT_SERVING"] * len(names), timeout=10,
             what="every service NOT_SERVING while the database is locked")
        locker.stdin.write("release\n")
        locker.stdin.flush()
        assert locker.wait(10) == 0
        poll(lambda: health(fed, names) == ["SERVING"] * len(names), timeout=10,
             what="every service SERVING once the database answers")
    finally:
        if locker.poll() is None:
            locker.kill()
            locker.wait(5)
        client.close()
        fed.stop_all()
