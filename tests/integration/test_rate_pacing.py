"""A peer over its agreed rate is paced to it, not refused (issue 12 §5), with real nodes
over mTLS.

Past its burst a request waits on the node's event loop for the peer's next token (at most
``[server] rate_wait_ms``) and is then answered like any other; what lies beyond is
refused RESOURCE_EXHAUSTED/rate_limited at once, as before.  A call its peer cancels, or
whose deadline passes, while it waits gives its turn back and is audited in an aggregated
entry of its own (status CANCELLED).  The node's clock is the real one here: what is
asserted is order and lower bounds (a token cannot come early), never how fast.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from node.cli.main import main as bxnode
from tests.federation import Federation, make_federation, sample_policy
from tests.integration.test_rate_limit import (
    LOOKUP,
    _aggregates,
    _call,
    _channel,
    _on_loop,
    _payloads,
)
from tests.waiting import until


def _paced(tmp_path: Path, *, rate: float, burst: int, setting: str = "") -> Federation:
    """KAZ-BS agrees ``rate``/s and ``burst`` with UZB-BS; ``setting`` replaces KAZ-BS's
    commented ``rate_wait_ms`` line."""
    data = sample_policy()
    for a in data["bxnode"]["agreements"]:
        if (a["responder"], a["requester"]) == ("KAZ-BS", "UZB-BS"):
            a.update(rate_per_s=rate, burst=burst, max_in_flight=8)
    f = make_federation(tmp_path, policy_data=data)
    if setting:
        toml = f.dirs["KAZ-BS"] / "node.toml"
        text = toml.read_text()
        assert "# rate_wait_ms = 1000" in text
        toml.write_text(text.replace("# rate_wait_ms = 1000", setting, 1))
    f.start("KAZ-BS")
    return f


def _together(f: Federation, payloads: list[bytes]) -> list[tuple[tuple[str, str], float]]:
    """Every payload sent at once over one connection: (code and reason, seconds after the
    first was sent) each, in the payloads' order."""
    with _channel(f, "UZB-BS") as uzb, \
            concurrent.futures.ThreadPoolExecutor(len(payloads)) as pool:
        grpc.channel_ready_future(uzb).result(timeout=10)  # connected, no token taken
        t0 = time.monotonic()

        def one(p: bytes) -> tuple[tuple[str, str], float]:
            return _call(uzb, p), time.monotonic() - t0

        return list(pool.map(one, payloads))


def test_a_peer_past_its_burst_is_answered_at_its_rate_instead_of_refused(
        tmp_path: Path, no_periodic_flush: None) -> None:
    f = _paced(tmp_path, rate=5.0, burst=2)
    try:
        got = _together(f, _payloads(f, "UZB-BS", 4))
    finally:
        f.stop_all()
    assert [code for code, _ in got] == [("OK", "")] * 4
    # two at once (the burst), then one token each 0.2 s: the last cannot come before 0.4 s
    assert max(t for _, t in got) >= 0.39
    lookups = [e for e in f.audit("KAZ-BS") if e.get("requester") == "UZB-BS"]
    assert [e["outcome"] for e in lookups if e["event"] == "lookup"] == ["answered"] * 4
    assert _aggregates(f, "UZB-BS") == []  # nothing refused
    assert bxnode(["audit", "verify", "--node-dir", str(f.dirs["KAZ-BS"])]) == 0


def test_with_rate_wait_ms_0_the_same_calls_are_refused_at_once(
        tmp_path: Path, no_periodic_flush: None) -> None:
    # one token each 2 s: the four calls need not arrive within a fifth of a second
    f = _paced(tmp_path, rate=0.5, burst=2, setting="rate_wait_ms = 0")
    assert f.nodes["KAZ-BS"].server.rate_wait_s == 0.0
    try:
        got = _together(f, _payloads(f, "UZB-BS", 4))
    finally:
        f.stop_all()
    assert sorted(code for code, _ in got) == [("OK", "")] * 2 + [
        ("RESOURCE_EXHAUSTED", "rate_limited")] * 2
    [agg] = _aggregates(f, "UZB-BS")
    assert (agg["status"], agg["outcome"], agg["refused"]) == ("RESOURCE_EXHAUSTED",
                                                               "rejected", 2)


