"""``Lookup`` on the owner's side: a capability's handler like every other.

Steps 1-7, signing, the audit entry and the receipt are :class:`node.responder.Responder`'s.
Here: step 8, the owner's policy (agreement, purpose, datasets, batch size, daily quota),
is asked in :meth:`LookupHandler.predecide`, off the database thread and before the
request joins a unit of work, so a slow policy server delays only its own request.  Inside
the unit of work (:meth:`LookupHandler.answer`) the day's real usage is read; if it is not
what the decision saw (another request, or another replica, used quota meanwhile) the
policy is asked again with the real figure, so daily quotas stay exact.  Step 9 answers
every item from the watchlist and keeps only the fields policy discloses: a lookup of
documents alone is read in :meth:`LookupHandler.preread`, just before its batch's
transaction opens (outside the writers' lock), and answered from that read if the
watchlist's generation has not moved since (node/watchlist/lookup.py, "Read before the
lock"); anything else is read inside the unit of work.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.core import envelope as env_mod
from node.core.errors import BxError, PolicyDenied
from node.core.model import (
    Decision,
    LookupAnswer,
    LookupRequest,
    PolicyInput,
    RequestHeader,
)
from node.core.ports import Answer, UsageLedger, with_facts
from node.policy import PolicyEngine
from node.responder import ResponderSettings, Verified
from node.watchlist.lookup import DISCLOSABLE_FIELDS, Preread, Watchlist, WatchlistHit
from node.wire import convert

__all__ = ["MATCHING_QUERY", "LookupDecided", "LookupHandler", "matching_params"]

MATCHING_QUERY = "data.bxnode.lookup.matching"


def matching_params(policy: PolicyEngine, inp: PolicyInput) -> tuple[float, int]:
    """The owner's policy says how strictly person lookups match (issue 6): the score a
    candidate needs (0..1) and how many candidates a query may consider (1..1000).
    Anything else is a policy error: the request is refused, never matched loosely."""
    return _matching_of(policy.decide_query(MATCHING_QUERY, inp.as_document()))


def _matching_of(answer: dict[str, Any]) -> tuple[float, int]:
    """The matching parameters of the policy's answer, checked (see :func:`matching_params`)."""
    threshold, limit = answer.get("threshold"), answer.get("max_candidates")
    if (answer.get("allow") is not True or isinstance(threshold, bool)
            or not isinstance(threshold, int | float) or not 0 < threshold <= 1
            or isinstance(limit, bool) or not isinstance(limit, int | float)
            or limit != int(limit) or not 1 <= limit <= 1000):
        raise PolicyDenied("the owner's policy gave no valid matching parameters",
                           reasons=("policy_error",))
    return float(threshold), int(limit)


@dataclass(frozen=True, slots=True)
class LookupDecided:
    """The policy's word on one lookup, and the usage figure it was given."""

    inp: PolicyInput
    decision: Decision
    matching: tuple[float, int] | None = None
    error: BxError | None = None  # raised in answer, after the nonce step


#: Requests decided allowed and not yet answered that one peer's hint counts, at most.
_AHEAD_MAX = 1024
#: Requesters and days whose usage hint is kept, at most (then all are forgotten).
_HINTS_MAX = 4096


@dataclass(slots=True)
class _UsageHint:
    """What this process knows of one requester's usage on one day, for predecide: the
    figure its last answer left, and the items of its requests decided allowed since and
    not yet answered (by request digest, in the order they were decided: the order a
    peer's steps run in)."""

    answered: int = 0
    ahead: OrderedDict[bytes, int] = field(default_factory=OrderedDict)


