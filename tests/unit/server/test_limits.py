"""Per-peer rate and concurrency limits (issue 12, section 5), on an injected clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.policy.rego import RegoPolicyEngine
from node.server.limits import STRANGER, PeerLimiter, PeerLimits, PolicyLimits, limits_from_policy
from tests.unit.policy._support import NOW, agreement, write_policy_dir


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def limiter(limits: PeerLimits, clock: Clock) -> PeerLimiter:
    return PeerLimiter(limits_for=lambda _peer: limits, clock=clock)


def test_the_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    lim = limiter(PeerLimits(rate_per_s=2.0, burst=3, max_in_flight=100), clock)
    assert [lim.admit("KGZ-BS") for _ in range(4)] == [True, True, True, False]
    clock.t += 0.49
    assert lim.admit("KGZ-BS") is False  # 0.98 of a token
    clock.t += 0.01
    assert lim.admit("KGZ-BS") is True and lim.admit("KGZ-BS") is False
    clock.t += 60  # refills to the burst, never beyond it
    assert [lim.admit("KGZ-BS") for _ in range(4)] == [True, True, True, False]


def test_one_peer_over_its_limit_leaves_the_others_alone() -> None:
    clock = Clock()
    lim = limiter(PeerLimits(rate_per_s=1.0, burst=2, max_in_flight=100), clock)
    assert [lim.admit("KGZ-BS") for _ in range(5)] == [True, True, False, False, False]
    assert [lim.admit("UZB-BS") for _ in range(2)] == [True, True]


def test_requests_in_flight_are_capped_and_released() -> None:
    clock = Clock()
    lim = limiter(PeerLimits(rate_per_s=1000.0, burst=1000, max_in_flight=2), clock)
    assert [lim.admit("KGZ-BS") for _ in range(3)] == [True, True, False]
    lim.release("KGZ-BS")
    assert lim.admit("KGZ-BS") is True and lim.admit("KGZ-BS") is False
    lim.release("UZB-BS")  # releasing what was never admitted changes nothing
    lim.release("KGZ-BS")
    lim.release("KGZ-BS")
    lim.release("KGZ-BS")
    assert [lim.admit("KGZ-BS") for _ in range(3)] == [True, True, False]


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
