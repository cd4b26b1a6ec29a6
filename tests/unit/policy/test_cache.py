"""The decision cache gives exactly the decisions of the engine it wraps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node.core.model import Decision
from node.policy import RegoPolicyEngine
from node.policy.cache import CachingPolicyEngine
from tests.unit.policy._support import make_input
from tests.unit.policy.cases import CASES


@pytest.fixture
def cached(policy_dir: Path) -> CachingPolicyEngine:
    return CachingPolicyEngine(inner=RegoPolicyEngine.from_directory(policy_dir))


@pytest.mark.parametrize(("overrides", "expected"), [(o, e) for _, o, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_rule_table_through_the_cache(cached: CachingPolicyEngine, overrides: dict[str, Any],
                                      expected: Decision) -> None:
    inp = make_input(**overrides)
    assert cached.decide(inp) == expected
    assert cached.decide(inp) == expected  # the second answer comes from the cache


def test_usage_sweep_matches_uncached(engine: RegoPolicyEngine,
                                      cached: CachingPolicyEngine) -> None:
    """Every usage level around the quota, for several batch sizes and pairs."""
    for requester in ("KGZ-BS", "UZB-BS", "XXX-BS"):
        for batch in (1, 3, 7):
            for used in range(0, 30):
                for kind in ({}, {"purpose": "criminal_investigation"}):
                    inp = make_input(requester_node=requester, batch_size=batch,
                                     items_today=used, **kind)
                    assert cached.decide(inp) == engine.decide(inp), (requester, batch, used)


def test_cache_hits_and_time_of_day(cached: CachingPolicyEngine) -> None:
    base = make_input()
    cached.decide(base)
    for k in range(1, 50):
        later = make_input(time_ms=base.time_ms + k * 60_000, case_ref=f"C-{k}",
                           operator=f"op-{k}", items_today=k)
        cached.decide(later)
    assert (cached.misses, cached.hits) == (1, 49)


def test_reload_drops_the_cache(policy_dir: Path, cached: CachingPolicyEngine) -> None:
    cached.decide(make_input())
    data = policy_dir / "data.json"
    data.write_text(data.read_text().replace('"border_check"', '"visa_application"'))
    cached.reload()
    assert cached.decide(make_input()).reasons == ("purpose_not_agreed",)
