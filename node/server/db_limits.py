"""A peer's tokens kept in the database its replicas share (PostgreSQL).

:class:`node.server.limits.PeerLimiter` decides on this process's (or this machine's)
buckets.  Replicas of one node on several machines would each admit a peer its whole
agreement, so on PostgreSQL a call the local buckets admit also takes a token from the
peer's row in ``peer_buckets`` (node/store/peer_buckets.py: refill, check and take in one
statement).  A call is admitted only if both give it a token, and waits for the later of
the two promises; refused by the shared bucket, it gives its local slot and token back and
is refused ``rate_limited`` like any call over its limit.

What it costs, and how a flood is kept off the database.  A statement may grant this
replica a *lease*: up to :func:`lease_size` tokens that exist now (a tenth of the burst, at
most a tenth of a second of the rate), which its next calls spend without asking; a lease
not spent within :data:`LEASE_S` is dropped (its tokens are not given back: a replica never
holds tokens another could have used for long).  So a peer within its agreement costs one
statement per lease, and never more than its agreement is admitted: every token spent was
granted by the shared row.  (What a lease can cost is the other way: while replica A holds
tokens of a lease, replica B may be refused them, at most ``lease_size - 1`` per replica
for at most :data:`LEASE_S`.)  Once the row has no whole token left, each call asks for one
token of its own, promised ahead as locally (paced); the statements run on a connection and
a thread of their own (never the group commit's), and none for the calls the local bucket
already refuses.  After the shared bucket refuses a peer, its calls are refused here
without asking again until its next token can be promised (``1 / rate``, at most a second),
so a peer flooding two replicas costs the database about ``rate`` statements a second per
replica, not one per call.

If the statement fails (the database down or slow), the call is decided on the local
buckets alone and ``shared_limits_unavailable`` is logged (at most once a minute): the
agreement then holds per replica, as it did before the rows existed, and nothing is
answered anyway without the database the audit log is in.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from node.server.limits import PeerLimits
from node.store.peer_buckets import REFUND, TAKE, bucket_key

__all__ = ["LEASE_S", "DbTokens", "SharedTokensUnavailable", "lease_size"]

log = structlog.get_logger("bxnode.server.limits")

#: The longest a refused peer's calls are refused here without asking the database again.
MAX_DENY_S = 1.0
#: How long a replica may spend the tokens of a lease.
LEASE_S = 1.0
_LOG_EVERY_S = 60.0


class SharedTokensUnavailable(Exception):
    """The shared bucket could not be asked: decide on the local buckets alone."""


@dataclass(slots=True)
class _Lease:
    limits: PeerLimits
    tokens: float
    until: float


def lease_size(limits: PeerLimits) -> int:
    """Tokens one statement may grant a replica: a tenth of the burst, and at most a tenth
    of a second of the rate (1: every call asks, for a small agreement)."""
    return max(1, min(limits.burst // 10, math.ceil(limits.rate_per_s * 0.1)))


class DbTokens:
    """Take and give back tokens of the shared buckets, on a thread of its own.

    ``connect`` opens the connection (``PgPool.side_connection``); it is opened again after
    a failure.  ``clock`` is wall-clock seconds, the same on every replica to within their
    clocks' agreement (injected in tests)."""

    def __init__(self, *, connect: Callable[[], Any], clock: Callable[[], float] = time.time
                 ) -> None:
        self._connect = connect
        self._clock = clock
        self._conn: Any = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="bxnode-limits")
        #: bucket -> clock time until which its calls are refused without asking.
        self._denied: dict[str, float] = {}
        #: bucket -> this replica's lease: tokens granted and not yet spent.
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()
        self._logged = 0.0
        #: Statements sent (tests and benchmarks count them).
        self.statements = 0

    async def take(self, bucket: str, limits: PeerLimits, *, max_wait_s: float
                   ) -> float | None:
        """Seconds until the shared bucket's token for this call exists (0.0: now), or
        None: refused.  Raises :class:`SharedTokensUnavailable` when it cannot be asked.
        A caller cancelled while the statement runs gets its token given back."""
        now = self._clock()
        with self._lock:
            lease = self._leases.get(bucket)
            if lease is not None:
                if lease.limits == limits and now < lease.until and lease.tokens >= 1:
                    lease.tokens -= 1
                    return 0.0
                del self._leases[bucket]
            until = self._denied.get(bucket)
            if until is not None:
                if now < until:
                    return None
                del self._denied[bucket]
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool, self._take, bucket, limits, max_wait_s, now)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            def give_back(f: asyncio.Future[float | None]) -> None:
                if not f.cancelled() and f.exception() is None and f.result() is not None:
                    self.refund_soon(bucket, limits)

            fut.add_done_callback(give_back)
            raise

    def refund_soon(self, bucket: str, limits: PeerLimits) -> None:
        """Give back the token :meth:`take` gave, for a call that never started (without
        waiting: from a cancelled call's cleanup): into this replica's lease while it
        holds one, else to the shared row."""
        with self._lock:
            lease = self._leases.get(bucket)
            if lease is not None and lease.limits == limits and self._clock() < lease.until:
                lease.tokens += 1
                return
        self._pool.submit(self._refund, bucket, limits)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # --- on the limits thread ------------------------------------------------------------

    def _take(self, bucket: str, limits: PeerLimits, max_wait_s: float, now: float
              ) -> float | None:
        rate = limits.rate_per_s
        row = self._run(TAKE, {"bucket": bucket_key(bucket), "burst": float(limits.burst),
                               "now": now, "rate": rate, "floor": -rate * max_wait_s,
                               "lease": float(lease_size(limits))})
        if row is None:
            with self._lock:
                self._denied[bucket] = now + min(MAX_DENY_S, 1.0 / rate)
            return None
        granted, left = int(row[0]), float(row[1])
        if left < 0.0:  # one token promised ahead: this call waits for it
            return -left / rate
        if granted > 1:  # the rest for this replica's next calls, for a while
            with self._lock:
                self._leases[bucket] = _Lease(limits, float(granted - 1), now + LEASE_S)
        return 0.0

    def _refund(self, bucket: str, limits: PeerLimits) -> None:
        try:
            self._run(REFUND, {"bucket": bucket_key(bucket), "burst": float(limits.burst)})
        except SharedTokensUnavailable:
            pass  # logged; the token refills with time

    def _run(self, sql: str, args: dict[str, Any]) -> tuple[Any, ...] | None:
        try:
            if self._conn is None:
                self._conn = self._connect()
            self.statements += 1
            cur = self._conn.execute(sql, args)
            return cur.fetchone() if cur.description is not None else None
        except Exception as exc:  # psycopg's, the socket's, connect's (EnvironmentFault)
            self._drop()
            self._warn(exc)
            raise SharedTokensUnavailable(type(exc).__name__) from None

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def _warn(self, exc: BaseException) -> None:
        mono = time.monotonic()
        if self._logged and mono - self._logged < _LOG_EVERY_S:
            return
        self._logged = mono
        log.warning("shared_limits_unavailable", error_type=type(exc).__name__,
                    decided_on="this replica's buckets")
