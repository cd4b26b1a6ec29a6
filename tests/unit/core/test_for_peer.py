"""What a peer is told of a refusal (node/core/errors.py ``for_peer``): a code a peer may
see, as it is; the node's own trouble as ``unavailable`` or ``internal_error``."""

from __future__ import annotations

import pytest

from node.core.errors import BxError, EnvironmentFault, InvalidInput, PolicyDenied, for_peer
from node.core.reasons import REASONS, lookup


def _raised(code: str, status: str) -> BxError:
    exc = BxError(f"the detail of {code}, for the operator's eyes only", reason=code)
    exc.status = status
    return exc


@pytest.mark.parametrize("code", [r.code for r in REASONS
                                  if r.status is not None and r.audience != "operator"])
def test_a_code_a_peer_may_see_is_told_as_it_is(code: str) -> None:
    exc = _raised(code, str(lookup(code).status))
    assert for_peer(exc) is exc


@pytest.mark.parametrize("code", [r.code for r in REASONS
                                  if r.status is not None and r.audience == "operator"])
def test_an_operators_code_is_told_as_the_nodes_own_trouble(code: str) -> None:
    status = str(lookup(code).status)
    told = for_peer(_raised(code, status))
    expected = (("UNAVAILABLE", "unavailable") if status == "UNAVAILABLE"
                else ("INTERNAL", "internal_error"))
    assert (told.status, told.reason) == expected
    assert lookup(told.reason).audience == "both"
    assert code not in told.message and "operator" not in told.message
    assert isinstance(told.__cause__, BxError) and told.__cause__.reason == code


def test_the_retryable_ones_stay_retryable() -> None:
    told = for_peer(EnvironmentFault("disk full at /var/lib/bxnode", reason="database_full"))
    assert isinstance(told, EnvironmentFault)
    assert (told.status, told.reason, told.message) == (
        "UNAVAILABLE", "unavailable", "the node cannot answer now; try again later")


def test_a_code_nobody_registered_is_told_as_internal_error() -> None:
    told = for_peer(InvalidInput("a typo'd code", reason="no_such_code_anywhere"))
    assert (told.status, told.reason, told.message) == (
        "INTERNAL", "internal_error", "the node failed to answer this request")


def test_a_policy_refusal_keeps_its_reasons() -> None:
    exc = PolicyDenied("denied", reasons=("purpose_not_agreed", "legal_basis_required"))
    assert for_peer(exc) is exc
