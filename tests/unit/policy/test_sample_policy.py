"""The shipped policies/ directory loads and gives the demo federation's outcomes."""

from __future__ import annotations

import pytest

from node.core.model import Decision
from node.policy import RegoPolicyEngine
from tests.unit.policy._support import FULL, REPO_POLICIES, make_input

FULL_SET = frozenset(FULL)
REF_ACTION = frozenset({"reference", "action"})
#: KAZ-BS discloses the alert's source agency to KGZ-BS, and to nobody else (issue 13).
WITH_SOURCE = FULL_SET | {"source_agency"}


@pytest.fixture(scope="module")
def sample() -> RegoPolicyEngine:
    return RegoPolicyEngine.from_directory(REPO_POLICIES)


@pytest.mark.parametrize(("requester", "responder", "purpose", "expected"), [
    ("KGZ-BS", "KAZ-BS", "border_check", Decision(allow=True, disclose=WITH_SOURCE)),
    ("UZB-BS", "KAZ-BS", "border_check", Decision(allow=True, disclose=REF_ACTION)),
    ("UZB-BS", "KAZ-BS", "criminal_investigation",
     Decision(allow=False, reasons=("purpose_not_agreed",))),
    ("KGZ-BS", "KAZ-BS", "criminal_investigation", Decision(allow=True, disclose=WITH_SOURCE)),
    ("KAZ-BS", "KGZ-BS", "border_check", Decision(allow=True, disclose=FULL_SET)),
    ("UZB-BS", "KGZ-BS", "border_check", Decision(allow=True, disclose=REF_ACTION)),
    ("KAZ-BS", "UZB-BS", "border_check", Decision(allow=True, disclose=FULL_SET)),
    ("KGZ-BS", "UZB-BS", "border_check", Decision(allow=True, disclose=FULL_SET)),
    ("KAZ-BS", "KAZ-BS", "border_check", Decision(allow=False, reasons=("no_agreement",))),
    ("TJK-BS", "KAZ-BS", "border_check", Decision(allow=False, reasons=("no_agreement",))),
])
def test_demo_outcomes(sample: RegoPolicyEngine, requester: str, responder: str, purpose: str,
                       expected: Decision) -> None:
    for datasets in (("documents",), ("persons",), ("documents", "persons")):
        inp = make_input(requester_node=requester, responder_node=responder, purpose=purpose,
                         datasets=datasets)
        assert sample.decide(inp) == expected


def test_sample_quota_and_batch(sample: RegoPolicyEngine) -> None:
    assert sample.decide(make_input(batch_size=500, items_today=99_500)).allow is True
    assert sample.decide(make_input(batch_size=501)) == Decision(
        allow=False, reasons=("batch_exceeds_agreement",))
    assert sample.decide(make_input(items_today=100_000)) == Decision(
        allow=False, reasons=("quota_exhausted",))
