"""One peer cannot starve the others: per-peer rate and concurrency limits at the edge.

Each member (identified by its TLS certificate, before anything it sent is parsed) has a
token bucket (``rate_per_s`` refilling up to ``burst``) and a cap on requests in flight
(``max_in_flight``), from the owner's policy per agreement (``data.bxnode.lookup
.rate_limit``, cached per requester and UTC day).  The limits hold for the whole node on
one machine: the worker processes of ``serve --workers N`` keep their buckets in one table
they all map (:class:`node.server.shared_limits.SharedBuckets`), so an agreed rate is the
rate whatever worker a connection lands on.  Replicas on several machines share a peer's
tokens and its calls in flight through their PostgreSQL database as well
(:mod:`node.server.db_limits`).

A request beyond the bucket is *paced*, not refused at once: it is promised the peer's
next token and waits on the event loop until that token exists (:meth:`PeerLimiter
.reserve`; tokens go out in the order asked for), at most ``[server] rate_wait_ms``
(1,000 ms; 0 refuses at once).  A call whose deadline comes first waits until then too
(its peer sees DEADLINE_EXCEEDED): refused early, it would free its stream for the
peer's next call at once, and that is the churn pacing is there to stop.  While it waits it
holds one of the peer's ``max_in_flight`` slots and one of its connection's HTTP/2 streams
(``max_concurrent_streams``), so a peer asking ten times faster than agreed is answered at
its agreed rate and the rest of its calls wait on its own side of the connection, where
they cost the node nothing.  (Refused at once, each refusal was answered in a fraction of
a millisecond and sent again as fast: a flood at 1,000/s cost the node ~0.5 ms of CPU per
refusal, most of a core, and the other peers' answers queued behind it.)  What lies beyond
both -- more in flight than ``max_in_flight``, or a token further ahead than the wait
allows -- is refused with RESOURCE_EXHAUSTED/``rate_limited`` at once, on the event loop:
no policy evaluation, no database, no wait for a commit.

Every such refusal is still audited, but not one entry each (that would make a refusal
cost nearly what an answer costs, and let a flood fill the database thread's queue ahead
of the answers): :class:`OverLimitTally` counts them per (peer, event) and the server
appends one aggregated entry per peer and event each interval (``NodeServer
.refusal_flush_s``, 1 s), through the group commit like any entry, and once more when it
shuts down.  The entry gives the exact count, the first and last refusal time, and
``refused_sha256``: SHA-256 over the sorted SHA-256 digests of the refused messages' bytes
as received (sorted, so a peer that kept what it sent and was refused can recompute it
whatever order the node's threads saw the calls in).  At most :data:`TALLY_MAX` refusals
go into one entry; beyond that the tally starts a second one.  A call its peer cancelled
(or whose deadline passed) while it waited for its token is tallied the same way, in an
entry of its own: status ``CANCELLED``, outcome ``cancelled``.
"""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from node.core.ports import AuditRecord
from node.policy import PolicyEngine

__all__ = ["DEFAULT_RATE_WAIT_MS", "DEFAULT_STREAMS", "MAX_RATE_WAIT_MS", "MAX_STREAMS",
           "RATE_QUERY", "TALLY_MAX", "BucketTable", "LocalBuckets", "OverLimitTally",
           "PeerLimiter", "PeerLimits", "limits_from_policy"]

RATE_QUERY = "data.bxnode.lookup.rate_limit"

#: Calls one HTTP/2 connection has open in the node at once (``[server]
#: max_concurrent_streams``, gRPC's ``grpc.max_concurrent_streams``): a connection flooding
#: the node waits for a free stream on its own side, so its calls never queue in gRPC's
#: core ahead of another peer's, where no limit and no fair gate can see them yet.  32 per
#: connection keeps a client's usual 64 callers over two connections all in flight.
DEFAULT_STREAMS = 32
MAX_STREAMS = 1024

#: How long a request over its peer's rate may wait for its token (``[server]
#: rate_wait_ms``; 0: refused at once).  A second: a burst of a flight's manifest checks
#: a little over the agreed burst is answered a little later instead of refused.
DEFAULT_RATE_WAIT_MS = 1000
MAX_RATE_WAIT_MS = 10_000


@dataclass(frozen=True, slots=True)
class PeerLimits:
    rate_per_s: float
    burst: int
    max_in_flight: int


#: When the policy gives no valid limits: tight, so a policy error never opens the flood.
STRANGER = PeerLimits(rate_per_s=5.0, burst=10, max_in_flight=4)

#: The policy gave no decision (node.policy.opa): never cached, or an OPA server down at a
#: peer's first request of the day would hold it to STRANGER's limits all day.
_FAILURES = frozenset({"policy_error", "policy_unavailable"})


