"""Per-peer rate and concurrency limits (issue 12, section 5), on an injected clock."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from node.policy.rego import RegoPolicyEngine
from node.server.limits import (
    STRANGER,
    OverLimitTally,
    PeerLimiter,
    PeerLimits,
    PolicyLimits,
    limits_from_policy,
)
from node.server.shared_limits import SharedBuckets, create_table
from tests.unit.policy._support import NOW, agreement, write_policy_dir
from tests.unit.server._clock import Clock

Limiter = Callable[[PeerLimits, Clock], PeerLimiter]


def admit(lim: PeerLimiter, peer: str, limits: PeerLimits | None = None) -> bool:
    """One token and one in-flight slot for ``peer`` now, or nothing (never a wait): what
    :meth:`PeerLimiter.reserve` gives with no ``max_wait_s``."""
    return lim.reserve(peer, limits) == 0.0


@pytest.fixture(params=["local", "shared"])
def limiter(request: pytest.FixtureRequest, tmp_path: Path
            ) -> Iterator[Callable[[PeerLimits, Clock], PeerLimiter]]:
    """A limiter over this process's buckets, or over the table the workers of ``serve
    --workers`` share (node/server/shared_limits.py): the same arithmetic either way."""
    tables: list[SharedBuckets] = []

    def make(limits: PeerLimits, clock: Clock) -> PeerLimiter:
        table = None
        if request.param == "shared":
            path = tmp_path / "serve.limits"
            create_table(path, workers=1)
            table = SharedBuckets.attach(path, worker=0, workers=1)
            tables.append(table)
        return PeerLimiter(limits_for=lambda _peer: limits, clock=clock, table=table)

    yield make
    for t in tables:
        t.close()


def test_the_bucket_allows_a_burst_then_the_rate(limiter: Limiter) -> None:
    clock = Clock()
    lim = limiter(PeerLimits(rate_per_s=2.0, burst=3, max_in_flight=100), clock)
    assert [admit(lim, "KGZ-BS") for _ in range(4)] == [True, True, True, False]
    clock.t += 0.49
    assert admit(lim, "KGZ-BS") is False  # 0.98 of a token
    clock.t += 0.01
    assert admit(lim, "KGZ-BS") is True and admit(lim, "KGZ-BS") is False
    clock.t += 60  # refills to the burst, never beyond it
    assert [admit(lim, "KGZ-BS") for _ in range(4)] == [True, True, True, False]


def test_one_peer_over_its_limit_leaves_the_others_alone(limiter: Limiter) -> None:
    clock = Clock()
    lim = limiter(PeerLimits(rate_per_s=1.0, burst=2, max_in_flight=100), clock)
    assert [admit(lim, "KGZ-BS") for _ in range(5)] == [True, True, False, False, False]
    assert [admit(lim, "UZB-BS") for _ in range(2)] == [True, True]


def test_requests_in_flight_are_capped_and_released(limiter: Limiter) -> None:
    clock = Clock()
    lim = limiter(PeerLimits(rate_per_s=1000.0, burst=1000, max_in_flight=2), clock)
    assert [admit(lim, "KGZ-BS") for _ in range(3)] == [True, True, False]
    lim.release("KGZ-BS")
    assert admit(lim, "KGZ-BS") is True and admit(lim, "KGZ-BS") is False
    lim.release("UZB-BS")  # releasing what was never admitted changes nothing
    lim.release("KGZ-BS")
    lim.release("KGZ-BS")
    lim.release("KGZ-BS")
    assert [admit(lim, "KGZ-BS") for _ in range(3)] == [True, True, False]


def test_a_request_beyond_the_bucket_is_promised_the_next_token_in_order(limiter: Limiter) -> None:
    """Paced, not refused: each request past the burst waits for a token of its own (the
    bucket goes below zero by the tokens promised), up to ``max_wait_s`` ahead."""
    clock = Clock()
    lim = limiter(PeerLimits(rate_per_s=10.0, burst=2, max_in_flight=100), clock)
    waits = [lim.reserve("KGZ-BS", max_wait_s=0.25) for _ in range(5)]
    assert waits == [0.0, 0.0, pytest.approx(0.1), pytest.approx(0.2), None]
    assert admit(lim, "KGZ-BS") is False  # admit never waits
    assert lim.reserve("UZB-BS", max_wait_s=0.25) == 0.0  # another peer's bucket is its own
    clock.t += 0.2  # the two promised tokens have come: the next is 0.1 s away again
    assert lim.reserve("KGZ-BS", max_wait_s=0.25) == pytest.approx(0.1)
    assert lim.reserve("KGZ-BS", max_wait_s=0.0) is None  # 0 refuses at once


def test_a_request_that_waits_holds_an_in_flight_slot_and_a_refund_gives_both_back(
        limiter: Limiter) -> None:
    clock = Clock()
    lim = limiter(PeerLimits(rate_per_s=1.0, burst=1, max_in_flight=3), clock)
    assert [lim.reserve("KGZ-BS", max_wait_s=10) for _ in range(4)] == [0.0, 1.0, 2.0, None]
    lim.refund("KGZ-BS")  # the one promised 2.0 s gave up: its slot and its token back
    assert lim.reserve("KGZ-BS", max_wait_s=10) == 2.0
    lim.refund("KGZ-BS")
    lim.refund("KGZ-BS")
    lim.refund("KGZ-BS")  # all three back: the bucket full again, never beyond its burst
    assert [lim.reserve("KGZ-BS", max_wait_s=0) for _ in range(3)] == [0.0, None, None]
    lim.refund("UZB-BS")  # refunding what was never reserved changes nothing
    assert lim.reserve("UZB-BS") == 0.0


@pytest.mark.parametrize("answer", [
    {"allow": False}, {"allow": True, "rate_per_s": "fast", "burst": 1, "max_in_flight": 1},
    {"allow": True, "rate_per_s": 0, "burst": 1, "max_in_flight": 1},
    {"allow": True, "rate_per_s": 1, "burst": 0, "max_in_flight": 1},
    {"allow": True, "rate_per_s": 1, "burst": 1, "max_in_flight": True},
    {"allow": True, "rate_per_s": float("inf"), "burst": 1, "max_in_flight": 1},
    {"reasons": ["policy_error"]},
])
def test_a_policy_answer_that_is_not_valid_limits_gets_the_tight_defaults(
        answer: dict[str, object]) -> None:
    assert limits_from_policy(answer) == STRANGER


def test_limits_come_from_the_agreement_with_defaults(tmp_path: Path) -> None:
    policy = RegoPolicyEngine.from_directory(write_policy_dir(tmp_path / "p", {"bxnode": {
        "agreements": [agreement("KGZ-BS", rate_per_s=3, burst=7, max_in_flight=2),
                       agreement("UZB-BS")]}}))
    limits = PolicyLimits(policy=policy, responder="KAZ-BS", clock_ms=lambda: NOW)
    assert limits.cached("KGZ-BS") is None
    assert limits.evaluate("KGZ-BS") == PeerLimits(3.0, 7, 2)
    assert limits.cached("KGZ-BS") == PeerLimits(3.0, 7, 2)
    assert limits.evaluate("UZB-BS") == PeerLimits(5000.0, 10000, 256)
    assert limits.evaluate("TJK-BS") == STRANGER  # no agreement: the stranger's limits


class _Flaky:
    """A policy whose server is down for the first ``down`` rate-limit queries."""

    digest = "d"

    def __init__(self, down: int) -> None:
        self.down = down
        self.asked = 0

    def decide_query(self, query: str, doc: dict[str, object]) -> dict[str, object]:
        self.asked += 1
        if self.asked <= self.down:
            return {"allow": False, "reasons": ["policy_unavailable"]}
        return {"allow": True, "rate_per_s": 100, "burst": 200, "max_in_flight": 50}


def test_limits_are_not_cached_while_the_policy_gives_no_decision() -> None:
    """Issue 12 §4 (OPA down): a failure is tight now, and asked again, never kept all day."""
    policy = _Flaky(down=2)
    limits = PolicyLimits(policy=policy, responder="KAZ-BS",  # type: ignore[arg-type]
                          clock_ms=lambda: NOW)
    assert limits.evaluate("KGZ-BS") == STRANGER
    assert limits.cached("KGZ-BS") is None
    assert limits.evaluate("KGZ-BS") == STRANGER
    assert limits.evaluate("KGZ-BS") == PeerLimits(100.0, 200, 50)  # the server is back
    assert limits.cached("KGZ-BS") == PeerLimits(100.0, 200, 50)
    assert policy.asked == 3


def _tally(clock: list[int], **kw: int) -> OverLimitTally:
    return OverLimitTally(clock_ms=lambda: clock[0], policy_digest=lambda: "pd", **kw)


def test_over_limit_refusals_are_counted_into_one_record_per_peer_event_and_certificate(
        ) -> None:
    clock = [1_000]
    t = _tally(clock)
    assert t.drain() == [] and t.pending() == 0
    for raw in (b"a", b"b", b"c"):
        t.add(peer="UZB-BS", event="lookup", tls_peer="fp-u", raw=raw)
        clock[0] += 10
    t.add(peer="KGZ-BS", event="lookup", tls_peer="fp-k", raw=b"x")
    t.add(peer="UZB-BS", event="inclusion_proof", tls_peer="fp-u", raw=b"y")
    assert t.pending() == 5
    uzb, kgz, proof = t.drain()
    digests = sorted(hashlib.sha256(r).digest() for r in (b"a", b"b", b"c"))
    assert (uzb.requester, uzb.event, uzb.tls_peer, uzb.time_ms, uzb.status, uzb.reason,
            uzb.outcome, uzb.policy_digest) == (
        "UZB-BS", "lookup", "fp-u", 1_020, "RESOURCE_EXHAUSTED", "rate_limited",
        "rejected", "pd")
    assert dict(uzb.facts) == {"aggregated": True, "refused": 3, "first_ms": 1_000,
                               "last_ms": 1_020,
                               "refused_sha256": hashlib.sha256(b"".join(digests)).hexdigest()}
    assert uzb.body()["reasons"] == ["rate_limited"] and uzb.body()["refused"] == 3
    assert (kgz.requester, kgz.facts["refused"]) == ("KGZ-BS", 1)
    assert (proof.event, proof.facts["refused"]) == ("inclusion_proof", 1)
    assert t.drain() == [] and t.pending() == 0  # drained: nothing is recorded twice


def test_the_refused_digest_does_not_depend_on_the_order_of_arrival() -> None:
    clock = [5]
    one, two = _tally(clock), _tally(clock)
    for raw in (b"1", b"2", b"3"):
        one.add(peer="P", event="lookup", tls_peer="f", raw=raw)
    for raw in (b"3", b"1", b"2"):
        two.add(peer="P", event="lookup", tls_peer="f", raw=raw)
    assert one.drain()[0].facts["refused_sha256"] == two.drain()[0].facts["refused_sha256"]


def test_calls_cancelled_while_they_waited_are_tallied_apart() -> None:
    clock = [1_000]
    t = _tally(clock)
    t.add(peer="UZB-BS", event="lookup", tls_peer="f" * 64, raw=b"a")
    t.add(peer="UZB-BS", event="lookup", tls_peer="f" * 64, raw=b"b", cancelled=True)
    t.add(peer="UZB-BS", event="lookup", tls_peer="f" * 64, raw=b"c", cancelled=True)
    refused, cancelled = t.drain()
    assert (refused.status, refused.outcome, refused.reason, refused.facts["refused"]) == (
        "RESOURCE_EXHAUSTED", "rejected", "rate_limited", 1)
    assert (cancelled.status, cancelled.outcome, cancelled.reason,
            cancelled.facts["refused"]) == ("CANCELLED", "cancelled", "rate_limited", 2)
    assert cancelled.facts["refused_sha256"] == hashlib.sha256(b"".join(sorted(
        hashlib.sha256(x).digest() for x in (b"b", b"c")))).hexdigest()


def test_a_full_tally_is_closed_and_a_second_started() -> None:
    clock = [0]
    t = _tally(clock, max_per_entry=2)
    for raw in (b"1", b"2", b"3", b"4", b"5"):
        t.add(peer="P", event="lookup", tls_peer="f", raw=raw)
    assert [r.facts["refused"] for r in t.drain()] == [2, 2, 1]
    with pytest.raises(ValueError):
        _tally(clock, max_per_entry=0)


def test_records_whose_commit_failed_are_given_out_again_first() -> None:
    clock = [0]
    t = _tally(clock)
    t.add(peer="P", event="lookup", tls_peer="f", raw=b"1")
    failed = t.drain()
    t.add(peer="P", event="lookup", tls_peer="f", raw=b"2")
    t.restore(failed)
    assert t.pending() == 2
    again = t.drain()
    assert again[0] is failed[0] and [r.facts["refused"] for r in again] == [1, 1]
    assert t.pending() == 0
