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

Calls in flight.  A peer's ``max_in_flight`` is the node's as well: each replica *leases*
slots of it from ``peer_slots`` (one row per bucket and replica: the slots leased, and
when the lease expires), and a call the local buckets admit also takes one of this
replica's leased slots (:meth:`DbTokens.take_slot`), given back when the call ends however
it ends (:meth:`DbTokens.release_slot`, from the edge's ``finally``).  A call within the
lease costs no statement; one past it asks for a chunk more (:func:`slot_chunk`: a tenth of
``max_in_flight``), granted under the bucket's advisory lock up to what the other
replicas' live leases leave, so all replicas together never lease more than
``max_in_flight``.  Refused, the call gives its local slot and token back and is refused
``rate_limited`` like a call over this replica's own ``max_in_flight``; then the peer's
calls here are refused without asking again for :data:`SLOTS_DENY_S`, unless one of its
calls here ends first.  A lease holding more than two chunks above its calls gives the
surplus back down to one chunk (hysteresis: a peer going up and down by a call costs no
statement each time).  A lease lasts :data:`SLOTS_LEASE_S` (10 s) and is renewed every
:data:`SLOTS_RENEW_S` while in use (:meth:`DbTokens.keep_slots`, a background job of the
server; a call finding its lease in its last half renews it too); an idle lease is given
back at the next renewal, and all of them when the replica stops.  A replica killed holds
its slots until its leases expire.  (What a lease can cost: slots one replica leases and
does not use, at most two chunks, until the next renewal for an idle lease, are refused to
the others meanwhile.)  The expiry is read on each replica's wall clock, like
the buckets' stamps: clocks that disagree by more than ``SLOTS_LEASE_S - SLOTS_RENEW_S``
(8 s) would count a live lease expired.  A lease whose renewal came too late (the loop
stalled past its expiry) is not renewed but granted again before its slots are used.

If the statement fails (the database down or slow), the call is decided on the local
buckets alone and ``shared_limits_unavailable`` is logged (at most once a minute): the
agreement then holds per replica, as it did before the rows existed, and nothing is
answered anyway without the database the audit log is in.  For :data:`RETRY_AFTER_S`
after a failure nothing is asked: every statement waits its turn on the one limits
thread, and a database host that does not answer costs each connection attempt its
timeout (up to 5 s), so without the pause the calls of every peer would queue behind
them instead of being decided at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from node.server.limits import PeerLimits
from node.store.peer_buckets import (
    FORGET_SLOTS,
    GRANT_SLOTS,
    LOCK_SLOTS,
    REFUND,
    RENEW_SLOTS,
    SHRINK_SLOTS,
    TAKE,
    bucket_key,
    slots_lock_key,
)

__all__ = ["LEASE_S", "RETRY_AFTER_S", "SLOTS_LEASE_S", "SLOTS_RENEW_S", "DbTokens",
           "SharedTokensUnavailable", "lease_size", "slot_chunk"]

log = structlog.get_logger("bxnode.server.limits")

#: The longest a refused peer's calls are refused here without asking the database again.
MAX_DENY_S = 1.0
#: How long a replica may spend the tokens of a lease.
LEASE_S = 1.0
#: How long a lease of calls in flight lasts unless renewed: a replica that stopped without
#: giving its slots back (killed, cut off) holds them no longer than this.
SLOTS_LEASE_S = 10.0
#: How often :meth:`DbTokens.keep_slots` renews the leases in use and gives idle ones back.
SLOTS_RENEW_S = 2.0
#: The longest a peer refused a slot here is refused without asking the database again
#: (unless one of its calls here ends first).
SLOTS_DENY_S = 0.1
_LOG_EVERY_S = 60.0
#: After the database could not be asked, how long calls are decided on this replica's
#: buckets without asking it again.
RETRY_AFTER_S = 1.0


class SharedTokensUnavailable(Exception):
    """The shared bucket could not be asked: decide on the local buckets alone."""


@dataclass(slots=True)
class _Lease:
    limits: PeerLimits
    tokens: float
    until: float


@dataclass(slots=True)
class _Slots:
    """This replica's lease of one bucket's calls in flight."""

    max_in_flight: int  # the limit it was granted under
    slots: int = 0  # granted, never more than the row holds
    held: int = 0  # this replica's calls holding one (may exceed ``slots``: see _grant)
    until: float = 0.0  # when the row expires unless renewed
    used: bool = False  # a slot taken since the last renewal
    denied: float = 0.0  # refused without asking until then
    shrinking: bool = False  # a give-back queued


def slot_chunk(max_in_flight: int) -> int:
    """Slots one statement adds to a replica's lease: a tenth of ``max_in_flight``."""
    return max(1, math.ceil(max_in_flight / 10))


def lease_size(limits: PeerLimits) -> int:
    """Tokens one statement may grant a replica: a tenth of the burst, and at most a tenth
    of a second of the rate (1: every call asks, for a small agreement)."""
    return max(1, min(limits.burst // 10, math.ceil(limits.rate_per_s * 0.1)))


class DbTokens:
    """Take and give back tokens and slots of the shared buckets, on a thread of its own.

    ``connect`` opens the connection (``PgPool.side_connection``); it is opened again after
    a failure.  ``clock`` is wall-clock seconds, the same on every replica to within their
    clocks' agreement (injected in tests).  ``replica``: this process's name in
    ``peer_slots`` (random unless given; every worker of ``serve --workers`` is a replica
    of its own there)."""

    def __init__(self, *, connect: Callable[[], Any], clock: Callable[[], float] = time.time,
                 replica: str | None = None) -> None:
        self._connect = connect
        self._clock = clock
        #: This replica's name in ``peer_slots`` (random: one per process, never reused).
        self.replica = replica or secrets.token_hex(8)
        #: bucket -> this replica's lease of its calls in flight.
        self._slots: dict[str, _Slots] = {}
        self._conn: Any = None
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="bxnode-limits")
        #: bucket -> clock time until which its calls are refused without asking.
        self._denied: dict[str, float] = {}
        #: bucket -> this replica's lease: tokens granted and not yet spent.
        self._leases: dict[str, _Lease] = {}
        self._lock = threading.Lock()
        self._logged = 0.0
        #: Clock time before which nothing is asked (the database just failed).
        self._retry_at = 0.0
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

    # --- calls in flight -----------------------------------------------------------------

    async def take_slot(self, bucket: str, limits: PeerLimits) -> bool:
        """One of ``bucket``'s ``max_in_flight`` slots for this call (True), or False: every
        slot is this replica's calls' or leased to others.  Raises
        :class:`SharedTokensUnavailable` when the database cannot be asked.  Every True
        must be paired with :meth:`release_slot` once the call is done; a caller cancelled
        while the statement runs gets the slot released for it."""
        now = self._clock()
        with self._lock:
            lease = self._slots.get(bucket)
            if lease is not None and lease.max_in_flight == limits.max_in_flight:
                if self._within(lease, now):
                    lease.held += 1
                    lease.used = True
                    return True
                if now < lease.denied and lease.held >= lease.slots:
                    return False
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._pool, self._grant, bucket, limits, now)
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            def give_back(f: asyncio.Future[bool]) -> None:
                if not f.cancelled() and f.exception() is None and f.result():
                    self.release_slot(bucket)

            fut.add_done_callback(give_back)
            raise

    def release_slot(self, bucket: str) -> None:
        """The slot :meth:`take_slot` gave, back into this replica's lease (no statement);
        once the lease holds more than two chunks above its calls, the surplus down to one
        chunk goes back to the row."""
        with self._lock:
            lease = self._slots.get(bucket)
            if lease is None or lease.held == 0:
                return
            lease.held -= 1
            if lease.shrinking or lease.slots - lease.held <= 2 * slot_chunk(
                    lease.max_in_flight):
                return
            lease.shrinking = True
        self._pool.submit(self._shrink, bucket)

    def slots_held(self, bucket: str) -> tuple[int, int]:
        """(this replica's calls holding a slot of ``bucket``, the slots it leases)."""
        with self._lock:
            lease = self._slots.get(bucket)
            return (0, 0) if lease is None else (lease.held, lease.slots)

    async def keep_slots(self) -> None:
        """A background job of the server: :meth:`renew_slots` every
        :data:`SLOTS_RENEW_S`, on the limits thread."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(SLOTS_RENEW_S)
            await loop.run_in_executor(self._pool, self.renew_slots)

    def renew_slots(self) -> None:
        """Renew the leases in use (a call holds a slot, or took one since the last
        renewal) and give the idle ones back: one statement each, for every bucket.  Runs
        on the limits thread (:meth:`keep_slots`; tests call it directly)."""
        now = self._clock()
        with self._lock:
            idle = [b for b, lease in self._slots.items() if not lease.held and not lease.used]
            for b in idle:
                del self._slots[b]
            busy = [b for b, lease in self._slots.items() if now < lease.until]
            for b in busy:
                self._slots[b].used = False
        if idle:
            self._forget(idle)
        if not busy:
            return
        try:
            rows = self._run(RENEW_SLOTS, {
                "replica": self.replica, "buckets": [bucket_key(b) for b in busy],
                "now": now, "expires": now + SLOTS_LEASE_S}, many=True)
        except SharedTokensUnavailable:
            return  # logged; a lease near its end is granted again before it is used
        renewed = {str(r[0]) for r in rows or ()}
        with self._lock:
            for b in busy:
                lease = self._slots.get(b)
                if lease is not None:  # not renewed (expired): granted again when used
                    lease.until = now + SLOTS_LEASE_S if bucket_key(b) in renewed else 0.0

    @staticmethod
    def _within(lease: _Slots, now: float) -> bool:
        """A free slot of a lease far enough from its end to use without a statement."""
        return lease.held < lease.slots and now < lease.until - SLOTS_LEASE_S / 2

    def close(self) -> None:
        """Send what is queued, give this replica's slots back, close the connection."""
        with self._lock:
            leased = bool(self._slots)
        if leased:
            self._pool.submit(self._forget, None)
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

    def _grant(self, bucket: str, limits: PeerLimits, now: float) -> bool:
        """Grow (or renew) this replica's lease under the bucket's advisory lock: as many
        slots as it holds plus one chunk, or as the other replicas' live leases leave
        (GRANT_SLOTS).  A lease granted fewer slots than its calls hold keeps them (they
        are under way) and takes no more until they end."""
        with self._lock:
            lease = self._slots.get(bucket)
            if lease is None:
                lease = self._slots[bucket] = _Slots(limits.max_in_flight)
            if lease.max_in_flight == limits.max_in_flight:
                if self._within(lease, now):  # granted while this call waited its turn
                    lease.held += 1
                    lease.used = True
                    return True
                if now < lease.denied and lease.held >= lease.slots:
                    return False
            renew = lease.held < lease.slots and lease.max_in_flight == limits.max_in_flight
            want = lease.slots if renew else lease.held + slot_chunk(limits.max_in_flight)
        row = self._run(GRANT_SLOTS, {
            "bucket": bucket_key(bucket), "replica": self.replica, "now": now,
            "want": want, "max": limits.max_in_flight, "expires": now + SLOTS_LEASE_S},
            lock=slots_lock_key(bucket_key(bucket)))
        assert row is not None
        with self._lock:
            lease = self._slots.setdefault(bucket, lease)
            lease.max_in_flight = limits.max_in_flight
            lease.slots, lease.until = int(row[0]), now + SLOTS_LEASE_S
            if lease.held < lease.slots:
                lease.held += 1
                lease.used = True
                return True
            lease.denied = now + SLOTS_DENY_S
            return False

    def _shrink(self, bucket: str) -> None:
        """Give back a lease's surplus down to one chunk above its calls (the lease first,
        then the row: the row never holds fewer slots than the lease)."""
        with self._lock:
            lease = self._slots.get(bucket)
            if lease is None:
                return
            lease.shrinking = False
            keep = lease.held + slot_chunk(lease.max_in_flight)
            if lease.slots <= keep:
                return
            lease.slots = keep
        try:
            self._run(SHRINK_SLOTS, {"bucket": bucket_key(bucket), "replica": self.replica,
                                     "slots": keep})
        except SharedTokensUnavailable:
            pass  # logged; the row expires, or the next grant sets it

    def _forget(self, buckets: list[str] | None) -> None:
        """Give back this replica's leases of ``buckets`` (None: every one)."""
        if buckets is None:
            with self._lock:
                self._slots.clear()
        try:
            self._run(FORGET_SLOTS, {"replica": self.replica, "buckets": None if buckets is None
                                     else [bucket_key(b) for b in buckets]})
        except SharedTokensUnavailable:
            pass  # logged; the rows expire

    def _run(self, sql: str, args: dict[str, Any], *, lock: int | None = None,
             many: bool = False) -> Any:
        """One statement (after :data:`LOCK_SLOTS` on ``lock`` in the same transaction,
        when given): its first row, or every row (``many``), or None."""
        if self._clock() < self._retry_at:
            raise SharedTokensUnavailable("not asked: the database failed just now")
        try:
            if self._conn is None:
                self._conn = self._connect()
            self.statements += 1
            conn = self._conn
            with conn.transaction() if lock is not None else contextlib.nullcontext():
                if lock is not None:
                    conn.execute(LOCK_SLOTS, {"lock": lock})
                cur = conn.execute(sql, args)
                if cur.description is None:
                    return None
                return cur.fetchall() if many else cur.fetchone()
        except Exception as exc:  # psycopg's, the socket's, connect's (EnvironmentFault)
            self._drop()
            self._retry_at = self._clock() + RETRY_AFTER_S
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
