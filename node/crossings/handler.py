"""``ConfirmCrossing`` on the owner's side: steps 8-9 of the exchange for crossing questions.

Steps 1-7 (member, key, signature, parse, signer, TLS identity, freshness, nonce),
signing, the audit entry and the receipt are :class:`node.responder.Responder`'s.
Here, in order: every asked BCP or section must be one of ours (else
INVALID_ARGUMENT ``unknown_bcp`` / ``unknown_section``); the policy then judges
the request (agreement, purpose, dataset, facing BCPs, window, batch, legal basis);
each question is answered in order, the time rounded down to the policy's resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from node.core.errors import InvalidInput, PolicyDenied
from node.core.model import RequestHeader
from node.core.ports import Answer, with_facts
from node.crossings.bcps import BcpMap
from node.crossings.model import (
    MAX_QUESTIONS_HARD,
    CrossingAnswer,
    CrossingQuestion,
    CrossingRequest,
    CrossingResponse,
)
from node.crossings.policy import CROSSINGS_QUERY, crossing_decision, crossing_input
from node.crossings.store import CrossingStore
from node.policy.queries import QueryDecision
from node.responder import Responder, Verified
from node.wire import crossings as wire

__all__ = ["ConfirmCrossingHandler", "resolve_locations"]


def resolve_locations(bmap: BcpMap, country: str, q: CrossingQuestion,
                      index: int) -> list[str]:
    """Our BCP codes the question is about; raise InvalidInput for codes we do not have."""
    if q.bcp:
        b = bmap.bcps.get(q.bcp)
        if b is None or b.country != country:
            raise InvalidInput(f"question {index}: {q.bcp} is not one of this node's BCPs",
                               reason="unknown_bcp")
        return [q.bcp]
    codes = sorted({f.own for f in bmap.facing(country) if f.section == q.section})
    if not codes:
        raise InvalidInput(f"question {index}: {q.section} is not a border section of this "
                           "node", reason="unknown_section")
    return codes


@dataclass(frozen=True, slots=True)
class _Located:
    """What ``prefetch`` read: the BCP map, each question's codes, every code asked."""

    bmap: BcpMap
    located: list[list[str]]
    asked: list[str]


def _faces(bmap: BcpMap, country: str, code: str) -> list[str]:
    return sorted({bmap.bcps[f.other].country for f in bmap.facing(country) if f.own == code})


def round_down(ms: int, minutes: int) -> int:
    step = minutes * 60_000
    return ms - ms % step


class ConfirmCrossingHandler:
    """Did this traveller cross at these of our BCPs?  CONFIRMED (rounded time, BCP) or
    NOT_FOUND, per question, in order."""

    event = "crossing_confirm"
    request_type = wire.CROSSING_REQUEST_TYPE

    def __init__(self, responder: Responder, store: CrossingStore, *, country: str) -> None:
        self._r = responder
        self._store = store
        self._country = country

    def decode(self, payload: bytes) -> CrossingRequest:
        return wire.decode_crossing_request(payload, max_questions=MAX_QUESTIONS_HARD)

    def header(self, request: CrossingRequest) -> RequestHeader:
        return request.header

    def describe(self, req: CrossingRequest) -> dict[str, Any]:
        return {"query_kind": "crossing", "items": len(req.questions),
                "datasets": sorted({q.dataset for q in req.questions}),
                "directions": sorted({q.direction.value for q in req.questions}),
                "max_window_ms": max(q.window_ms for q in req.questions)}

    def prefetch(self, v: Verified[CrossingRequest]) -> _Located:
        """The BCP map and the codes each question asks about (a read, on the database
        thread); an asked BCP or section that is not ours is refused here."""
        bmap = self._store.bcp_map()
        located = [resolve_locations(bmap, self._country, q, i)
                   for i, q in enumerate(v.request.questions)]
        return _Located(bmap, located, sorted({c for codes in located for c in codes}))

    def predecide(self, v: Verified[CrossingRequest]) -> QueryDecision:
        """The owner's policy on the request and the BCPs it asks about (no database)."""
        req, where = v.request, v.fetched
        assert isinstance(where, _Located)
        doc = crossing_input(
            member=v.member, header=v.header, responder=self._r.settings.node_id,
            time_ms=v.now_ms, batch_size=len(req.questions),
            window_ms=max(q.window_ms for q in req.questions),
            datasets=[q.dataset for q in req.questions],
            bcps=[(c, _faces(where.bmap, self._country, c)) for c in where.asked])
        decision = crossing_decision(self._r.policy.decide_query(CROSSINGS_QUERY, doc))
        if not decision.allow:
            raise with_facts(PolicyDenied("the owner's policy refused this request",
                                          reasons=decision.reasons),
                             bcps=where.asked, decision="deny", reasons=list(decision.reasons))
        return decision

    def answer(self, v: Verified[CrossingRequest], audit_seq: int) -> Answer:
        req = v.request
        where, decision = v.fetched, v.decided  # the Responder ran prefetch and predecide
        assert isinstance(where, _Located) and isinstance(decision, QueryDecision)
        located, asked = where.located, where.asked
        facts: dict[str, Any] = {"bcps": asked, "decision": "allow",
                                 "reasons": list(decision.reasons)}
        minutes = int(decision.extra["resolution_minutes"])
        answers = []
        for i, (q, codes) in enumerate(zip(req.questions, located, strict=True)):
            rec = self._store.find(q, codes)
            answers.append(CrossingAnswer(index=i, confirmed=False) if rec is None else
                           CrossingAnswer(index=i, confirmed=True, bcp=rec.bcp,
                                          crossed_at_ms=round_down(rec.crossed_at_ms, minutes),
                                          resolution_minutes=minutes))
        hits = sum(1 for a in answers if a.confirmed)
        facts.update(confirmed=hits, not_found=len(answers) - hits, resolution_minutes=minutes)
        resp = CrossingResponse(
            responder=self._r.settings.node_id, key_id=self._r.key_id, request_digest=v.digest,
            issued_at_ms=v.now_ms, answers=tuple(answers), audit_seq=audit_seq)
        return Answer(wire.CROSSING_RESPONSE_TYPE, wire.encode_crossing_response(resp),
                      facts=facts, items=len(answers), hits=hits)