def limits_from_policy(answer: dict[str, Any]) -> PeerLimits:
    """The policy's limits, or :data:`STRANGER` for anything that is not a valid answer."""
    rate, burst, flight = (answer.get(k) for k in ("rate_per_s", "burst", "max_in_flight"))
    if (answer.get("allow") is not True
            or any(isinstance(v, bool) or not isinstance(v, int | float)
                   for v in (rate, burst, flight))):
        return STRANGER
    assert isinstance(rate, int | float) and isinstance(burst, int | float)
    assert isinstance(flight, int | float)
    if not (0 < rate <= 1e6 and 1 <= burst <= 1e7 and 1 <= flight <= 1e5) or \
            not all(math.isfinite(v) for v in (rate, burst, flight)):
        return STRANGER
    return PeerLimits(float(rate), int(burst), int(flight))


class BucketTable(Protocol):
    """Where :class:`PeerLimiter` keeps each peer's bucket: this process's memory
    (:class:`LocalBuckets`) or a table every worker process of the node maps
    (:class:`node.server.shared_limits.SharedBuckets`).  Every method but :meth:`locked`
    is called with :meth:`locked` held."""

    def locked(self) -> AbstractContextManager[object]: ...

    def read(self, peer: str) -> tuple[float, float, int] | None:
        """``peer``'s (tokens, stamp, requests in flight in every process), or None."""

    def write(self, peer: str, tokens: float, stamp: float, *, now: float) -> bool:
        """Store ``peer``'s tokens and stamp; False if there is no room for a new peer."""

    def take_flight(self, peer: str, delta: int) -> bool:
        """Add ``delta`` (+1 or -1) to this process's requests in flight for ``peer``;
        False (nothing changed) for -1 when this process holds none."""