def _day(now_ms: int) -> str:
    return _day_of(now_ms // 86_400_000)


@functools.lru_cache(maxsize=8)
def _day_of(day_number: int) -> str:
    """The UTC date of day ``day_number`` since 1970-01-01 (computed once a day, not per
    request)."""
    return (_EPOCH + dt.timedelta(days=day_number)).isoformat()


_EPOCH = dt.date(1970, 1, 1)


class LookupHandler:
    """Hit / no-hit lookups of documents, persons and manifests."""

    event = "lookup"
    request_type = env_mod.REQUEST_TYPE

    def __init__(self, *, settings: ResponderSettings, key_id: str, policy: PolicyEngine,
                 usage: UsageLedger, watchlist: Watchlist) -> None:
        self._settings = settings
        self._key_id = key_id
        self._policy = policy
        self._usage = usage
        self.watchlist = watchlist
        # The figure predecide gives the policy, per (requester, day): what the last
        # answer left plus what is decided and not yet answered (_UsageHint).  So each
        # request of a batch from one peer is decided with the figure its answer will find,
        # and is not decided again under the writers' lock.  A hint only: answer() checks
        # it against the database.
        self._hints: dict[tuple[str, str], _UsageHint] = {}
        self._hints_lock = threading.Lock()

    def decode(self, payload: bytes) -> LookupRequest:
        return convert.decode_request(payload, max_items=self._settings.max_batch)

    def header(self, request: LookupRequest) -> RequestHeader:
        return request.header

    def describe(self, req: LookupRequest) -> dict[str, Any]:
        return {"query_kind": req.kind.value, "datasets": list(req.datasets),
                "data_types": list(req.data_types), "items": len(req.items)}

    # --- step 8 -------------------------------------------------------------------------------

    def predecide(self, v: Verified[LookupRequest]) -> LookupDecided:
        return self._reserve(v, self._decide(v, self._used_hint(v)))

    def predecide_cached(self, v: Verified[LookupRequest]) -> LookupDecided | None:
        """:meth:`predecide` when the policy's decision cache already holds every answer
        it needs (the same answers, no evaluation: the server runs this on its event
        loop), else None."""
        cached = getattr(self._policy, "cached", None)
        cached_query = getattr(self._policy, "cached_query", None)
        if cached is None or cached_query is None:
            return None
        decided = self._decide_with(v, self._used_hint(v), cached,
                                    lambda inp: cached_query(MATCHING_QUERY, inp.as_document()))
        return None if decided is None else self._reserve(v, decided)

    def _used_hint(self, v: Verified[LookupRequest]) -> int:
        with self._hints_lock:
            hint = self._hints.get((v.member.node_id, _day(v.now_ms)))
            if hint is None:
                return 0
            used = hint.answered
            for digest, items in hint.ahead.items():
                if digest == v.digest:  # decided once already: only those before it count
                    break
                used += items
            return used

    def _hint(self, node: str, day: str) -> _UsageHint:
        """``node``'s hint for ``day``, a new one if none is kept (hold the lock)."""
        hint = self._hints.get((node, day))
        if hint is None:
            if len(self._hints) >= _HINTS_MAX:
                self._hints.clear()
            hint = self._hints[(node, day)] = _UsageHint()
        return hint

    def _reserve(self, v: Verified[LookupRequest], decided: LookupDecided) -> LookupDecided:
        """Count an allowed request's items into the next requests' hint until it is
        answered (a refused one uses nothing).  A request never answered (refused as a
        replay, its batch failed) is dropped by the next answer of its peer that was
        decided after it; at most :data:`_AHEAD_MAX` are kept per peer and day."""
        if decided.decision.allow and decided.error is None:
            with self._hints_lock:
                ahead = self._hint(v.member.node_id, _day(v.now_ms)).ahead
                ahead[v.digest] = len(v.request.items)
                if len(ahead) > _AHEAD_MAX:
                    ahead.popitem(last=False)
        return decided

    def _decide(self, v: Verified[LookupRequest], items_today: int) -> LookupDecided:
        policy = self._policy
        decided = self._decide_with(
            v, items_today, policy.decide,
            lambda inp: policy.decide_query(MATCHING_QUERY, inp.as_document()))
        assert decided is not None  # the engine always answers
        return decided

    def _decide_with(self, v: Verified[LookupRequest], items_today: int,
                     decide: Callable[[PolicyInput], Decision | None],
                     matching: Callable[[PolicyInput], dict[str, Any] | None],
                     ) -> LookupDecided | None:
        """The decision (and, for persons, the matching parameters) from ``decide`` and
        ``matching``; None as soon as one of them has no answer."""
        req, h = v.request, v.header
        inp = PolicyInput(
            requester_node=v.member.node_id, requester_country=v.member.country,
            requester_agency=v.member.agency, operator=h.operator, purpose=h.purpose,
            legal_basis=h.legal_basis, case_ref=h.case_ref, query_kind=req.kind.value,
            datasets=req.datasets, data_types=req.data_types, batch_size=len(req.items),
            items_today=items_today, time_ms=v.now_ms, responder_node=self._settings.node_id)
        decision = decide(inp)
        if decision is None:
            return None
        if not decision.allow or "persons" not in inp.datasets:  # no person to match
            return LookupDecided(inp=inp, decision=decision)
        answer = matching(inp)
        if answer is None:
            return None
        try:
            return LookupDecided(inp=inp, decision=decision, matching=_matching_of(answer))
        except BxError as exc:
            return LookupDecided(inp=inp, decision=decision, error=exc)

    # --- step 9 -------------------------------------------------------------------------------

    def preread(self, v: Verified[LookupRequest]) -> Preread | None:
        """The watchlist's answer to a lookup of documents alone, read outside any unit of
        work just before the batch's transaction opens; None for anything else.  A
        refusal reading raises (a sealed row found altered) is not kept: the answer
        reads again under the lock and raises it there, once policy allowed the request
        (a peer the policy refuses learns nothing from how the store answered).  Nothing
        is read for a request the policy's decision (predecide) refused."""
        decided = v.decided
        if isinstance(decided, LookupDecided) and (not decided.decision.allow
                                                   or decided.error is not None):
            return None
        # the hits' sources only where the decision discloses them (most do not): the
        # answer reads them under the lock if its own decision does and these were not read
        with_sources = not isinstance(decided, LookupDecided) or \
            "source_agency" in decided.decision.disclose
        return self.watchlist.preread(v.request.items, dt.date.fromisoformat(_day(v.now_ms)),
                                      with_sources=with_sources)

    def answer(self, v: Verified[LookupRequest], audit_seq: int) -> Answer:
        req = v.request
        node, day = v.member.node_id, _day(v.now_ms)
        used = self._usage.items_today(node, day)
        decided = v.decided if isinstance(v.decided, LookupDecided) else None
        if decided is None or decided.inp.items_today != used:
            decided = self._decide(v, used)  # the real figure: quotas stay exact
        decision = decided.decision
        verdict = {"decision": "allow" if decision.allow else "deny",
                   "reasons": list(decision.reasons)}
        if not decision.allow:
            raise with_facts(PolicyDenied("the owner's policy refused this request",
                                          reasons=decision.reasons), **verdict)
        if decided.error is not None:
            raise with_facts(decided.error, **verdict)
        self._usage.add(node, day, len(req.items))
        with self._hints_lock:
            hint = self._hint(node, day)
            hint.answered = used + len(req.items)
            if v.digest in hint.ahead:
                while hint.ahead.popitem(last=False)[0] != v.digest:
                    pass  # decided before this one and still unanswered: never will be
        fields = decision.disclose & DISCLOSABLE_FIELDS
        facts: dict[str, Any] = dict(verdict)
        if decided.matching is not None:
            facts.update(match_threshold=decided.matching[0], max_candidates=decided.matching[1])
        found, sources = self._read(v, day, decided.matching, "source_agency" in fields)
        results = Watchlist.disclose_all(found, fields, sources)
        hits = len(found) - found.count(None)
        facts.update(hits=hits, no_hits=len(results) - hits, disclosed=sorted(fields))
        answer = LookupAnswer(
            responder=self._settings.node_id, key_id=self._key_id, request_digest=v.digest,
            issued_at_ms=v.now_ms, results=results, audit_seq=audit_seq)
        return Answer(env_mod.RESPONSE_TYPE, convert.encode_answer(answer), facts=facts,
                      items=len(results), hits=hits)

    def _read(self, v: Verified[LookupRequest], day: str, matching: tuple[float, int] | None,
              with_sources: bool) -> tuple[Sequence[WatchlistHit | None],
                                           Mapping[str, str] | None]:
        """The items' hits (and, ``with_sources``, their sources): from :meth:`preread`
        while the watchlist is still at the generation it read, else read here."""
        pre = v.preread
        if isinstance(pre, Preread) and self.watchlist.unchanged_since(pre):
            if not with_sources:
                return pre.hits, None
            return pre.hits, (pre.sources if pre.sources is not None
                              else self.watchlist.sources_of(pre.hits))
        found = self.watchlist.check_many(v.request.items, dt.date.fromisoformat(day),
                                          matching)
        # read in this unit of work, only when disclosed
        return found, self.watchlist.sources_of(found) if with_sources else None
