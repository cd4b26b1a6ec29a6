"""What the follow-up policy reads, and its decision (policies/bxnode/followup.rego)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from node.core.members import Member
from node.policy.queries import QueryDecision, parse_query_decision

__all__ = ["FOLLOWUP_QUERY", "followup_decision", "followup_input"]

FOLLOWUP_QUERY = "data.bxnode.followup.decision"


def followup_input(*, member: Member, operator: str, purpose: str, legal_basis: str,
                   case_ref: str, record_kind: str, fields: Sequence[str], responder: str,
                   time_ms: int) -> dict[str, Any]:
    return {
        "requester": {"node": member.node_id, "country": member.country,
                      "agency": member.agency, "operator": operator},
        "purpose": purpose, "legal_basis": legal_basis, "case_ref": case_ref,
        "followup": {"record_kind": record_kind, "fields": sorted(set(fields))},
        "time_ms": time_ms, "responder": {"node": responder},
    }


def followup_decision(doc: Any) -> QueryDecision:
    """``extra``: ``fields`` (what may be released) and ``officers_required`` (1, or 2 under
    four eyes: the agreement's ``four_eyes: true``)."""
    d = parse_query_decision(doc, ints=("officers_required",), code_lists=("fields",))
    if d.allow and d.extra["officers_required"] not in (1, 2):
        return parse_query_decision(None)  # policy_error: fail closed
    return d
