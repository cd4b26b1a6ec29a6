"""The failover driver on its own: scripted sends, an injected clock, no network."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
import pytest

from node.client.failover import (
    Answered,
    Attempt,
    Delivery,
    PeerUnreachable,
    Refused,
    delivery_of,
    prefer,
    try_in_order,
)
from node.core.errors import ConfigError
from node.wire.trailers import trailers

REFUSED = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:9: "
           "Failed to connect to remote host: Connection refused")
TLS_FAILED = ("failed to connect to all addresses; last error: UNAVAILABLE: "
              "ipv4:127.0.0.1:9: Handshake read failed (Socket closed)")
NO_NAME = "errors resolving kgz-bs.invalid:443: [field:hostname lookup error: not found]"


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "", reason: str = "") -> None:
        super().__init__(details)
        self._code, self._details = code, details
        self._md = (("bxnode-reason", reason),) if reason else ()

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    # a stand-in: grpc's errors give (key, value) pairs; the stubs type them as _Metadatum
    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:  # type: ignore[override]
        return self._md


def reason_of(err: grpc.RpcError) -> str:
    return str(trailers(err).get("bxnode-reason", ""))


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Peer:
    """Addresses scripted with what they do; records (address, request, timeout) sent."""

    clock: Clock
    script: dict[str, list[str]]
    sent: list[tuple[str, str, float]] = field(default_factory=list)
    failures: list[tuple[str, str, Delivery]] = field(default_factory=list)

    def send(self, address: str, request: str, timeout: float) -> str:
        self.sent.append((address, request, timeout))
        action = self.script[address].pop(0)
        if action == "refused":
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, REFUSED)
        if action == "tls":
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, TLS_FAILED)
        if action == "hang":
            self.clock.now += timeout
            raise FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if action == "broken":
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "Socket closed")
        if action == "retry_later":  # the peer's own UNAVAILABLE, with its reason
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "policy server did not answer",
                               reason="policy_unavailable")
        if action in ("PERMISSION_DENIED", "UNAUTHENTICATED", "INVALID_ARGUMENT",
                      "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "INTERNAL", "UNKNOWN"):
            raise FakeRpcError(grpc.StatusCode[action], "refused")
        assert action == "answer"
        return f"answer to {request}"


class Renewer:
    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"request#{self.n}"


def run(peer: Peer, addresses: tuple[str, ...], *, renew: Renewer | None = None,
        deadline_s: float = 10.0, **kw: object) -> Answered[str, str] | Refused[str]:
    return try_in_order(addresses, "request#0", peer.send, peer="KGZ-BS",
                        deadline_s=deadline_s, renew=renew, monotonic=peer.clock,
                        on_failure=lambda a, r, _e, d: peer.failures.append((a, r, d)),
                        reason_of=reason_of, **kw)  # type: ignore[arg-type]


# --- classification ---------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "details", "expected"), [
    ("UNAVAILABLE", REFUSED, Delivery.NOT_SENT),
    ("UNAVAILABLE", TLS_FAILED, Delivery.NOT_SENT),
    ("UNAVAILABLE", NO_NAME, Delivery.NOT_SENT),
    ("UNAVAILABLE", "DNS resolution failed for kgz-bs.invalid:443", Delivery.NOT_SENT),
    ("UNAVAILABLE", "Socket closed", Delivery.MAYBE_SENT),
    ("UNAVAILABLE", "recvmsg:Connection reset by peer", Delivery.MAYBE_SENT),
    ("UNAVAILABLE", "the policy server did not answer", Delivery.MAYBE_SENT),  # a peer's own
    ("UNAVAILABLE", "", Delivery.MAYBE_SENT),
    ("DEADLINE_EXCEEDED", "Deadline Exceeded", Delivery.MAYBE_SENT),
    ("DEADLINE_EXCEEDED", REFUSED, Delivery.MAYBE_SENT),
    ("PERMISSION_DENIED", REFUSED, None),
    ("UNAUTHENTICATED", "", None),
    ("INVALID_ARGUMENT", "", None),
    ("RESOURCE_EXHAUSTED", "", None),
    ("FAILED_PRECONDITION", "", None),
    ("INTERNAL", "", None),
    ("UNKNOWN", "", None),
    ("CANCELLED", "", None),
])
def test_only_a_clear_connect_failure_counts_as_not_delivered(
        status: str, details: str, expected: Delivery | None) -> None:
    assert delivery_of(status, details) is expected


# --- order and renewal --------------------------------------------------------------------------


def test_a_connect_failure_moves_the_same_request_to_the_next_address() -> None:
    peer = Peer(Clock(), {"a:1": ["refused"], "b:2": ["tls"], "c:3": ["answer"]})
    renew = Renewer()
    out = run(peer, ("a:1", "b:2", "c:3"), renew=renew)
    assert isinstance(out, Answered)
    assert (out.address, out.request, out.value) == ("c:3", "request#0", "answer to request#0")
    assert [(a, r) for a, r, _ in peer.sent] == [
        ("a:1", "request#0"), ("b:2", "request#0"), ("c:3", "request#0")]
    assert renew.n == 0
    assert out.attempts == (Attempt("a:1", "UNAVAILABLE", Delivery.NOT_SENT),
                            Attempt("b:2", "UNAVAILABLE", Delivery.NOT_SENT),
                            Attempt("c:3", "OK"))
    assert peer.failures == [("a:1", "request#0", Delivery.NOT_SENT),
                             ("b:2", "request#0", Delivery.NOT_SENT)]


@pytest.mark.parametrize("failure", ["hang", "broken"])
def test_after_a_possible_delivery_the_next_address_gets_a_fresh_request(failure: str) -> None:
    peer = Peer(Clock(), {"a:1": [failure], "b:2": ["answer"]})
    renew = Renewer()
    out = run(peer, ("a:1", "b:2"), renew=renew)
    assert isinstance(out, Answered)
    assert (out.address, out.request) == ("b:2", "request#1")
    assert [(a, r) for a, r, _ in peer.sent] == [("a:1", "request#0"), ("b:2", "request#1")]
    assert renew.n == 1
    status = "DEADLINE_EXCEEDED" if failure == "hang" else "UNAVAILABLE"
    assert out.attempts[0] == Attempt("a:1", status, Delivery.MAYBE_SENT)
    assert peer.failures == [("a:1", "request#0", Delivery.MAYBE_SENT)]


def test_without_renew_a_possible_delivery_ends_the_call() -> None:
    peer = Peer(Clock(), {"a:1": ["broken"], "b:2": ["answer"]})
    with pytest.raises(PeerUnreachable) as err:
        run(peer, ("a:1", "b:2"), renew=None)
    assert [a for a, _, _ in peer.sent] == ["a:1"]
    assert str(err.value) == (
        "peer KGZ-BS did not answer: a:1 unavailable (may have been delivered); "
        "b:2 not tried (the request may have been delivered and is not re-sent)")
    assert (err.value.status, err.value.reason) == ("UNAVAILABLE", "peer_unavailable")


def test_an_unsigned_read_may_be_resent_as_it_is() -> None:
    peer = Peer(Clock(), {"a:1": ["hang"], "b:2": ["answer"]})
    out = run(peer, ("a:1", "b:2"), renew=None, resend_safe=True)
    assert isinstance(out, Answered)
    assert [(a, r) for a, r, _ in peer.sent] == [("a:1", "request#0"), ("b:2", "request#0")]


@pytest.mark.parametrize("status", ["PERMISSION_DENIED", "UNAUTHENTICATED", "INVALID_ARGUMENT",
                                    "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "INTERNAL",
                                    "UNKNOWN"])
def test_a_refusal_is_final(status: str) -> None:
    peer = Peer(Clock(), {"a:1": [status], "b:2": ["answer"]})
    renew = Renewer()
    out = run(peer, ("a:1", "b:2"), renew=renew)
    assert isinstance(out, Refused)
    assert (out.address, out.request, out.error.code().name) == ("a:1", "request#0", status)
    assert [a for a, _, _ in peer.sent] == ["a:1"]
    assert renew.n == 0 and peer.failures == []
    assert out.attempts == (Attempt("a:1", status, None),)


def test_a_refusal_after_a_failover_is_final_too() -> None:
    peer = Peer(Clock(), {"a:1": ["refused"], "b:2": ["PERMISSION_DENIED"], "c:3": ["answer"]})
    out = run(peer, ("a:1", "b:2", "c:3"), renew=Renewer())
    assert isinstance(out, Refused) and out.address == "b:2"
    assert [a for a, _, _ in peer.sent] == ["a:1", "b:2"]


def test_the_peers_retry_later_moves_a_fresh_request_on() -> None:
    peer = Peer(Clock(), {"a:1": ["retry_later"], "b:2": ["answer"]})
    out = run(peer, ("a:1", "b:2"), renew=Renewer())
    assert isinstance(out, Answered)
    assert (out.address, out.request) == ("b:2", "request#1")
    assert out.attempts[0] == Attempt("a:1", "UNAVAILABLE", Delivery.MAYBE_SENT,
                                      reason="policy_unavailable")
    assert peer.failures == [("a:1", "request#0", Delivery.MAYBE_SENT)]


@pytest.mark.parametrize("renew", [Renewer(), None])
def test_the_peers_retry_later_as_the_last_word_is_its_refusal(renew: Renewer | None) -> None:
    peer = Peer(Clock(), {"a:1": ["refused"], "b:2": ["retry_later"]})
    out = run(peer, ("a:1", "b:2"), renew=renew)
    assert isinstance(out, Refused)
    assert (out.address, out.request, out.error.code().name) == ("b:2", "request#0",
                                                                 "UNAVAILABLE")
    assert peer.failures == [("a:1", "request#0", Delivery.NOT_SENT)]  # b:2 is the refusal
    peer = Peer(Clock(), {"a:1": ["retry_later"], "b:2": ["answer"]})
    out = run(peer, ("a:1", "b:2"), renew=None)  # cannot renew: that refusal is the answer
    assert isinstance(out, Refused) and out.address == "a:1"
    assert [a.status for a in out.attempts] == ["UNAVAILABLE", "NOT_TRIED"]
    assert peer.failures == []


def test_a_retry_later_before_other_failures_is_named_with_its_reason() -> None:
    peer = Peer(Clock(), {"a:1": ["retry_later"], "b:2": ["refused"]})
    with pytest.raises(PeerUnreachable) as err:
        run(peer, ("a:1", "b:2"), renew=Renewer())
    assert str(err.value) == (
        "peer KGZ-BS did not answer: a:1 unavailable/policy_unavailable (may have been "
        "delivered); b:2 unavailable (not delivered)")


def test_when_every_address_fails_the_error_names_each() -> None:
    peer = Peer(Clock(), {"a:1": ["refused"], "[::1]:2": ["hang"],
                          "dns:///c.example:3": ["broken"]})
    with pytest.raises(PeerUnreachable) as err:
        run(peer, ("a:1", "[::1]:2", "dns:///c.example:3"), renew=Renewer())
    assert str(err.value) == (
        "peer KGZ-BS did not answer: a:1 unavailable (not delivered); "
        "[::1]:2 deadline_exceeded (may have been delivered); "
        "dns:///c.example:3 unavailable (may have been delivered)")
    assert [a.address for a in err.value.attempts] == ["a:1", "[::1]:2", "dns:///c.example:3"]
    assert [r for _, r, _ in peer.sent] == ["request#0", "request#0", "request#1"]


def test_a_single_address_behaves_as_before() -> None:
    peer = Peer(Clock(), {"a:1": ["hang"]})
    renew = Renewer()
    with pytest.raises(PeerUnreachable) as err:
        run(peer, ("a:1",), renew=renew)
    assert peer.sent == [("a:1", "request#0", 10.0)]  # the whole deadline
    assert renew.n == 0  # nothing left to renew for
    assert str(err.value) == ("peer KGZ-BS did not answer: "
                              "a:1 deadline_exceeded (may have been delivered)")


def test_no_address_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError) as err:
        run(Peer(Clock(), {}), ())
    assert (err.value.reason, str(err.value)) == ("no_endpoint",
                                                  "peer KGZ-BS lists no address to call")


# --- deadlines ------------------------------------------------------------------------------------


def test_each_address_gets_an_equal_share_of_the_time_left() -> None:
    peer = Peer(Clock(), {"a:1": ["hang"], "b:2": ["refused"], "c:3": ["hang"], "d:4": ["answer"]})
    out = run(peer, ("a:1", "b:2", "c:3", "d:4"), renew=Renewer(), deadline_s=8.0)
    assert isinstance(out, Answered) and out.address == "d:4"
    # 8/4 = 2; 6/3 = 2 (refused at once); 6/2 = 3; then the 3 s left
    assert [t for _, _, t in peer.sent] == [2.0, 2.0, 3.0, 3.0]


def test_a_cap_per_attempt_leaves_the_rest_for_later_addresses() -> None:
    peer = Peer(Clock(), {"a:1": ["hang"], "b:2": ["answer"]})
    out = run(peer, ("a:1", "b:2"), renew=Renewer(), deadline_s=10.0, attempt_timeout_s=1.0)
    assert isinstance(out, Answered)
    assert [t for _, _, t in peer.sent] == [1.0, 1.0]


def test_the_overall_deadline_bounds_every_attempt() -> None:
    clock = Clock()
    peer = Peer(clock, {"a:1": ["hang"], "b:2": ["hang"], "c:3": ["answer"]})
    with pytest.raises(PeerUnreachable) as err:
        run(peer, ("a:1", "b:2", "c:3"), renew=Renewer(), deadline_s=3.0,
            attempt_timeout_s=1.5)
    assert clock.now == 103.0
    assert [a for a, _, _ in peer.sent] == ["a:1", "b:2"]
    assert err.value.attempts[-1] == Attempt("c:3", "NOT_TRIED", note="deadline reached")
    assert str(err.value).endswith("c:3 not tried (deadline reached)")


# --- preference -----------------------------------------------------------------------------------


def test_the_address_that_last_answered_goes_first() -> None:
    assert prefer(("a:1", "b:2", "c:3"), "c:3") == ("c:3", "a:1", "b:2")
    assert prefer(("a:1", "b:2"), None) == ("a:1", "b:2")
    assert prefer(("a:1", "b:2"), "gone:9") == ("a:1", "b:2")  # no longer listed
