"""What the crossing policy reads, and its decision (policies/bxnode/crossings.rego)."""

from __future__ import annotations

from typing import Any

from node.core.members import Member
from node.core.model import RequestHeader
from node.policy.queries import QueryDecision, parse_query_decision

__all__ = ["CROSSINGS_QUERY", "crossing_decision", "crossing_input"]

CROSSINGS_QUERY = "data.bxnode.crossings.decision"


def crossing_input(*, member: Member, header: RequestHeader, responder: str, time_ms: int,
                   batch_size: int, window_ms: int, datasets: list[str],
                   bcps: list[tuple[str, list[str]]]) -> dict[str, Any]:
    """``bcps``: each asked-about BCP of ours with the countries it faces."""
    return {
        "requester": {"node": member.node_id, "country": member.country,
                      "agency": member.agency, "operator": header.operator},
        "purpose": header.purpose, "legal_basis": header.legal_basis,
        "case_ref": header.case_ref,
        "query": {"kind": "crossing", "batch_size": batch_size, "window_ms": window_ms,
                  "datasets": sorted(set(datasets)),
                  "bcps": [{"code": c, "faces": sorted(f)} for c, f in bcps]},
        "time_ms": time_ms, "responder": {"node": responder},
    }


def crossing_decision(doc: Any) -> QueryDecision:
    d = parse_query_decision(doc, ints=("resolution_minutes",))
    if d.allow and not 1 <= int(d.extra["resolution_minutes"]) <= 24 * 60:
        return parse_query_decision(None)  # a resolution outside 1 min..1 day: policy_error
    return d