@pytest.mark.parametrize("gives_up", ["deadline", "cancel"])
def test_a_call_given_up_while_it_waits_gives_its_turn_back_and_is_audited(
        tmp_path: Path, no_periodic_flush: None, gives_up: str) -> None:
    """One token each 2 s, waits of up to 5 s allowed: the second call waits; its client
    gives up -- its half-second deadline passes (it is never refused early: a refusal
    would free its stream for the next call at once), or it cancels -- and the call gives
    its turn back, is tallied apart (CANCELLED) and never started."""
    f = _paced(tmp_path, rate=0.5, burst=1, setting="rate_wait_ms = 5000")
    server = f.nodes["KAZ-BS"].server
    first, second = _payloads(f, "UZB-BS", 2)
    try:
        with _channel(f, "UZB-BS") as uzb:
            assert _call(uzb, first) == ("OK", "")
            if gives_up == "deadline":
                assert _call(uzb, second, timeout=0.5)[0] == "DEADLINE_EXCEEDED"
            else:
                lookup: grpc.UnaryUnaryMultiCallable[bytes, bytes] = uzb.unary_unary(LOOKUP)
                waiting = lookup.future(second, timeout=30)
                until("the second call waits for its token",
                      lambda: server.limiter.in_flight("UZB-BS") == 1)
                waiting.cancel()
                assert waiting.cancelled() and waiting.code() is grpc.StatusCode.CANCELLED
            until("its turn is given back", lambda: server.limiter.in_flight("UZB-BS") == 0)
            assert _on_loop(f, server.flush_refusals()) == 1
    finally:
        f.stop_all()
    [agg] = _aggregates(f, "UZB-BS")
    assert (agg["status"], agg["outcome"], agg["refused"], agg["aggregated"]) == (
        "CANCELLED", "cancelled", 1, True)
    assert agg["refused_sha256"] == hashlib.sha256(hashlib.sha256(second).digest()).hexdigest()
    lookups = [e for e in f.audit("KAZ-BS") if e.get("event") == "lookup"
               and e.get("requester") == "UZB-BS"]
    assert [e["outcome"] for e in lookups] == ["answered", "cancelled"]  # never started
    assert bxnode(["audit", "verify", "--node-dir", str(f.dirs["KAZ-BS"])]) == 0


def test_a_burst_of_a_peers_first_calls_evaluates_its_limits_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight calls at once before the node knows UZB-BS's limits: one policy evaluation,
    the others wait for it (they used to queue eight on the policy threads).  The
    evaluation is held until all eight have asked, so the test cannot pass by timing."""
    f = _paced(tmp_path, rate=100.0, burst=100)
    server = f.nodes["KAZ-BS"].server
    limits = server._limits
    asked, evaluated, go = [], [], threading.Event()
    cached, evaluate = limits.cached, limits.evaluate

    def counting_cached(peer: str) -> Any:
        asked.append(peer)
        return cached(peer)

    def held_evaluate(peer: str) -> Any:
        evaluated.append(peer)
        go.wait(30)
        return evaluate(peer)

    monkeypatch.setattr(limits, "cached", counting_cached)
    monkeypatch.setattr(limits, "evaluate", held_evaluate)
    try:
        with _channel(f, "UZB-BS") as uzb, concurrent.futures.ThreadPoolExecutor(8) as pool:
            calls = [pool.submit(_call, uzb, p) for p in _payloads(f, "UZB-BS", 8)]
            until("eight calls ask for UZB-BS's limits", lambda: len(asked) == 8)
            go.set()
            assert [c.result() for c in calls] == [("OK", "")] * 8
    finally:
        go.set()
        f.stop_all()
    assert evaluated == ["UZB-BS"]
