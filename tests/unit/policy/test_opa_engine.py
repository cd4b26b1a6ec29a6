"""OpaServerPolicyEngine against a stand-in OPA server running the same policy files."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from node.core.errors import ConfigError, EnvironmentFault
from node.core.model import Decision
from node.policy import (
    OpaServerPolicyEngine,
    PolicyEngine,
    RegoPolicyEngine,
    load_policy_engine,
)
from tests.unit.policy._support import make_input
from tests.unit.policy.cases import ALLOW_FULL, CASES
from tests.unit.policy.standin_opa import StandInOpaServer

UNAVAILABLE = Decision(allow=False, reasons=("policy_unavailable",))
POLICY_ERROR = Decision(allow=False, reasons=("policy_error",))


@pytest.fixture
def opa(policy_dir: Path) -> Iterator[StandInOpaServer]:
    with StandInOpaServer(policy_dir=policy_dir) as server:
        yield server


@pytest.fixture
def opa_engine(opa: StandInOpaServer, policy_dir: Path) -> Iterator[OpaServerPolicyEngine]:
    engine = OpaServerPolicyEngine.from_url(opa.url, policy_dir=policy_dir, timeout_s=2.0)
    yield engine
    engine.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize(("overrides", "expected"), [(o, e) for _, o, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_same_decisions_as_regopy(engine: RegoPolicyEngine, opa_engine: OpaServerPolicyEngine,
                                  overrides: dict[str, Any], expected: Decision) -> None:
    inp = make_input(**overrides)
    assert opa_engine.decide(inp) == engine.decide(inp) == expected


def test_digest_of_policy_dir_matches_regopy(engine: RegoPolicyEngine,
                                             opa_engine: OpaServerPolicyEngine) -> None:
    assert opa_engine.digest == engine.digest


def test_digest_from_server_provenance(opa: StandInOpaServer) -> None:
    engine = OpaServerPolicyEngine.from_url(opa.url)
    expected = hashlib.sha256(b'{"policies":"test-revision"}').hexdigest()
    assert engine.digest == expected
    opa.revision = "next-revision"
    engine.reload()
    assert engine.digest == hashlib.sha256(b'{"policies":"next-revision"}').hexdigest()
    opa.revision = None
    with pytest.raises(ConfigError) as info:
        engine.reload()
    assert (info.value.reason, engine.digest) == ("policy_invalid",
                                                  hashlib.sha256(b'{"policies":"next-revision"}')
                                                  .hexdigest())
    engine.close()


def test_server_without_bundle_revision_is_refused(policy_dir: Path) -> None:
    with StandInOpaServer(policy_dir=policy_dir, revision=None) as server:
        with pytest.raises(ConfigError) as info:
            OpaServerPolicyEngine.from_url(server.url)
    assert info.value.reason == "policy_invalid"


def test_server_down_at_construction_without_policy_dir() -> None:
    with pytest.raises(EnvironmentFault) as info:
        OpaServerPolicyEngine.from_url(f"http://127.0.0.1:{_free_port()}", retries=0)
    assert info.value.reason == "policy_unavailable"


def test_server_down_denies_unavailable(policy_dir: Path) -> None:
    engine = OpaServerPolicyEngine.from_url(f"http://127.0.0.1:{_free_port()}",
                                            policy_dir=policy_dir, retries=0)
    with capture_logs() as logs:
        assert engine.decide(make_input()) == UNAVAILABLE
    assert [(e["event"], e["log_level"], e["engine"], e["reason"]) for e in logs] == [
        ("policy_evaluation_failed", "error", "opa", "policy_unavailable")]
    assert "op-17" not in repr(logs) and "CASE-2026" not in repr(logs)


def test_server_timeout_denies_unavailable(policy_dir: Path) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        engine = OpaServerPolicyEngine.from_url(url, policy_dir=policy_dir, timeout_s=0.2,
                                                retries=0)
        assert engine.decide(make_input()) == UNAVAILABLE


@pytest.mark.parametrize(("mode", "expected"), [
    ("garbage", POLICY_ERROR),
    ("wrong_shape", POLICY_ERROR),
    ("undefined", POLICY_ERROR),
    ("http404", POLICY_ERROR),
    ("http500", UNAVAILABLE),
])
def test_bad_answers_deny(opa: StandInOpaServer, opa_engine: OpaServerPolicyEngine, mode: str,
                          expected: Decision) -> None:
    opa.mode = mode
    with capture_logs() as logs:
        assert opa_engine.decide(make_input()) == expected
    assert [(e["event"], e["reason"]) for e in logs] == [
        ("policy_evaluation_failed", expected.reasons[0])]
    opa.mode = "normal"
    assert opa_engine.decide(make_input()) == ALLOW_FULL


@pytest.mark.parametrize("url", [
    "ftp://127.0.0.1:8181", "http://", "http://127.0.0.1:8181/v1", "http://h:99999",
    "http://u:p@127.0.0.1", "http://127.0.0.1?x=1",
])
def test_bad_url_is_config_error(url: str, policy_dir: Path) -> None:
    with pytest.raises(ConfigError) as info:
        OpaServerPolicyEngine.from_url(url, policy_dir=policy_dir)
    assert info.value.reason == "policy_invalid"


def test_load_policy_engine(policy_dir: Path, opa: StandInOpaServer) -> None:
    local = load_policy_engine(policy_dir=policy_dir, opa_url=None)
    remote = load_policy_engine(policy_dir=policy_dir, opa_url=opa.url)
    assert isinstance(local, RegoPolicyEngine) and isinstance(remote, OpaServerPolicyEngine)
    assert isinstance(local, PolicyEngine) and isinstance(remote, PolicyEngine)
    assert local.digest == remote.digest
    assert local.decide(make_input()) == remote.decide(make_input()) == ALLOW_FULL
    remote.close()


def test_the_rate_limit_document_is_the_same_over_opa(engine: RegoPolicyEngine,
                                                       opa_engine: OpaServerPolicyEngine) -> None:
    """The edge's per-peer limits (node/server/limits.py) come from the same policy through an
    OPA server: an agreement's limits, not the stranger's that a failed query falls back to."""
    from node.server.limits import RATE_QUERY, STRANGER, limits_from_policy

    doc = {"requester": {"node": "KGZ-BS"}, "responder": {"node": "KAZ-BS"},
           "time_ms": 1_780_000_000_000}
    over_opa = opa_engine.decide_query(RATE_QUERY, doc)
    assert over_opa == engine.decide_query(RATE_QUERY, doc)
    assert over_opa["allow"] is True and limits_from_policy(over_opa) != STRANGER
    stranger = dict(doc, requester={"node": "XXX-BS"})
    assert opa_engine.decide_query(RATE_QUERY, stranger) == engine.decide_query(RATE_QUERY,
                                                                                 stranger)
