"""Cache lookup decisions on exactly the inputs the policy declares it reads.

A Rego evaluation costs about 0.6 ms, most of a lookup's time, and most lookups ask the
same question again (the same peer, purpose and kind of query, the same day).  The
policy declares what it reads of its input, and how, in ``data.bxnode.lookup
.cache_inputs`` (policies/bxnode/lookup.rego)::

    {"allow": false, "reasons": ["declaration"], "inputs": {"purpose": "value", ...}}

with one of four modes per input path: ``value`` (the value itself), ``blank`` (only
whether it is blank after trimming: checked, every read must be ``trim_space(input.x)
!= ""`` or ``== ""``), ``utc_day`` (only the UTC day of a time in ms: the policy's word,
as agreements run per calendar day; the equivalence tests check the shipped policy) and
``quota`` (only through ``items_today + batch_size <= daily_quota``, the limit the policy
reports at ``data.bxnode.lookup.quota_limit``).  A decision is cached under exactly the
declared values; every undeclared field is replaced by a fixed stand-in before the
policy sees it, so what the policy does not declare it cannot read.

Fail closed: the cache refuses to start (ConfigError ``policy_cache_undeclared``) when the
declaration is missing or malformed, or when any module of the package reads an input
path it does not declare (the modules are scanned for ``input.<path>``; ``input[...]`` or
the bare ``input`` cannot be checked and refuse too).  Adding a policy input therefore
can never be silently ignored: declare it, or set ``[policy] cache = false``.  The cache
is dropped on every reload and keyed by the policy digest.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from node.core.errors import ConfigError
from node.core.model import Decision, PolicyInput
from node.policy.engine import PolicyEngine

__all__ = ["DECLARATION_QUERY", "QUOTA_QUERY", "CachingPolicyEngine", "check_declaration"]

log = structlog.get_logger("bxnode.policy.cache")

QUOTA_QUERY = "data.bxnode.lookup.quota_limit"
DECLARATION_QUERY = "data.bxnode.lookup.cache_inputs"
_PACKAGE = "bxnode.lookup"
#: How long a thread waits for another's evaluation of the same key before its own (an
#: OPA server can be slow; node.policy.opa's own timeout is shorter).
_WAIT_S = 10.0

#: input path -> (PolicyInput field, the modes that field may be declared with)
_FIELDS: dict[str, tuple[str, frozenset[str]]] = {
    "requester.node": ("requester_node", frozenset({"value"})),
    "requester.country": ("requester_country", frozenset({"value"})),
    "requester.agency": ("requester_agency", frozenset({"value"})),
    "requester.operator": ("operator", frozenset({"value", "blank"})),
    "purpose": ("purpose", frozenset({"value"})),
    "legal_basis": ("legal_basis", frozenset({"value", "blank"})),
    "case_ref": ("case_ref", frozenset({"value", "blank"})),
    "query.kind": ("query_kind", frozenset({"value"})),
    "query.datasets": ("datasets", frozenset({"value"})),
    "query.data_types": ("data_types", frozenset({"value"})),
    "query.batch_size": ("batch_size", frozenset({"value"})),
    "usage.items_today": ("items_today", frozenset({"quota"})),
    "time_ms": ("time_ms", frozenset({"value", "utc_day"})),
    "responder.node": ("responder_node", frozenset({"value"})),
}
#: What an undeclared field is replaced with before the policy sees it.
_STAND_IN: dict[str, Any] = {
    "requester_node": "", "requester_country": "", "requester_agency": "",
    "operator": "cache", "purpose": "", "legal_basis": "", "case_ref": "", "query_kind": "",
    "datasets": (), "data_types": (), "batch_size": 0, "items_today": 0, "time_ms": 0,
    "responder_node": "",
}
_INPUT_REF = re.compile(r"\binput\b(\.[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)?")
_BLANK_TEST = re.compile(r'trim_space\(input\.[a-z_.]+\)\s*(?:!=|==)\s*""')
_PACKAGE_LINE = re.compile(r"^\s*package\s+([A-Za-z0-9_.]+)", re.MULTILINE)


def _undeclared(message: str) -> ConfigError:
    return ConfigError(f"policy decision cache: {message}; declare it in "
                       f"{DECLARATION_QUERY} or set [policy] cache = false",
                       reason="policy_cache_undeclared")


def _strip_comments(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def check_declaration(declared: dict[str, Any], modules: Sequence[tuple[str, str]]
                      ) -> dict[str, str]:
    """The declared ``{input path: mode}``, checked against the modules of the lookup
    package; raises ConfigError ``policy_cache_undeclared`` otherwise."""
    inputs = declared.get("inputs") if isinstance(declared, dict) else None
    if not isinstance(inputs, dict) or not inputs:
        raise _undeclared("the policy declares no inputs")
    out: dict[str, str] = {}
    for path, mode in inputs.items():
        known = _FIELDS.get(path)
        if known is None or mode not in known[1]:
            raise _undeclared(f"input {path!r} with mode {mode!r} is not one the cache "
                              "can key on")
        out[path] = mode
    if "usage.items_today" in out and "query.batch_size" not in out:
        raise _undeclared("a quota needs query.batch_size declared too")
    scanned = False
    for name, text in modules:
        code = _strip_comments(text)
        package = _PACKAGE_LINE.search(code)
        if package is None or package.group(1) != _PACKAGE:
            continue
        scanned = True
        for m in _INPUT_REF.finditer(code):
            path = (m.group(1) or "")[1:]
            if not path:
                raise _undeclared(f"{name} reads input as a whole, or by a computed key")
            if not any(path == d or path.startswith(d + ".") or d.startswith(path + ".")
                       for d in out):
                raise _undeclared(f"{name} reads input.{path}")
            if out.get(path) == "blank" and not _BLANK_TEST.fullmatch(
                    code[max(0, m.start() - 11):m.end() + 8].strip()):
                raise _undeclared(f"{name} reads input.{path} other than whether it is blank "
                                  f'(only trim_space(input.{path}) != "" or == "")')
    if not scanned:
        raise _undeclared(f"no module of package {_PACKAGE} was found")
    return out
MATCHING_QUERY = "data.bxnode.lookup.matching"
_QUOTA = "quota_exhausted"


#: The declared inputs, in order: (PolicyInput field, mode).
_Plan = tuple[tuple[str, str], ...]

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

    def __init__(self, *, inner: PolicyEngine, policy_dir: Path | None = None,
                 modules: Sequence[tuple[str, str]] | None = None,
                 max_entries: int = 4096) -> None:
        """``modules`` (or the Rego files of ``policy_dir``) are what the inner engine
        evaluates; they are scanned for the inputs they read (see the module docstring)."""
        self._inner = inner
        self._policy_dir = policy_dir
        self._declared: dict[str, str] = {}
        #: A number that changes with every declaration (cache keys carry it, so no key
        #: outlives its declaration) and the declared (PolicyInput field, mode) pairs in
        #: order: replaced as one value, so a reader never mixes two declarations.
        self._plan: tuple[int, _Plan] = (0, ())
        self._declare(self._load_declaration(modules))
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[Any, ...], tuple[Decision, int | None]] = OrderedDict()
        self._queries: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        #: Keys being evaluated now, each with the event its waiters wait on (decide).
        self._running: dict[tuple[Any, ...], threading.Event] = {}
        self.hits = 0
        self.misses = 0

    @property
    def digest(self) -> str:
        return self._inner.digest

    def _load_declaration(self, modules: Sequence[tuple[str, str]] | None) -> dict[str, str]:
        if modules is None:
            if self._policy_dir is None:
                raise _undeclared("no policy sources to check the declaration against")
            from node.policy._sources import read_policy_dir

            modules = read_policy_dir(self._policy_dir).modules
        return check_declaration(self._inner.decide_query(DECLARATION_QUERY, {}), modules)

    def reload(self) -> None:
        self._inner.reload()
        with self._lock:
            self._entries.clear()
            self._queries.clear()
        self._declare(self._load_declaration(None))

    def _declare(self, declared: dict[str, str]) -> None:
        self._declared = declared
        self._plan = (self._plan[0] + 1,
                      tuple((_FIELDS[path][0], mode) for path, mode in declared.items()))

    def decide_query(self, query: str, doc: dict[str, Any]) -> dict[str, Any]:
        """Other queries are not cached, except the matching parameters, which read only
        the governing agreement (``data.bxnode.lookup.matching``)."""
        if query != MATCHING_QUERY:
            return self._inner.decide_query(query, doc)
        key = self._matching_key(doc)
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

    def cached_query(self, query: str, doc: dict[str, Any]) -> dict[str, Any] | None:
        """:meth:`decide_query`'s answer if the cache holds it (only the matching
        parameters are cached), else None."""
        if query != MATCHING_QUERY:
            return None
        key = self._matching_key(doc)
        with self._lock:
            return self._queries.get(key)

    def _matching_key(self, doc: dict[str, Any]) -> tuple[Any, ...]:
        return ("matching", self._inner.digest, json.dumps(
            {k: doc.get(k) for k in ("requester", "responder", "purpose", "query")},
            sort_keys=True), dt.datetime.fromtimestamp(doc.get("time_ms", 0) / 1000,
                                                      dt.UTC).date().toordinal())

    @staticmethod
    def _reduced(inp: PolicyInput, plan: _Plan) -> tuple[Any, ...]:
        """The declared inputs of ``inp``, each reduced to what its mode keeps, in the
        declaration's order: with the policy digest, the cache key (every undeclared field
        is the same fixed stand-in for every input, so it adds nothing to the key)."""
        out = []
        for field, mode in plan:
            value = getattr(inp, field)
            if mode == "blank":
                value = "x" if str(value).strip() else ""
            elif mode == "utc_day":
                value = value - value % 86_400_000  # the day's first instant, UTC
            elif mode == "quota":
                value = 0  # applied below against the reported limit
            out.append(value)
        return tuple(out)

    @staticmethod
    def _base(reduced: tuple[Any, ...], plan: _Plan) -> PolicyInput:
        """The input as the cache lets the policy see it: the declared inputs as
        :meth:`_reduced` keeps them, everything else a fixed stand-in."""
        values = dict(_STAND_IN)
        for (field, _mode), value in zip(plan, reduced, strict=True):
            values[field] = value
        return PolicyInput(**values)

    def cached(self, inp: PolicyInput) -> Decision | None:
        """The decision for ``inp`` if the cache holds it (no evaluation, no waiting on a
        policy server: the server answers a hit on its event loop), else None."""
        gen, plan = self._plan
        key = (self._inner.digest, gen, self._reduced(inp, plan))
        with self._lock:
            hit = self._entries.get(key)
            if hit is None:
                return None
            self._entries.move_to_end(key)
            self.hits += 1
        return self._with_quota(inp, *hit)

    def decide(self, inp: PolicyInput) -> Decision:
        """The decision, from the cache or evaluated once: threads that miss the same key
        while it is being evaluated wait for that evaluation (a peer's burst of identical
        questions, its first of the day, costs one evaluation, not one per thread, the
        other peers' decisions queued behind them) and then read the cache; if it cached
        nothing (a failure), each evaluates for itself."""
        gen, plan = self._plan
        reduced = self._reduced(inp, plan)
        key = (self._inner.digest, gen, reduced)
        for _ in range(2):
            with self._lock:
                cached = self._entries.get(key)
                if cached is not None:
                    self._entries.move_to_end(key)
                    self.hits += 1
                    return self._with_quota(inp, *cached)
                running = self._running.get(key)
                if running is None:
                    running = self._running[key] = threading.Event()
                    break
            running.wait(_WAIT_S)  # another thread evaluates this key: its answer, cached
        else:
            running = None  # waited twice and nothing was cached: evaluate on our own
        try:
            self.misses += 1
            base_inp = self._base(reduced, plan)
            base = self._inner.decide(base_inp)
            limit = self._inner.decide_query(QUOTA_QUERY, base_inp.as_document())
            quota = _quota(limit)
            if set(base.reasons) & _FAILURES or (base.allow and quota is None):
                # No valid decision could be had: deny, and never cache a failure.
                return base if not base.allow else Decision(allow=False,
                                                            reasons=("policy_error",))
            with self._lock:
                self._entries[key] = (base, quota)
                if len(self._entries) > self._max:
                    self._entries.popitem(last=False)
            return self._with_quota(inp, base, quota)
        finally:
            if running is not None:
                with self._lock:
                    self._running.pop(key, None)
                running.set()

    def _with_quota(self, inp: PolicyInput, base: Decision, quota: int | None) -> Decision:
        """The cached decision applied to ``inp``'s own usage figure (mode ``quota``)."""
        if "usage.items_today" not in self._declared:
            return base
        if quota is None or (0 <= inp.items_today and inp.items_today + inp.batch_size <= quota):
            return base
        reasons = tuple(sorted({*base.reasons, _QUOTA} - {"policy_denied"}))
        return Decision(allow=False, reasons=reasons)
