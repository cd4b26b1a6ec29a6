"""The peer client across several addresses, against scripted in-memory channels.

A stand-in for the network: each address either refuses the connection, hangs until the
deadline, breaks mid-call, refuses the request, or answers with a response signed by the
peer's key.  What the client sent where, and what it recorded, is checked exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import nacl.signing
import pytest

from node.client.failover import Attempt, Delivery, PeerUnreachable
from node.client.peer import PeerClient, QueryContext
from node.core import envelope as env_mod
from node.core.envelope import Envelope
from node.core.errors import BxError, RemoteError
from node.core.members import Member, MemberKey, StaticDirectory
from node.core.model import DocumentQuery, ItemResult, LookupAnswer, Outcome, QueryKind
from node.wire import convert
from node.wire.convert import pb
from tests.unit.client.test_failover import REFUSED, FakeRpcError

CTX = QueryContext(operator="officer-7", purpose="border_check", legal_basis="art. 7",
                   case_ref="CASE-1")
ITEMS = [DocumentQuery(number="N0481516", issuing_state="KAZ")]
PEER_KEY = nacl.signing.SigningKey(b"\x01" * 32)
OUR_KEY = nacl.signing.SigningKey(b"\x02" * 32)
A, B, C = "10.0.0.1:50051", "10.0.0.2:50051", "dns:///kgz-c.example:50051"


@dataclass
class Clock:
    now: float = 0.0
    ms: int = 1_790_000_000_000

    def monotonic(self) -> float:
        return self.now

    def wall_ms(self) -> int:
        self.ms += 1  # each request gets its own issued_at
        return self.ms


def signed_answer(request_wire: bytes, clock: Clock) -> bytes:
    request = convert.envelope_from_pb(pb.LookupRequest.FromString(request_wire).envelope)
    answer = LookupAnswer(responder="KGZ-BS", key_id=env_mod.key_id_for(bytes(PEER_KEY.verify_key)),
                          request_digest=env_mod.digest(request), issued_at_ms=clock.ms,
                          results=(ItemResult(index=0, outcome=Outcome.NO_HIT),), audit_seq=41)
    env = env_mod.sign(payload_type=env_mod.RESPONSE_TYPE, payload=convert.encode_answer(answer),
                       signer="KGZ-BS", key=PEER_KEY)
    return bytes(pb.LookupResponse(envelope=convert.envelope_to_pb(env)).SerializeToString())


@dataclass
class Network:
    clock: Clock
    script: dict[str, list[str]]
    sent: list[tuple[str, Envelope, float]] = field(default_factory=list)

    def call(self, address: str, wire: bytes, timeout: float) -> bytes:
        env = convert.envelope_from_pb(pb.LookupRequest.FromString(wire).envelope)
        self.sent.append((address, env, timeout))
        action = self.script[address].pop(0)
        if action == "refused":
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, REFUSED)
        if action == "hang":
            self.clock.now += timeout
            raise FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if action == "broken":
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "Socket closed")
        if action == "deny":
            raise FakeRpcError(grpc.StatusCode.PERMISSION_DENIED, "purpose not agreed")
        if action == "retry_later":
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "policy server did not answer",
                               reason="policy_unavailable")
        assert action == "answer"
        return signed_answer(wire, self.clock)


class FakeChannel:
    def __init__(self, net: Network, address: str) -> None:
        self.net, self.address = net, address

    def unary_unary(self, method: str) -> Any:
        assert method == "/bxnode.v1.NodeService/Lookup"
        return lambda wire, timeout: self.net.call(self.address, wire, timeout)

    def close(self) -> None:
        pass


class Client(PeerClient):
    """The real client with channels from the scripted network and ``keep`` recorded."""

    def __init__(self, net: Network, endpoint: tuple[str, ...], **kw: Any) -> None:
        peer = Member(node_id="KGZ-BS", country="KGZ", agency="Border Service",
                      endpoint=endpoint, roles=("node",),
                      keys=(MemberKey(env_mod.key_id_for(bytes(PEER_KEY.verify_key)),
                                      bytes(PEER_KEY.verify_key)),),
                      tls_cert_sha256=("ab" * 32,))
        super().__init__(node_id="KAZ-BS", signing_key=OUR_KEY,
                         directory=StaticDirectory(members=(peer,)), tls=None, store=None,
                         clock_ms=net.clock.wall_ms, monotonic=net.clock.monotonic,
                         dev_plaintext=True, **kw)
        self.net = net
        self.kept: list[dict[str, Any]] = []

    def _channel(self, address: str) -> Any:
        return FakeChannel(self.net, address)

    def keep(self, peer: str, request: Envelope, response: Envelope | None, *, outcome: str,
             error: BxError | None = None, address: str | None = None,
             extra: dict[str, object] | None = None) -> None:
        self.kept.append({"digest": env_mod.digest(request), "address": address,
                          "outcome": outcome, "answered": response is not None,
                          "status": error.status if error else None, **(extra or {})})


def nonce(env: Envelope) -> bytes:
    return bytes(convert.decode_request_header(env.payload).nonce)


def issued(env: Envelope) -> int:
    return convert.decode_request_header(env.payload).issued_at_ms


def test_a_dead_primary_passes_the_same_signed_request_on() -> None:
    net = Network(Clock(), {A: ["refused"], B: ["answer"]})
    client = Client(net, (A, B))
    out = client.lookup_outcome("KGZ-BS", CTX, QueryKind.DOCUMENT, ITEMS)
    (a1, first, _), (a2, second, _) = net.sent
    assert (a1, a2) == (A, B)
    assert first == second  # the very same bytes: they never left
    assert out.exchange.address == B and out.exchange.request == first
    assert out.answer.results[0].outcome is Outcome.NO_HIT
    assert out.exchange.attempts == (Attempt(A, "UNAVAILABLE", Delivery.NOT_SENT),
                                     Attempt(B, "OK"))
    digest = env_mod.digest(first)
    assert client.kept == [
        {"digest": digest, "address": A, "outcome": "unanswered", "answered": False,
         "status": "UNAVAILABLE", "reason": "peer_unavailable", "delivery": "not_sent"},
        {"digest": digest, "address": B, "outcome": "answered", "answered": True,
         "status": None, "items": 1, "hits": 0, "peer_audit_seq": 41}]


@pytest.mark.parametrize("failure", ["hang", "broken"])
def test_after_a_deadline_or_a_broken_call_a_fresh_request_goes_to_the_next(failure: str) -> None:
    net = Network(Clock(), {A: [failure], B: ["answer"]})
    client = Client(net, (A, B))
    out = client.lookup_outcome("KGZ-BS", CTX, QueryKind.DOCUMENT, ITEMS)
    (_, first, t1), (_, second, t2) = net.sent
    assert nonce(first) != nonce(second) and issued(first) < issued(second)
    assert env_mod.digest(first) != env_mod.digest(second)
    assert out.exchange.request == second and out.answer.request_digest == env_mod.digest(second)
    assert (t1, t2) == ((5.0, 5.0) if failure == "hang" else (5.0, 10.0))
    status = "DEADLINE_EXCEEDED" if failure == "hang" else "UNAVAILABLE"
    assert [(k["digest"], k["address"], k["outcome"], k.get("delivery"), k["status"])
            for k in client.kept] == [
        (env_mod.digest(first), A, "unanswered", "maybe_sent", status),
        (env_mod.digest(second), B, "answered", None, None)]


def test_a_refusal_is_not_tried_elsewhere() -> None:
    net = Network(Clock(), {A: ["deny"], B: ["answer"]})
    client = Client(net, (A, B))
    with pytest.raises(RemoteError) as err:
        client.lookup("KGZ-BS", CTX, QueryKind.DOCUMENT, ITEMS)
    assert err.value.status == "PERMISSION_DENIED"
    assert [a for a, _, _ in net.sent] == [A]
    assert [(k["address"], k["outcome"], k["status"]) for k in client.kept] == [
        (A, "refused", "PERMISSION_DENIED")]


def test_the_peers_own_retry_later_is_its_refusal_when_no_address_is_left() -> None:
    net = Network(Clock(), {A: ["retry_later"]})
    client = Client(net, (A,))
    with pytest.raises(RemoteError) as err:
        client.lookup("KGZ-BS", CTX, QueryKind.DOCUMENT, ITEMS)
    assert (err.value.status, err.value.reason) == ("UNAVAILABLE", "policy_unavailable")
    assert [(k["address"], k["outcome"], k["status"]) for k in client.kept] == [
        (A, "refused", "UNAVAILABLE")]


def test_the_peers_retry_later_sends_a_fresh_request_to_the_next_replica() -> None:
    net = Network(Clock(), {A: ["retry_later"], B: ["answer"]})
    client = Client(net, (A, B))
    out = client.lookup_outcome("KGZ-BS", CTX, QueryKind.DOCUMENT, ITEMS)
    (_, first, _), (_, second, _) = net.sent
    assert out.exchange.address == B and nonce(first) != nonce(second)
    assert [(k["address"], k["outcome"], k.get("reason")) for k in client.kept] == [
        (A, "unanswered", "policy_unavailable"), (B, "answered", None)]


def test_every_address_failing_names_each_and_records_each() -> None:
    net = Network(Clock(), {A: ["refused"], B: ["hang"], C: ["broken"]})
    client = Client(net, (A, B, C))
    with pytest.raises(PeerUnreachable) as err:
        client.lookup("KGZ-BS", CTX, QueryKind.DOCUMENT, ITEMS)
    assert str(err.value) == (
        f"peer KGZ-BS did not answer: {A} unavailable (not delivered); "
        f"{B} deadline_exceeded (may have been delivered); {C} unavailable (may have been "
        "delivered)")
    assert "N0481516" not in str(err.value)
    assert [(k["address"], k["delivery"]) for k in client.kept] == [
        (A, "not_sent"), (B, "maybe_sent"), (C, "maybe_sent")]
    assert len({env_mod.digest(e) for _, e, _ in net.sent}) == 2  # A and B got the same


def test_a_prebuilt_envelope_without_renew_is_never_resent_after_a_deadline() -> None:
    net = Network(Clock(), {A: ["hang"], B: ["answer"]})
    client = Client(net, (A, B))
    request = client.build(CTX, QueryKind.DOCUMENT, ITEMS)
    with pytest.raises(PeerUnreachable) as err:
        client.send("KGZ-BS", request, expected_items=1)
    assert [a for a, _, _ in net.sent] == [A]
    assert str(err.value).endswith(f"{B} not tried (the request may have been delivered and "
                                   "is not re-sent)")


def test_the_address_that_answered_is_tried_first_next_time() -> None:
    net = Network(Clock(), {A: ["refused", "answer"], B: ["answer", "refused"]})
    client = Client(net, (A, B))
    assert client.addresses("KGZ-BS") == (A, B)
    client.lookup("KGZ-BS", CTX, QueryKind.DOCUMENT, ITEMS)
    assert client.addresses("KGZ-BS") == (B, A)
    client.lookup("KGZ-BS", CTX, QueryKind.DOCUMENT, ITEMS)  # B refuses now: back to A
    assert [a for a, _, _ in net.sent] == [A, B, B, A]
    assert client.addresses("KGZ-BS") == (A, B)


def test_the_overall_deadline_is_the_clients_timeout() -> None:
    net = Network(Clock(), {A: ["hang"], B: ["hang"], C: ["answer"]})
    client = Client(net, (A, B, C), timeout_s=3.0, attempt_timeout_s=1.5)
    with pytest.raises(PeerUnreachable) as err:
        client.lookup("KGZ-BS", CTX, QueryKind.DOCUMENT, ITEMS)
    assert [(a, t) for a, _, t in net.sent] == [(A, 1.5), (B, 1.5)]
    assert str(err.value).endswith(f"{C} not tried (deadline reached)")


# --- streams --------------------------------------------------------------------------------------


class StreamChannel:
    """``unary_stream`` for a follow-up watch: scripted first message or failure."""

    def __init__(self, net: StreamNet, address: str) -> None:
        self.net, self.address = net, address

    def unary_stream(self, method: str) -> Any:
        def call(wire: bytes, timeout: float) -> Iterator[bytes]:
            self.net.sent.append((self.address, wire, timeout))
            action = self.net.script[self.address]
            if action == "refused":
                raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, REFUSED)
            return Stream(action)
        return call

    def close(self) -> None:
        pass


class Stream:
    def __init__(self, action: str) -> None:
        self.action = action

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self.action == "broken":
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "Socket closed")
        if self.action == "deny":
            raise FakeRpcError(grpc.StatusCode.PERMISSION_DENIED, "no")
        if self.action == "empty":
            raise StopIteration
        self.action = "empty"
        return b"first"

    def cancel(self) -> None:
        pass


@dataclass
class StreamNet:
    script: dict[str, str]
    sent: list[tuple[str, bytes, float]] = field(default_factory=list)


class StreamClient(Client):
    def __init__(self, snet: StreamNet, endpoint: tuple[str, ...]) -> None:
        super().__init__(Network(Clock(), {}), endpoint)
        self.snet = snet

    def _channel(self, address: str) -> Any:
        return StreamChannel(self.snet, address)


def test_a_stream_fails_over_until_its_first_message() -> None:
    snet = StreamNet({A: "refused", B: "broken", C: "ok"})
    client = StreamClient(snet, (A, B, C))
    renewed: list[Envelope] = []

    def renew() -> Envelope:
        renewed.append(client.build(CTX, QueryKind.DOCUMENT, ITEMS))
        return renewed[-1]

    first = client.build(CTX, QueryKind.DOCUMENT, ITEMS)
    stream = client.open_stream("KGZ-BS", "/x/Watch", first, request_cls=pb.LookupRequest,
                                renew=renew, timeout_s=600.0)
    assert (stream.address, stream.first, list(stream.rest)) == (C, b"first", [])
    assert stream.request == renewed[0] != first  # B may have got it: C gets a fresh one
    assert [a for a, _, _ in snet.sent] == [A, B, C]
    assert [(k["address"], k["outcome"], k.get("delivery")) for k in client.kept] == [
        (A, "unanswered", "not_sent"), (B, "unanswered", "maybe_sent")]


def test_a_stream_refused_before_its_first_message_is_final() -> None:
    snet = StreamNet({A: "deny", B: "ok"})
    client = StreamClient(snet, (A, B))
    with pytest.raises(RemoteError) as err:
        client.open_stream("KGZ-BS", "/x/Watch", client.build(CTX, QueryKind.DOCUMENT, ITEMS),
                           request_cls=pb.LookupRequest, timeout_s=600.0)
    assert err.value.status == "PERMISSION_DENIED"
    assert [a for a, _, _ in snet.sent] == [A]
