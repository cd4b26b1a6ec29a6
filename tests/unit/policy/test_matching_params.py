"""Matching parameters come from the owner's policy, and a bad answer refuses the request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from node.core.errors import PolicyDenied
from node.policy import RegoPolicyEngine
from node.policy.cache import CachingPolicyEngine
from node.watchlist.handler import matching_params
from tests.unit.policy._support import make_input


def _with(policy_dir: Path, **fields: Any) -> RegoPolicyEngine:
    data = json.loads((policy_dir / "data.json").read_text())
    for a in data["bxnode"]["agreements"]:
        a.update(fields)
    (policy_dir / "data.json").write_text(json.dumps(data))
    return RegoPolicyEngine.from_directory(policy_dir)


def test_defaults_when_the_agreement_says_nothing(engine: RegoPolicyEngine) -> None:
    assert matching_params(engine, make_input()) == (0.73, 10)


def test_agreement_sets_threshold_and_candidates(policy_dir: Path) -> None:
    engine = _with(policy_dir, match_threshold=0.9, max_candidates=3)
    assert matching_params(engine, make_input()) == (0.9, 3)
    cached = CachingPolicyEngine(inner=engine, policy_dir=policy_dir)
    assert matching_params(cached, make_input()) == (0.9, 3)
    assert matching_params(cached, make_input(case_ref="other")) == (0.9, 3)


@pytest.mark.parametrize("fields", [
    {"match_threshold": 0}, {"match_threshold": 1.5}, {"match_threshold": "high"},
    {"max_candidates": 0}, {"max_candidates": 2.5}, {"max_candidates": 5000},
    {"match_threshold": True},
])
def test_invalid_parameters_refuse_the_request(policy_dir: Path, fields: dict[str, Any]) -> None:
    engine = _with(policy_dir, **fields)
    with pytest.raises(PolicyDenied) as err:
        matching_params(engine, make_input())
    assert (err.value.reasons, err.value.status) == (("policy_error",), "INTERNAL")


def test_no_agreement_gives_no_parameters(engine: RegoPolicyEngine) -> None:
    with pytest.raises(PolicyDenied):
        matching_params(engine, make_input(requester_node="XXX-BS"))
