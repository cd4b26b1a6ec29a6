"""The Prometheus side of :class:`node.core.metrics.Metrics`: one registry per node process.

:class:`NodeMetrics` owns a :class:`prometheus_client.CollectorRegistry` of its own (never
the library's global default), so several nodes can run in one process (the tests) and
each ``serve --workers`` worker exposes exactly its own figures.  Counters and histograms
move on the events the components report; the state a scrape should see as it is *now*
(the policy cache's hits, the registry's version and time to expiry) is read from the
running components when the scrape comes (:meth:`NodeMetrics.watch`).

No personal data in any label: every label value passes :func:`_member`, :func:`_cause`,
:func:`_status` or a fixed set before it is used, and anything else is replaced by a fixed
word (``other``, ``unregistered``), never echoed.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from node.core.metrics import Metrics
from node.core.reasons import is_registered
from node.server.heap import PAUSE_BUCKETS_S, GcPauses

__all__ = ["METRIC_NAMES", "NodeMetrics"]

#: A member id as the federation writes them (node/core/model.py validate_id), without '@'
#: so that nothing shaped like an address can become a label.
_MEMBER = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_NAME = re.compile(r"[A-Za-z0-9_.]{1,128}")
_STATUSES = frozenset(c.name for c in grpc.StatusCode)
_WITNESS_RESULTS = frozenset({"cosigned", "unavailable", "bad_cosignature", "witness_ahead",
                              "origin_unlisted"})
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 100_000)
_COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

#: Every metric family a node exposes (besides the process_* ones), for the README and tests.
METRIC_NAMES = (
    "bxnode_info", "bxnode_requests_total", "bxnode_request_duration_seconds",
    "bxnode_group_commit_batch_size", "bxnode_group_commit_seconds",
    "bxnode_group_commit_failures_total", "bxnode_policy_cache_hits_total",
    "bxnode_policy_cache_misses_total", "bxnode_registry_version",
    "bxnode_registry_expiry_seconds", "bxnode_witness_submissions_total",
    "bxnode_witness_alerts_total", "bxnode_peer_last_success_timestamp_seconds",
    "bxnode_peer_failures_total", "bxnode_erasure_sweeps_total", "bxnode_erased_records_total",
    "bxnode_gc_pause_seconds",
)


def _member(value: str) -> str:
    return value if _MEMBER.fullmatch(value) else "other"


def _cause(value: str) -> str:
    if not value:
        return ""
    return value if is_registered(value) else "unregistered"


def _status(value: str) -> str:
    return value if value in _STATUSES else "UNKNOWN"


def _name(value: str) -> str:
    return value if _NAME.fullmatch(value) else "other"


class NodeMetrics(Metrics):
    """A node's metrics in a registry of their own.  Keyword-only; see :meth:`for_node`."""

    def __init__(self, *, node_id: str, version: str = "",
                 registry: CollectorRegistry | None = None, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        info = Gauge("bxnode_info", "This node: its member id and software version (always 1).",
                     ("node", "version"), registry=r)
        info.labels(_member(node_id), _name(version) if version else "").set(1)
        self._requests = Counter(
            "bxnode_requests", "Calls peers made to this node, by gRPC service, method, "
            "status, reason code and the member whose TLS certificate made the call.",
            ("service", "method", "outcome", "reason", "peer"), registry=r)
        self._latency = Histogram(
            "bxnode_request_duration_seconds", "Time from a call's arrival to its answer.",
            ("service", "method"), buckets=_LATENCY_BUCKETS, registry=r)
        self._batch = Histogram(
            "bxnode_group_commit_batch_size", "Steps (requests) per group-commit batch.",
            buckets=_BATCH_BUCKETS, registry=r)
        self._commit = Histogram(
            "bxnode_group_commit_seconds", "Time to run and durably commit one batch.",
            buckets=_COMMIT_BUCKETS, registry=r)
        self._commit_failed = Counter(
            "bxnode_group_commit_failures", "Batches whose commit failed (nothing answered).",
            registry=r)
        self._witness = Counter(
            "bxnode_witness_submissions", "Our checkpoint sent to a witness, by the outcome.",
            ("witness", "result"), registry=r)
        self._alerts = Counter(
            "bxnode_witness_alerts", "Evidence of an inconsistent log or witness, by kind.",
            ("kind",), registry=r)
        self._peer_ok = Gauge(
            "bxnode_peer_last_success_timestamp_seconds",
            "When a peer last answered one of our requests with a verified response.",
            ("peer",), registry=r)
        self._peer_failed = Counter(
            "bxnode_peer_failures", "Attempts to reach a peer that got no answer, by status.",
            ("peer", "status"), registry=r)
        self._sweeps = Counter(
            "bxnode_erasure_sweeps", "Retention sweeps run by this node, by result.",
            ("result",), registry=r)
        self._erased = Counter(
            "bxnode_erased_records", "Records erased by retention sweeps, by kind.",
            ("kind",), registry=r)
        self._state = _StateCollector()
        r.register(self._state)
        if process:
            ProcessCollector(registry=r)

    # --- events ---------------------------------------------------------------------------

    def request(self, *, service: str, method: str, outcome: str, cause: str, peer: str,
                seconds: float) -> None:
        service, method = _name(service), _name(method)
        self._requests.labels(service, method, _status(outcome), _cause(cause),
                              _member(peer)).inc()
        self._latency.labels(service, method).observe(max(seconds, 0.0))

    def batch_committed(self, *, size: int, seconds: float, ok: bool) -> None:
        if ok:
            self._batch.observe(size)
            self._commit.observe(max(seconds, 0.0))
        else:
            self._commit_failed.inc()

    def witness_result(self, *, witness: str, result: str) -> None:
        self._witness.labels(_member(witness),
                             result if result in _WITNESS_RESULTS else "other").inc()

    def witness_alert(self, *, kind: str) -> None:
        self._alerts.labels(kind if kind == "witness_ahead" or is_registered(kind)
                            else "other").inc()

    def peer_answered(self, *, peer: str, at_s: float) -> None:
        self._peer_ok.labels(_member(peer)).set(at_s)

    def peer_failed(self, *, peer: str, status: str) -> None:
        self._peer_failed.labels(_member(peer), _status(status)).inc()

    def erasure_sweep(self, *, erased: Mapping[str, int], ok: bool) -> None:
        self._sweeps.labels("ok" if ok else "failed").inc()
        for kind, n in erased.items():
            if n > 0:
                self._erased.labels(_name(kind)).inc(n)

    # --- state read at scrape time ----------------------------------------------------------

    def watch(self, *, policy: Any = None, directory: Any = None,
              clock_s: Callable[[], float] = time.time) -> None:
        """Read the policy decision cache's hits and misses (when ``[policy] cache`` is on)
        and the trusted registry's version and time to expiry (when ``[federation]
        registry`` is set) from these objects at every scrape."""
        self._state.policy = policy if hasattr(policy, "hits") else None
        self._state.directory = directory if hasattr(directory, "status") else None
        self._state.clock_s = clock_s

    def watch_gc(self, pauses: GcPauses | None) -> None:
        """Read the process's garbage-collection pauses (node/server/heap.py) at every
        scrape: ``bxnode serve`` measures them from its start."""
        self._state.gc = pauses

    def exposition(self) -> bytes:
        """The text a scrape gets (the Prometheus text format)."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self) -> None:
        self.policy: Any = None
        self.directory: Any = None
        self.clock_s: Callable[[], float] = time.time
        self.gc: GcPauses | None = None

    def collect(self) -> Iterator[Metric]:
        policy, directory = self.policy, self.directory
        if self.gc is not None:
            yield _gc_pauses(self.gc)
        if policy is not None:
            yield CounterMetricFamily("bxnode_policy_cache_hits",
                                      "Policy decisions answered from the decision cache.",
                                      value=int(policy.hits))
            yield CounterMetricFamily("bxnode_policy_cache_misses",
                                      "Policy decisions the cache had to evaluate.",
                                      value=int(policy.misses))
        if directory is not None:
            status = directory.status()
            yield GaugeMetricFamily("bxnode_registry_version",
                                    "Version of the trusted federation registry.",
                                    value=status.version)
            yield GaugeMetricFamily(
                "bxnode_registry_expiry_seconds",
                "Seconds until the trusted registry expires (negative: expired).",
                value=status.expires_ms / 1000 - self.clock_s())


def _gc_pauses(pauses: GcPauses) -> Metric:
    """The pauses as a histogram per generation (read at once: the collector only adds)."""
    fam = HistogramMetricFamily(
        "bxnode_gc_pause_seconds", "Pauses of Python's cyclic garbage collector, by "
        "generation (2: a full collection; every request in flight waits for it).",
        labels=("generation",))
    bounds = [*map(repr, PAUSE_BUCKETS_S), "+Inf"]
    for g in GcPauses.GENERATIONS:
        cumulative = itertools.accumulate(list(pauses.buckets[g]))
        fam.add_metric((str(g),), buckets=list(zip(bounds, cumulative, strict=True)),
                       sum_value=pauses.total_s[g])
    return fam