class LocalBuckets:
    """The buckets of a node that serves in one process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[str, list[float]] = {}

    def locked(self) -> AbstractContextManager[object]:
        return self._lock

    def read(self, peer: str) -> tuple[float, float, int] | None:
        row = self._rows.get(peer)
        return None if row is None else (row[0], row[1], int(row[2]))

    def write(self, peer: str, tokens: float, stamp: float, *, now: float) -> bool:
        row = self._rows.get(peer)
        if row is None:
            self._rows[peer] = [tokens, stamp, 0]
        else:
            row[0], row[1] = tokens, stamp
        return True

    def take_flight(self, peer: str, delta: int) -> bool:
        row = self._rows.get(peer)
        if row is None or row[2] + delta < 0:
            return False
        row[2] += delta
        return True


class PeerLimiter:
    """Thread-safe; ``clock`` is monotonic seconds (injected in tests; the system's
    monotonic clock is one for every process, so workers sharing ``table`` agree on it)."""

    def __init__(self, *, limits_for: Callable[[str], PeerLimits],
                 clock: Callable[[], float], table: BucketTable | None = None) -> None:
        self._limits_for = limits_for
        self._clock = clock
        self.table: BucketTable = table if table is not None else LocalBuckets()
        #: The limits each peer was last reserved under (a refund's cap).
        self._limits: dict[str, PeerLimits] = {}

    def reserve(self, peer: str, limits: PeerLimits | None = None, *,
                max_wait_s: float = 0.0) -> float | None:
        """Take one in-flight slot and ``peer``'s next token, which may not exist yet: the
        seconds until it does (0.0: at once; the caller waits that long before it starts
        the request), or None -- nothing taken -- when the peer is at ``max_in_flight`` or
        its token would come later than ``max_wait_s`` from now.

        Tokens are handed out in the order asked for (the bucket goes below zero by the
        tokens promised), so a peer asking faster than ``rate_per_s`` is *served* at that
        rate, each request waiting its turn, up to ``max_in_flight`` requests and
        ``max_wait_s`` ahead; only what lies beyond those is refused.  A flood is then
        paced instead of refused as fast as it arrives (a refusal costs the node a fifth of
        an answer's CPU, and every one answered at once is sent again at once).  Every
        float returned must be paired with :meth:`release`, or with :meth:`refund` when the
        request never started (cancelled while it waited).  With a shared table the
        bucket, the order of the tokens and ``max_in_flight`` are the whole node's."""
        now = self._clock()
        want = limits or self._limits_for(peer)
        table = self.table
        with table.locked():
            self._limits[peer] = want
            row = table.read(peer)
            tokens, stamp, flight = (float(want.burst), now, 0) if row is None else row
            # a change of limits applies at once: the refill is capped at the new burst
            tokens = min(float(want.burst), tokens + max(0.0, now - stamp) * want.rate_per_s)
            if flight >= want.max_in_flight:
                table.write(peer, tokens, now, now=now)
                return None
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / want.rate_per_s
            if wait > max_wait_s:
                table.write(peer, tokens, now, now=now)
                return None
            if not table.write(peer, tokens - 1.0, now, now=now):
                return None  # no room for another peer's bucket: refused (logged there)
            table.take_flight(peer, 1)
            return wait

    def in_flight(self, peer: str) -> int:
        """``peer``'s requests admitted or waiting for their token now (every process's)."""
        with self.table.locked():
            row = self.table.read(peer)
            return 0 if row is None else row[2]

    def refund(self, peer: str) -> None:
        """Give back a slot and the token :meth:`reserve` promised, for a request that
        never started; the requests promised later tokens keep their turns."""
        table = self.table
        with table.locked():
            row = table.read(peer)
            limits = self._limits.get(peer)
            if row is None or limits is None or not table.take_flight(peer, -1):
                return
            table.write(peer, min(float(limits.burst), row[0] + 1.0), row[1], now=row[1])

    def release(self, peer: str) -> None:
        with self.table.locked():
            self.table.take_flight(peer, -1)


class PolicyLimits:
    """``limits_for`` backed by the policy, cached per (requester, UTC day, policy)."""

    def __init__(self, *, policy: PolicyEngine, responder: str,
                 clock_ms: Callable[[], int]) -> None:
        self._policy = policy
        self._responder = responder
        self._clock_ms = clock_ms
        self._cache: dict[tuple[str, int, str], PeerLimits] = {}
        self._lock = threading.Lock()

    def cached(self, peer: str) -> PeerLimits | None:
        with self._lock:
            return self._cache.get(self._key(peer))

    def evaluate(self, peer: str) -> PeerLimits:
        """Ask the policy (may block on an OPA server: call it off the event loop)."""
        now = self._clock_ms()
        doc = {"requester": {"node": peer}, "responder": {"node": self._responder},
               "time_ms": now}
        answer = self._policy.decide_query(RATE_QUERY, doc)
        limits = limits_from_policy(answer)
        if set(answer.get("reasons") or ()) & _FAILURES:
            return limits  # no decision (OPA down): tight now, asked again next request
        with self._lock:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[self._key(peer)] = limits
        return limits

    def _key(self, peer: str) -> tuple[str, int, str]:
        return peer, self._clock_ms() // 86_400_000, self._policy.digest


#: Refusals counted into one aggregated entry at most (32 bytes of digest each).
TALLY_MAX = 10_000


@dataclass(slots=True)
class _Tally:
    tls_peer: str
    first_ms: int
    last_ms: int
    digests: list[bytes] = field(default_factory=list)
    cancelled: bool = False


class OverLimitTally:
    """Over-limit refusals waiting for their aggregated audit entry (thread-safe).

    :meth:`add` is called on the event loop for each refused call (a SHA-256 of its bytes
    and a list append); :meth:`drain` hands back the entries to append; :meth:`restore`
    puts them back when their commit failed, so none is lost while the node runs.
    """

    def __init__(self, *, clock_ms: Callable[[], int], policy_digest: Callable[[], str],
                 max_per_entry: int = TALLY_MAX) -> None:
        if max_per_entry < 1:
            raise ValueError("max_per_entry must be >= 1")
        self._clock_ms = clock_ms
        self._policy_digest = policy_digest
        self._max = max_per_entry
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str, str, bool], _Tally] = {}
        self._full: list[tuple[str, str, _Tally]] = []
        self._restored: list[AuditRecord] = []

    def add(self, *, peer: str, event: str, tls_peer: str, raw: bytes,
            cancelled: bool = False) -> None:
        """Count one refused call; ``cancelled``: its peer gave up while it waited for its
        token (tallied apart: status CANCELLED, outcome ``cancelled``)."""
        digest = hashlib.sha256(raw).digest()
        now = self._clock_ms()
        key = (peer, event, tls_peer, cancelled)
        with self._lock:
            t = self._open.get(key)
            if t is None:
                t = self._open[key] = _Tally(tls_peer, now, now, cancelled=cancelled)
            t.last_ms = max(t.last_ms, now)
            t.digests.append(digest)
            if len(t.digests) >= self._max:
                self._full.append((peer, event, self._open.pop(key)))

    def pending(self) -> int:
        """How many refusals are not yet handed out for appending."""
        with self._lock:
            return (sum(len(t.digests) for t in self._open.values())
                    + sum(len(t.digests) for _, _, t in self._full)
                    + sum(int(r.facts["refused"]) for r in self._restored))

    def drain(self) -> list[AuditRecord]:
        """One audit record per (peer, event, TLS certificate) tally; the tallies emptied."""
        with self._lock:
            taken = [*self._full, *((p, e, t) for (p, e, _, _), t in self._open.items())]
            restored, self._restored = self._restored, []
            self._open, self._full = {}, []
        digest = self._policy_digest()
        return restored + [_record(p, e, t, digest) for p, e, t in taken]

    def restore(self, records: list[AuditRecord]) -> None:
        """Records :meth:`drain` gave out that could not be made durable: given out again."""
        with self._lock:
            self._restored = list(records) + self._restored


def _record(peer: str, event: str, t: _Tally, policy_digest: str) -> AuditRecord:
    refused = hashlib.sha256(b"".join(sorted(t.digests))).hexdigest()
    return AuditRecord(
        event=event, time_ms=t.last_ms, tls_peer=t.tls_peer, policy_digest=policy_digest,
        requester=peer, outcome="cancelled" if t.cancelled else "rejected",
        status="CANCELLED" if t.cancelled else "RESOURCE_EXHAUSTED",
        reason="rate_limited", reasons=("rate_limited",),
        facts={"aggregated": True, "refused": len(t.digests), "first_ms": t.first_ms,
               "last_ms": t.last_ms, "refused_sha256": refused})
