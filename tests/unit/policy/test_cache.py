"""The decision cache gives exactly the decisions of the engine it wraps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from node.core.errors import ConfigError
from node.core.model import Decision
from node.policy import RegoPolicyEngine
from node.policy.cache import CachingPolicyEngine
from tests.unit.policy._support import make_input
from tests.unit.policy.cases import CASES


@pytest.fixture
def cached(policy_dir: Path) -> CachingPolicyEngine:
    return CachingPolicyEngine(inner=RegoPolicyEngine.from_directory(policy_dir),
                               policy_dir=policy_dir)


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


def test_a_lookup_without_evaluation_gives_the_same_decision_or_none(
        engine: RegoPolicyEngine, cached: CachingPolicyEngine) -> None:
    """``cached`` (the server's on-loop path) never evaluates: None until ``decide`` has
    cached the key, then exactly the engine's decision, quota applied to each usage."""
    for batch in (1, 3):
        first = make_input(batch_size=batch)
        assert cached.cached(first) is None
        cached.decide(first)
        for used in range(0, 1003, 7):
            inp = make_input(batch_size=batch, items_today=used, case_ref=f"C-{used}")
            assert cached.cached(inp) == engine.decide(inp), (batch, used)
    assert cached.misses == 2
    other = make_input(purpose="criminal_investigation")
    assert cached.cached(other) is None and cached.misses == 2


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


def _with_module(policy_dir: Path, extra: str) -> Path:
    (policy_dir / "bxnode" / "extra.rego").write_text("package bxnode.lookup\n\n" + extra)
    return policy_dir


@pytest.mark.parametrize(("extra", "what"), [
    ('reasons contains "night" if input.requester.operator == "op-night"\n',
     "reads input.requester.operator"),
    ('reasons contains "odd" if input.case_ref == "C-13"\n',
     "reads input.case_ref other than whether it is blank"),
    ('reasons contains "x" if input.query.kind == "person"\n', "reads input.query.kind"),
    ('reasons contains "y" if input["purpose"] == "border_check"\n', "as a whole"),
    ('reasons contains "z" if count(input) > 20\n', "as a whole"),
])
def test_a_policy_reading_an_undeclared_input_cannot_be_cached(policy_dir: Path, extra: str,
                                                               what: str) -> None:
    """Adding a policy input can never be silently ignored by the cache."""
    _with_module(policy_dir, extra)
    engine = RegoPolicyEngine.from_directory(policy_dir)
    with pytest.raises(ConfigError) as err:
        CachingPolicyEngine(inner=engine, policy_dir=policy_dir)
    assert err.value.reason == "policy_cache_undeclared" and what in err.value.message


def test_reads_in_comments_do_not_count(policy_dir: Path) -> None:
    _with_module(policy_dir, "# input.requester.operator is not read here\n"
                             "noted := true\n")
    engine = RegoPolicyEngine.from_directory(policy_dir)
    CachingPolicyEngine(inner=engine, policy_dir=policy_dir)


@pytest.mark.parametrize("declaration", [
    "cache_inputs := {}",
    'cache_inputs := {"allow": false, "inputs": {"requester.operator": "utc_day"}}',
    'cache_inputs := {"allow": false, "inputs": {"no.such.input": "value"}}',
    'cache_inputs := {"allow": false, "inputs": {"usage.items_today": "quota"}}',
])
def test_a_malformed_declaration_is_refused(policy_dir: Path, declaration: str) -> None:
    rego = policy_dir / "bxnode" / "lookup.rego"
    text = rego.read_text()
    start = text.index("cache_inputs :=")
    rego.write_text(text[:start] + declaration + "\n")
    engine = RegoPolicyEngine.from_directory(policy_dir)
    with pytest.raises(ConfigError) as err:
        CachingPolicyEngine(inner=engine, policy_dir=policy_dir)
    assert err.value.reason == "policy_cache_undeclared"


def test_threads_missing_the_same_key_at_once_evaluate_it_once(
        engine: RegoPolicyEngine, policy_dir: Path) -> None:
    """A burst of one peer's identical first questions: one evaluation, the other seven
    threads wait for it and read its answer (exactly the engine's decision).  The
    evaluation is held until all eight have looked for a running one."""
    import concurrent.futures
    import threading

    from tests.waiting import until

    entered, go = [], threading.Event()

    class Held(RegoPolicyEngine):
        def decide(self, inp: Any) -> Decision:
            entered.append(inp)
            go.wait(30)
            return super().decide(inp)

    class Looks(dict[Any, Any]):
        looked = 0

        def get(self, key: Any, default: Any = None) -> Any:
            Looks.looked += 1
            return super().get(key, default)

    cache = CachingPolicyEngine(inner=Held.from_directory(policy_dir), policy_dir=policy_dir)
    cache._running = Looks()
    inp = make_input()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = [pool.submit(cache.decide, inp) for _ in range(8)]
        until("all eight looked for a running evaluation", lambda: Looks.looked >= 8)
        go.set()
        got = [a.result(30) for a in answers]
    assert got == [engine.decide(inp)] * 8
    assert len(entered) == 1 and (cache.misses, cache.hits) == (1, 7)


def test_a_failed_evaluation_is_not_shared_each_waiter_asks_again(policy_dir: Path) -> None:
    """Nothing cached after the first evaluation (the policy failed): the next caller
    evaluates for itself, and a success is cached."""
    class Flaky(RegoPolicyEngine):
        calls = 0

        def decide(self, inp: Any) -> Decision:
            Flaky.calls += 1
            if Flaky.calls == 1:
                return Decision(allow=False, reasons=("policy_error",))
            return super().decide(inp)

    cache = CachingPolicyEngine(inner=Flaky.from_directory(policy_dir), policy_dir=policy_dir)
    inp = make_input()
    assert cache.decide(inp).reasons == ("policy_error",)
    assert cache.decide(inp).allow is True and cache.decide(inp).allow is True
    assert (Flaky.calls, cache.misses, cache.hits, cache._running) == (2, 2, 1, {})
