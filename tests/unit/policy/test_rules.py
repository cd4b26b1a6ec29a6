"""Every rule of policies/bxnode/lookup.rego, evaluated in-process (regopy)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from node.core.model import Decision
from node.policy import RegoPolicyEngine
from tests.unit.policy._support import make_input
from tests.unit.policy.cases import ALLOW_FULL, CASES, denied


@pytest.mark.parametrize(("overrides", "expected"), [(o, e) for _, o, e in CASES],
                         ids=[name for name, _, _ in CASES])
def test_rule_table(engine: RegoPolicyEngine, overrides: dict[str, Any],
                    expected: Decision) -> None:
    assert engine.decide(make_input(**overrides)) == expected


def test_table_covers_every_policy_reason() -> None:
    fired = {r for _, _, d in CASES for r in d.reasons}
    assert fired == {"no_agreement", "agreement_not_in_force", "agreement_ambiguous",
                     "purpose_not_agreed", "dataset_not_agreed", "batch_exceeds_agreement",
                     "quota_exhausted", "legal_basis_required"}


def test_decisions_from_many_threads(engine: RegoPolicyEngine) -> None:
    allowed, refused = make_input(), make_input(purpose="criminal_investigation")
    wrong: list[Decision] = []

    def work(k: int) -> None:
        for n in range(40):
            inp, want = (allowed, ALLOW_FULL) if (n + k) % 2 else (
                refused, denied("purpose_not_agreed"))
            got = engine.decide(inp)
            if got != want:
                wrong.append(got)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
