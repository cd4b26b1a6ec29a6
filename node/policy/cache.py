"""Cache lookup decisions on exactly the inputs the shipped policy reads.

ARCHITECTURE/issue 7: a Rego evaluation costs about 0.6 ms, most of a lookup's
time.  The shipped lookup policy (policies/bxnode/lookup.rego) reads the
requester, purpose, datasets, batch size, the UTC *day* (agreements are valid
per calendar day), whether legal basis and case reference are blank, and the
day's usage, and nothing else.  So a decision is cached under every input
except those, evaluated with ``usage.items_today = 0``; the quota rule is then
applied to the real usage with the limit the policy itself reports
(``data.bxnode.lookup.quota_limit``), exactly as ``quota_ok`` does:
``items_today + batch_size <= daily_quota``.

A policy that reads anything else (the operator, the case reference's text,
the time of day) must run with ``[policy] cache = false``.  The cache is
dropped on every reload and keyed by the policy digest.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import threading
from collections import OrderedDict
from typing import Any

from node.core.model import Decision, PolicyInput
from node.policy.engine import PolicyEngine

__all__ = ["QUOTA_QUERY", "CachingPolicyEngine"]

QUOTA_QUERY = "data.bxnode.lookup.quota_limit"
MATCHING_QUERY = "data.bxnode.lookup.matching"
_QUOTA = "quota_exhausted"


_FAILURES = frozenset({"policy_error", "policy_unavailable"})


def _quota(limit: dict[str, Any]) -> int | None:
    """The daily quota the policy reports; None when no agreement governs (or on failure)."""
    if limit.get("allow") is not True:
        return None
    q = limit.get("daily_quota")
    if isinstance(q, bool) or not isinstance(q, int | float):
        return -1  # not a number: quota_ok can never hold
    return math.floor(q)  # integer usage <= q  <=>  usage <= floor(q)


class CachingPolicyEngine:
    """Wraps an engine; same decisions, evaluated once per distinct key."""

    def __init__(self, *, inner: PolicyEngine, max_entries: int = 4096) -> None:
        self._inner = inner
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], tuple[Decision, int | None]] = OrderedDict()
        self._queries: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def digest(self) -> str:
        return self._inner.digest

    def reload(self) -> None:
        self._inner.reload()
        with self._lock:
            self._entries.clear()
            self._queries.clear()

    def decide_query(self, query: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Other queries are not cached, except the matching parameters, which read only
        the governing agreement (``data.bxnode.lookup.matching``)."""
        if query != MATCHING_QUERY:
            return self._inner.decide_query(query, doc)
        key = ("matching", self._inner.digest, json.dumps(
            {k: doc.get(k) for k in ("requester", "responder", "purpose", "query")},
            sort_keys=True), dt.datetime.fromtimestamp(doc.get("time_ms", 0) / 1000,
                                                      dt.UTC).date().toordinal())
        with self._lock:
            hit = self._queries.get(key)
        if hit is not None:
            return hit
        answer = self._inner.decide_query(query, doc)
        if answer.get("allow") is True:  # never cache a failure
            with self._lock:
                self._queries[key] = answer
                if len(self._queries) > self._max:
                    self._queries.popitem(last=False)
        return answer

    @staticmethod
    def _key(inp: PolicyInput, digest: str) -> tuple[Any, ...]:
        day = dt.datetime.fromtimestamp(inp.time_ms / 1000, dt.UTC).date().toordinal()
        return (digest, inp.requester_node, inp.requester_country, inp.requester_agency,
                inp.purpose, inp.legal_basis.strip() == "", inp.case_ref.strip() == "",
                inp.query_kind, inp.datasets, inp.data_types, inp.batch_size, day,
                inp.responder_node)

    def decide(self, inp: PolicyInput) -> Decision:
        digest = self._inner.digest
        key = self._key(inp, digest)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                self.hits += 1
        if cached is None:
            self.misses += 1
            # The day's first instant stands for the whole day (agreements are per day).
            day_ms = inp.time_ms - inp.time_ms % 86_400_000  # UTC midnight of that day
            base_inp = dataclasses.replace(inp, items_today=0, time_ms=day_ms,
                                           legal_basis=inp.legal_basis.strip() and "x",
                                           case_ref=inp.case_ref.strip() and "x",
                                           operator="cache")
            base = self._inner.decide(base_inp)
            limit = self._inner.decide_query(QUOTA_QUERY, base_inp.as_document())
            quota = _quota(limit)
            if set(base.reasons) & _FAILURES or (base.allow and quota is None):
                # No valid decision could be had: deny, and never cache a failure.
                return base if not base.allow else Decision(allow=False,
                                                            reasons=("policy_error",))
            cached = (base, quota)
            with self._lock:
                self._entries[key] = cached
                if len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        base, quota = cached
        if quota is None or (0 <= inp.items_today and inp.items_today + inp.batch_size <= quota):
            return base
        reasons = tuple(sorted({*base.reasons, _QUOTA} - {"policy_denied"}))
        return Decision(allow=False, reasons=reasons)
