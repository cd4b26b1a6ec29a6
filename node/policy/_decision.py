"""The decision document every policy must return, and its strict parser.

Contract (policies/README.md): the query ``data.bxnode.lookup.decision`` yields
exactly one object ``{"allow": bool, "reasons": [string], "disclose": [string]}``
with no other keys; an allow carries no reasons, a deny carries at least one
reason and discloses nothing.  Anything else is a policy error and never allows.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from node.core.model import Decision

__all__ = ["DECISION_QUERY", "MalformedDecision", "Reason", "deny", "parse_decision_document"]

#: The one query every policy answers (OPA data API: /v1/data/bxnode/lookup/decision).
DECISION_QUERY = "data.bxnode.lookup.decision"

#: Bounds on what a policy may return (STYLE.md 8: bound every input).
_MAX_CODES = 32
_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_KEYS = frozenset({"allow", "reasons", "disclose"})


class Reason(StrEnum):
    """Stable deny reason codes: the first eight come from the Rego policy,
    the last two from the engines when no valid decision could be had."""

    NO_AGREEMENT = "no_agreement"
    AGREEMENT_NOT_IN_FORCE = "agreement_not_in_force"
    AGREEMENT_AMBIGUOUS = "agreement_ambiguous"
    PURPOSE_NOT_AGREED = "purpose_not_agreed"
    DATASET_NOT_AGREED = "dataset_not_agreed"
    BATCH_EXCEEDS_AGREEMENT = "batch_exceeds_agreement"
    QUOTA_EXHAUSTED = "quota_exhausted"
    LEGAL_BASIS_REQUIRED = "legal_basis_required"
    POLICY_ERROR = "policy_error"
    POLICY_UNAVAILABLE = "policy_unavailable"


class MalformedDecision(ValueError):
    """The policy answered, but not with a decision document of the exact shape.

    The message names the defect only; it never quotes the input or the result.
    """


def _codes(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or len(value) > _MAX_CODES:
        raise MalformedDecision(f"{field} must be a list of at most {_MAX_CODES} codes")
    for code in value:
        if not isinstance(code, str) or _CODE.fullmatch(code) is None:
            raise MalformedDecision(f"{field} holds a value that is not a reason/field code")
    return tuple(sorted(set(value)))


def parse_decision_document(doc: Any) -> Decision:
    """Turn the policy's result into a :class:`Decision`, or raise :class:`MalformedDecision`."""
    if not isinstance(doc, dict) or set(doc) != _KEYS:
        raise MalformedDecision("decision must be an object with exactly allow, reasons, disclose")
    allow = doc["allow"]
    if not isinstance(allow, bool):
        raise MalformedDecision("allow must be a boolean")
    reasons = _codes(doc["reasons"], "reasons")
    disclose = _codes(doc["disclose"], "disclose")
    if allow and reasons:
        raise MalformedDecision("an allow must not carry deny reasons")
    if not allow and not reasons:
        raise MalformedDecision("a deny must carry at least one reason")
    if not allow and disclose:
        raise MalformedDecision("a deny must not disclose fields")
    return Decision(allow=allow, reasons=reasons, disclose=frozenset(disclose))


def deny(reason: Reason) -> Decision:
    """The fail-closed decision the engines return when the policy gave none."""
    return Decision(allow=False, reasons=(reason.value,))
