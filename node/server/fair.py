"""Fair admission of the requests a peer's limits let in: a free slot goes to the peer
holding fewest.

The rate limit (node/server/limits.py) bounds what each peer may *send*; it does not say in
which order the node *works* on what it let in.  Past the limit every stage is first in,
first out -- the event loop verifying, the policy threads deciding, the database thread's
group-commit batches -- so a peer that spends its whole burst at once (100 requests within
a few milliseconds) puts all of them ahead of a modest peer's next request, which then
waits for every one of them to be verified, decided, run and committed.

:class:`FairQueue` (sans-I/O) caps the admitted requests in processing at once (``slots``,
``[server] processing_slots``: a request holds one from before its verification until its
step in the group commit has run -- the wait for that batch's fsync costs no one anything)
and, while the cap is reached, keeps one queue per peer.  Each freed slot goes to the
waiting peer that holds the fewest slots now (ties in turn, round robin), so a quiet peer's
request is the next to start however many another peer has waiting, and peers that all
wait share the slots evenly.  Work-conserving: while a slot is free a request takes it at
once, so one busy peer alone gets every slot.  A peer's queue is bounded by its
``max_in_flight`` (a waiting request holds its limiter slot), so the gate holds at most the
sum of those.

:class:`FairGate` is the asyncio face: ``turn = await enter(peer)`` before verification and
``turn.release()`` once the request's step ran (and in a ``finally``; it is idempotent);
``await turn.aside(work)`` holds no slot while ``work`` runs (a decision asked of a policy
server: a slow one holds a policy thread, never the gate).  A call cancelled while it
waits leaves the queue; one cancelled just after its slot was granted gives the slot back.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Awaitable
from typing import Generic, TypeVar

__all__ = ["DEFAULT_SLOTS", "MAX_SLOTS", "FairGate", "FairQueue", "Pass"]

#: Requests in processing at once, all peers together (``[server] processing_slots``): a
#: request holds its slot from verification until its group-commit step has run.  16 keeps
#: a saturated node's batches as full as without the gate (benchmarks/README.md).
DEFAULT_SLOTS = 16
MAX_SLOTS = 4096

T = TypeVar("T")


class FairQueue(Generic[T]):
    """Slots and per-peer queues; no I/O, no clock, not thread-safe (one event loop).

    :meth:`arrive` either takes a free slot at once (True) or queues ``ticket`` under its
    peer (False); :meth:`leave` frees one of the peer's slots; :meth:`grant` hands a free
    slot to a waiting ticket: of the peer holding the fewest slots now, the peers tied on
    that in turn (the one served goes to the back); :meth:`cancel` takes a waiting ticket
    out.  So a peer that asks little is served as soon as a slot frees, however many
    requests another peer has waiting, and peers that all wait share the slots evenly.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self.slots = slots
        self.busy = 0
        #: Slots each peer holds now (peers holding none are left out).
        self._held: dict[str, int] = {}
        #: Peers with a request waiting, in the order they get their next turn.
        self._waiting: OrderedDict[str, deque[T]] = OrderedDict()
        self._queued = 0

    @property
    def queued(self) -> int:
        return self._queued

    def held(self, peer: str) -> int:
        return self._held.get(peer, 0)

    def arrive(self, peer: str, ticket: T) -> bool:
        """True: ``ticket`` holds a slot now.  False: it waits (a request never takes a free
        slot while others wait for one)."""
        if self.busy < self.slots and not self._queued:
            self._take(peer)
            return True
        q = self._waiting.get(peer)
        if q is None:
            q = self._waiting[peer] = deque()
        q.append(ticket)
        self._queued += 1
        return False

    def leave(self, peer: str) -> None:
        """One of ``peer``'s requests in processing is done: its slot is free."""
        n = self._held.get(peer, 0)
        if n <= 0:
            raise RuntimeError(f"leave() without a slot for {peer!r}")
        if n == 1:
            del self._held[peer]
        else:
            self._held[peer] = n - 1
        self.busy -= 1

    def grant(self) -> tuple[str, T] | None:
        """The next waiting (peer, ticket), now holding a slot; None while no slot is free
        or nobody waits."""
        if self.busy >= self.slots or not self._waiting:
            return None
        peer = min(self._waiting, key=self.held)  # the first of the least served, in turn
        q = self._waiting[peer]
        ticket = q.popleft()
        self._queued -= 1
        if q:
            self._waiting.move_to_end(peer)
        else:
            del self._waiting[peer]
        self._take(peer)
        return peer, ticket

    def cancel(self, peer: str, ticket: T) -> bool:
        """Take a waiting ``ticket`` out; False if it is not waiting (granted already)."""
        q = self._waiting.get(peer)
        if q is None:
            return False
        try:
            q.remove(ticket)
        except ValueError:
            return False
        self._queued -= 1
        if not q:
            del self._waiting[peer]
        return True

    def _take(self, peer: str) -> None:
        self._held[peer] = self._held.get(peer, 0) + 1
        self.busy += 1


class Pass:
    """One request's slot: :meth:`release` gives it back, once (idempotent, on the loop)."""

    __slots__ = ("_gate", "_peer")

    def __init__(self, gate: FairGate, peer: str) -> None:
        self._gate: FairGate | None = gate
        self._peer = peer

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate._leave(self._peer)

    async def aside(self, work: Awaitable[T]) -> T:
        """Await ``work`` holding no slot (a wait that costs the node nothing: a policy
        server's answer), then wait for a slot again, peer by peer like any arrival."""
        gate = self._gate
        self.release()
        result = await work
        if gate is not None:
            await gate._wait(self._peer)
            self._gate = gate
        return result


class FairGate:
    """:class:`FairQueue` on one event loop: a waiting request holds a future."""

    def __init__(self, slots: int = DEFAULT_SLOTS) -> None:
        self._q: FairQueue[asyncio.Future[None]] = FairQueue(slots)

    @property
    def slots(self) -> int:
        return self._q.slots

    @property
    def busy(self) -> int:
        return self._q.busy

    @property
    def queued(self) -> int:
        return self._q.queued

    async def enter(self, peer: str) -> Pass:
        """Wait for a slot (at once while one is free); release the pass in a finally."""
        await self._wait(peer)
        return Pass(self, peer)

    async def _wait(self, peer: str) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._q.arrive(peer, fut):
            return
        try:
            await fut
        except asyncio.CancelledError:
            # still queued: out of the queue.  Granted (its result set) but cancelled
            # before it ran: the slot goes back.  Cancelled while queued and granted
            # afterwards: _leave gave the slot back already.
            if not self._q.cancel(peer, fut) and not fut.cancelled():
                self._leave(peer)
            raise

    def _leave(self, peer: str) -> None:
        self._q.leave(peer)
        while (granted := self._q.grant()) is not None:
            who, fut = granted
            if fut.done():  # cancelled while it waited: the slot is not taken
                self._q.leave(who)
                continue
            fut.set_result(None)
