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

The gate decides which requests are in processing; :class:`FairBatches` (sans-I/O too)
decides the order their steps run in on the database thread (node/server/group_commit.py).
Steps are filed per peer as they arrive, and a batch takes them one per waiting peer in
turn, the peer with fewest waiting first (ties in order of arrival).  Once only one peer
has steps left and the batch holds others' already, it takes at most ``share`` of that
peer's after the others' last and stops, so the batch holding a modest peer's step commits
without waiting for the rest of a flooder's.  :meth:`FairBatches.yield_to` tells the
writer, between two steps, that a peer which arrived meanwhile would wait behind more than
``share`` of one peer's steps still to run: the writer then commits what has run and puts
the rest back, in order, at the front.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import Awaitable, Mapping
from typing import Generic, TypeVar

__all__ = ["DEFAULT_SLOTS", "MAX_SLOTS", "STEP_SHARE", "FairBatches", "FairGate", "FairQueue",
           "Pass"]

#: Requests in processing at once, all peers together (``[server] processing_slots``): a
#: request holds its slot from verification until its group-commit step has run.  16 keeps
#: a saturated node's batches as full as without the gate (benchmarks/README.md).
DEFAULT_SLOTS = 16
MAX_SLOTS = 4096

#: A batch's steps of one peer after the last of the others' (FairBatches): 2 keeps a
#: lone flooder's batches full and costs a modest peer's step at most two others' steps.
STEP_SHARE = 2

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


class FairBatches(Generic[T]):
    """Group-commit steps filed per peer; batches taken peer by peer.  No I/O, no clock,
    not thread-safe (the database thread alone uses it).

    :meth:`add` files a step under its peer; :meth:`take` makes the next batch;
    :meth:`yield_to` says whether a batch running should stop early for a peer that
    arrived while it ran; :meth:`put_back` returns its unrun steps to the front.
    """

    def __init__(self, share: int = STEP_SHARE) -> None:
        if share < 1:
            raise ValueError("share must be >= 1")
        self.share = share
        #: Peers with a step waiting, in order of arrival (a peer that empties leaves).
        self._waiting: OrderedDict[str, deque[T]] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def peers(self) -> list[str]:
        """The peers with a step waiting, in order of arrival."""
        return list(self._waiting)

    def add(self, peer: str, item: T) -> None:
        q = self._waiting.get(peer)
        if q is None:
            q = self._waiting[peer] = deque()
        q.append(item)
        self._count += 1

    def take(self, limit: int) -> list[tuple[str, T]]:
        """At most ``limit`` (peer, step) pairs: rounds of one step per waiting peer, the
        peer with fewest waiting first (ties in order of arrival); once one peer alone is
        left and the batch holds others' steps, at most ``share`` of its steps follow the
        others' last.  Each peer's steps keep their order."""
        if limit < 1:
            raise ValueError("limit must be >= 1")
        out: list[tuple[str, T]] = []
        mixed = False  # the batch holds steps of more than one peer
        while len(out) < limit and self._waiting:
            order = sorted(self._waiting, key=lambda p: len(self._waiting[p]))  # stable
            if len(order) == 1 and mixed:
                # the others' last was taken in the round before, with one of this peer's
                # after it: share - 1 more, then the batch is done
                for _ in range(min(self.share - 1, limit - len(out))):
                    if order[0] not in self._waiting:
                        break
                    out.append(self._pop(order[0]))
                break
            if len(order) == 1:  # one peer alone: its steps in order, up to the limit
                while len(out) < limit and order[0] in self._waiting:
                    out.append(self._pop(order[0]))
                break
            mixed = True
            for peer in order:
                if len(out) >= limit:
                    break
                out.append(self._pop(peer))
        return out

    def yield_to(self, remaining: Mapping[str, int]) -> bool:
        """Between two steps of a batch: True if a peer with a step waiting here, and none
        among ``remaining`` (the batch's unrun steps per peer), would wait behind more than
        ``share`` steps of one peer."""
        if not self._waiting or max(remaining.values(), default=0) <= self.share:
            return False
        return any(not remaining.get(peer) for peer in self._waiting)

    def put_back(self, items: list[tuple[str, T]]) -> None:
        """Unrun (peer, step) pairs, in the order they were taken, back at the front:
        their peers first in the order of arrival, each step ahead of the peer's later
        ones."""
        for peer, item in reversed(items):
            q = self._waiting.get(peer)
            if q is None:
                q = self._waiting[peer] = deque()
            q.appendleft(item)
            self._count += 1
        seen: list[str] = []
        for peer, _ in items:
            if peer not in seen:
                seen.append(peer)
        for peer in reversed(seen):
            self._waiting.move_to_end(peer, last=False)

    def _pop(self, peer: str) -> tuple[str, T]:
        q = self._waiting[peer]
        item = q.popleft()
        self._count -= 1
        if not q:
            del self._waiting[peer]
        return peer, item


class Pass:
    """One request's slot: :meth:`release` gives it back, once (idempotent, on the loop)."""

    __slots__ = ("_gate", "_peer")

    def __init__(self, gate: FairGate, peer: str) -> None:
        self._gate: FairGate | None = gate
        self._peer = peer

    @property
    def peer(self) -> str:
        """The peer (its limits' bucket) this slot is held for."""
        return self._peer

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
