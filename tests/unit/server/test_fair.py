"""node/server/fair.py: admitted requests in processing at once, handed out fairly.

Sans-I/O (FairQueue): the cap holds, a quiet peer's request is granted before a flooder's
queued ones, peers that all wait share the slots, every request is granted or cancelled
exactly once and never stranded while a slot is free.  Then the asyncio gate: cancelled
calls free their slot, whether they were waiting or had just been granted one.
(``[server] processing_slots`` in node.toml: tests/unit/test_config_schema.py.)  Then the
group-commit batches (FairBatches): one step per peer in turn, fewest waiting first, a lone
flooder's tail bounded once the others' steps are in, a running batch yielding to a peer
that arrives behind a flooder's, and no step ever lost, doubled or run out of its peer's
order.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.server.fair import FairBatches, FairGate, FairQueue
from tests.waiting import turns_until


def _grant_all(q: FairQueue[str]) -> list[tuple[str, str]]:
    out = []
    while (g := q.grant()) is not None:
        out.append(g)
    return out


def test_one_busy_peer_alone_gets_every_slot_at_once_and_no_more() -> None:
    q: FairQueue[str] = FairQueue(4)
    assert [q.arrive("UZB", f"u{i}") for i in range(6)] == [True] * 4 + [False] * 2
    assert (q.busy, q.queued, q.held("UZB")) == (4, 2, 4)
    assert q.grant() is None  # the cap holds
    q.leave("UZB")
    assert q.grant() == ("UZB", "u4") and q.grant() is None
    assert (q.busy, q.queued) == (4, 1)


def test_a_quiet_peer_is_granted_the_next_slot_ahead_of_the_flooders_queue() -> None:
    q: FairQueue[str] = FairQueue(4)
    for i in range(64):  # the flooder's whole burst: 4 in processing, 60 waiting
        q.arrive("UZB", f"u{i}")
    assert not q.arrive("KGZ", "k0")  # nobody overtakes while others wait for a slot
    q.leave("UZB")
    assert _grant_all(q) == [("KGZ", "k0")]
    assert not q.arrive("KGZ", "k1")
    q.leave("UZB")
    assert _grant_all(q) == [("KGZ", "k1")]  # still first: it holds 1 slot, UZB 3
    q.leave("UZB")
    q.leave("UZB")
    assert _grant_all(q) == [("UZB", "u4"), ("UZB", "u5")]  # in the order they came


def test_peers_that_all_wait_share_the_slots_in_turn() -> None:
    q: FairQueue[str] = FairQueue(3)
    for i in range(3):
        q.arrive("UZB", f"u{i}")
    for peer in ("KGZ", "TJK"):
        for i in range(5):
            q.arrive(peer, f"{peer[0].lower()}{i}")
    served = []
    for _ in range(9):  # each grant goes to the peer holding fewest, ties in turn
        held = {p: q.held(p) for p in ("UZB", "KGZ", "TJK")}
        q.leave(max(held, key=lambda p: held[p]))
        served += _grant_all(q)
    assert [p for p, _ in served] == ["KGZ", "TJK", "KGZ", "TJK", "KGZ", "TJK", "KGZ",
                                      "TJK", "KGZ"]
    assert q.busy == 3


def test_cancel_takes_a_waiting_ticket_out_and_nothing_else() -> None:
    q: FairQueue[str] = FairQueue(1)
    assert q.arrive("UZB", "u0")
    assert not q.arrive("UZB", "u1") and not q.arrive("KGZ", "k0")
    assert q.cancel("KGZ", "k0") and not q.cancel("KGZ", "k0")
    assert not q.cancel("UZB", "u0")  # granted: not waiting, leave() gives its slot back
    assert q.queued == 1
    q.leave("UZB")
    assert _grant_all(q) == [("UZB", "u1")]
    with pytest.raises(RuntimeError):
        q.leave("KGZ")
    with pytest.raises(ValueError):
        FairQueue(0)


_OPS = st.lists(st.tuples(st.sampled_from(["arrive", "leave", "cancel"]),
                          st.sampled_from(["UZB", "KGZ", "TJK"]), st.integers(0, 40)),
                max_size=300)


@settings(max_examples=300, deadline=None)
@given(slots=st.integers(1, 6), ops=_OPS)
def test_the_gate_never_exceeds_its_cap_never_loses_a_request_and_never_stalls(
        slots: int, ops: list[tuple[str, str, int]]) -> None:
    """Any interleaving of arrivals, completions and cancellations, granting whatever can be
    granted after each: every request ends granted once or cancelled once, each peer's in
    the order they came, and no request waits while a slot is free."""
    q: FairQueue[str] = FairQueue(slots)
    waiting: dict[str, list[str]] = {"UZB": [], "KGZ": [], "TJK": []}
    running: dict[str, list[str]] = {"UZB": [], "KGZ": [], "TJK": []}
    granted: list[str] = []
    cancelled: list[str] = []
    n = 0
    for op, peer, k in ops:
        if op == "arrive":
            t = f"{peer}-{n}"
            n += 1
            if q.arrive(peer, t):
                running[peer].append(t)
                granted.append(t)
            else:
                waiting[peer].append(t)
        elif op == "leave" and running[peer]:
            running[peer].pop(k % len(running[peer]))
            q.leave(peer)
        elif op == "cancel" and waiting[peer]:
            t = waiting[peer].pop(k % len(waiting[peer]))
            assert q.cancel(peer, t)
            cancelled.append(t)
        for who, t in _grant_all(q):
            assert waiting[who][0] == t  # first come, first granted within a peer
            waiting[who].pop(0)
            running[who].append(t)
            granted.append(t)
        busy = sum(len(v) for v in running.values())
        assert q.busy == busy <= slots
        assert q.queued == sum(len(v) for v in waiting.values())
        assert busy == slots or q.queued == 0  # work-conserving: nobody stranded
        for p in running:
            assert q.held(p) == len(running[p])
    assert len(granted) == len(set(granted)) and not set(granted) & set(cancelled)
    assert len(granted) + len(cancelled) + q.queued == n


def test_async_gate_serves_the_quiet_peer_first_and_cancelled_calls_free_their_slot() -> None:
    async def scenario() -> None:
        gate = FairGate(2)
        order: list[str] = []

        async def request(peer: str, name: str, done: asyncio.Event) -> None:
            turn = await gate.enter(peer)
            try:
                order.append(name)
                await done.wait()
            finally:
                turn.release()
                turn.release()  # idempotent: a slot is given back once

        hold = asyncio.Event()
        flood = [asyncio.ensure_future(request("UZB", f"u{i}", hold)) for i in range(10)]
        await turns_until("the flood at the gate", lambda: gate.queued == 8)
        assert (gate.busy, gate.queued, order) == (2, 8, ["u0", "u1"])
        # a call cancelled while it waits leaves the queue
        flood[5].cancel()
        await turns_until("the cancelled call gone", lambda: flood[5].done())
        assert gate.queued == 7
        quiet = asyncio.ensure_future(request("KGZ", "k0", asyncio.Event()))
        await turns_until("KGZ-BS at the gate", lambda: gate.queued != 7)
        assert gate.queued == 8
        flood[0].cancel()  # in processing: its finally releases the slot, KGZ gets it
        await turns_until("the freed slot taken", lambda: flood[0].done() and len(order) == 3)
        assert order == ["u0", "u1", "k0"] and gate.busy == 2
        quiet.cancel()
        # granted but cancelled before it ran: the slot still comes back
        await turns_until("the quiet call cancelled", lambda: quiet.done())
        hold.set()
        await asyncio.gather(*flood, return_exceptions=True)
        assert order == ["u0", "u1", "k0", "u2", "u3", "u4", "u6", "u7", "u8", "u9"]
        assert (gate.busy, gate.queued) == (0, 0)

    asyncio.run(scenario())


def test_async_gate_a_call_cancelled_after_its_slot_was_granted_gives_it_back() -> None:
    async def scenario() -> None:
        gate = FairGate(1)
        first = await gate.enter("UZB")
        waiter = asyncio.ensure_future(gate.enter("KGZ"))
        await turns_until("the waiter at the gate", lambda: gate.queued == 1)
        assert gate.queued == 1
        first.release()  # the slot is granted to the waiter ...
        waiter.cancel()  # ... which is cancelled before it runs
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (gate.busy, gate.queued) == (0, 0)
        again = await asyncio.wait_for(gate.enter("UZB"), 1)  # nothing stranded
        assert gate.busy == 1
        again.release()
        # cancelled while waiting, then the slot frees: not granted to a dead call
        first = await gate.enter("UZB")
        waiter = asyncio.ensure_future(gate.enter("KGZ"))
        await turns_until("the waiter at the gate", lambda: gate.queued == 1)
        waiter.cancel()
        first.release()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert (gate.busy, gate.queued) == (0, 0)

    asyncio.run(scenario())



def test_async_gate_a_request_set_aside_holds_no_slot_and_waits_its_turn_again() -> None:
    """A decision asked of a (slow) policy server holds no slot: the other peers are served
    meanwhile; afterwards the request waits for a slot like any arrival."""
    async def scenario() -> None:
        gate = FairGate(1)
        turn = await gate.enter("KGZ")
        answer: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        aside = asyncio.ensure_future(turn.aside(answer))
        await turns_until("the slot given back while aside", lambda: gate.busy == 0)
        assert gate.busy == 0
        other = await asyncio.wait_for(gate.enter("UZB"), 1)  # served while KGZ waits
        answer.set_result("allow")
        await turns_until("KGZ-BS back at the gate", lambda: gate.queued == 1)
        assert not aside.done() and gate.queued == 1  # KGZ waits its turn again
        other.release()
        assert await asyncio.wait_for(aside, 1) == "allow"
        assert (gate.busy, gate.queued) == (1, 0)
        turn.release()
        turn.release()
        assert gate.busy == 0
        # the work fails: its error, and no slot taken again
        turn = await gate.enter("KGZ")
        failing: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        failing.set_exception(OSError("policy server unreachable"))
        with pytest.raises(OSError):
            await turn.aside(failing)
        assert gate.busy == 0
        turn.release()
        assert gate.busy == 0

    asyncio.run(scenario())


# --- FairBatches: the order of steps in the group commit ---------------------------------


def _batches(b: FairBatches[str], limit: int) -> list[list[str]]:
    out = []
    while taken := b.take(limit):
        out.append([item for _, item in taken])
    return out


def test_a_lone_peer_fills_its_batches_in_order() -> None:
    b: FairBatches[str] = FairBatches()
    for i in range(10):
        b.add("UZB", f"u{i}")
    assert len(b) == 10
    assert _batches(b, 4) == [["u0", "u1", "u2", "u3"], ["u4", "u5", "u6", "u7"],
                              ["u8", "u9"]]
    assert len(b) == 0 and b.take(4) == [] and b.peers() == []


def test_a_modest_step_goes_first_and_the_flooders_tail_is_bounded() -> None:
    b: FairBatches[str] = FairBatches(share=2)
    for i in range(10):
        b.add("UZB", f"u{i}")
    b.add("KGZ", "k0")  # came last, waits least: first in the batch
    taken = b.take(16)
    assert taken == [("KGZ", "k0"), ("UZB", "u0"), ("UZB", "u1")]
    assert _batches(b, 16) == [[f"u{i}" for i in range(2, 10)]]  # alone again: all in


def test_peers_share_a_batch_round_by_round_fewest_waiting_first() -> None:
    b: FairBatches[str] = FairBatches(share=2)
    for i in range(6):
        b.add("UZB", f"u{i}")
    for i in range(3):
        b.add("TJK", f"t{i}")
    for i in range(3):
        b.add("KGZ", f"k{i}")  # ties with TJK: TJK came first
    assert [item for _, item in b.take(100)] == [
        "t0", "k0", "u0", "t1", "k1", "u1", "t2", "k2", "u2", "u3"]
    assert b.peers() == ["UZB"] and len(b) == 2
    b2: FairBatches[str] = FairBatches(share=1)
    for i in range(5):
        b2.add("UZB", f"u{i}")
    b2.add("KGZ", "k0")
    assert [item for _, item in b2.take(100)] == ["k0", "u0"]
    assert [item for _, item in b2.take(2)] == ["u1", "u2"]  # the limit holds


def test_a_running_batch_yields_to_a_peer_behind_more_than_its_share() -> None:
    b: FairBatches[str] = FairBatches(share=2)
    assert not b.yield_to(Counter(["UZB"] * 9))  # nobody waits
    b.add("UZB", "u10")
    assert not b.yield_to(Counter(["UZB"] * 9))  # only peers already in the batch wait
    b.add("KGZ", "k0")
    assert b.yield_to(Counter(["UZB"] * 9))
    assert not b.yield_to(Counter(["UZB", "UZB"]))  # behind two: its share, no yield
    assert not b.yield_to(Counter(["UZB", "TJK", "UZB", "TJK"]))  # behind two of each
    assert b.yield_to(Counter(["UZB", "TJK", "UZB", "UZB"]))
    assert not b.yield_to(Counter(["KGZ", "UZB", "UZB", "UZB"]))  # KGZ is in the batch


def test_put_back_returns_the_unrun_steps_to_the_front_in_order() -> None:
    b: FairBatches[str] = FairBatches(share=2)
    for i in range(6):
        b.add("UZB", f"u{i}")
    taken = b.take(16)
    assert [item for _, item in taken] == [f"u{i}" for i in range(6)]
    b.add("UZB", "u6")  # arrived while the batch ran
    b.add("KGZ", "k0")
    assert b.yield_to(Counter(p for p, _ in taken[1:]))
    b.put_back(taken[1:])
    assert b.peers() == ["UZB", "KGZ"] and len(b) == 7
    assert [item for _, item in b.take(16)] == ["k0", "u1", "u2"]
    assert [item for _, item in b.take(16)] == ["u3", "u4", "u5", "u6"]
    with pytest.raises(ValueError):
        FairBatches(share=0)
    with pytest.raises(ValueError):
        b.take(0)


_BATCH_OPS = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from(["UZB", "KGZ", "TJK"])),
    st.tuples(st.just("run"), st.integers(1, 8), st.integers(0, 8))), max_size=200)


@settings(max_examples=300, deadline=None)
@given(share=st.integers(1, 3), ops=_BATCH_OPS)
def test_batches_never_lose_double_or_reorder_a_peers_steps(
        share: int, ops: list[tuple[object, ...]]) -> None:
    """Any interleaving of arrivals and batches, some stopped early and put back: every step
    runs exactly once, each peer's in the order they came, no batch exceeds its limit, and
    in a batch holding several peers' steps at most ``share`` of one peer's follow the
    others' last."""
    b: FairBatches[str] = FairBatches(share=share)
    added: dict[str, list[str]] = {"UZB": [], "KGZ": [], "TJK": []}
    ran: dict[str, list[str]] = {"UZB": [], "KGZ": [], "TJK": []}
    n = 0
    for op in ops:
        if op[0] == "add":
            peer = str(op[1])
            t = f"{peer}-{n}"
            n += 1
            b.add(peer, t)
            added[peer].append(t)
            continue
        limit, stop_after = int(op[1]), int(op[2])  # type: ignore[call-overload]
        taken = b.take(limit)
        assert len(taken) <= limit
        peers = [p for p, _ in taken]
        if len(set(peers)) > 1:
            tail = 0
            while tail < len(peers) and peers[-1 - tail] == peers[-1]:
                tail += 1
            assert tail <= share
        if 0 < stop_after < len(taken):
            b.put_back(taken[stop_after:])
            taken = taken[:stop_after]
        for peer, t in taken:
            ran[peer].append(t)
        assert len(b) == sum(len(v) for v in added.values()) - sum(len(v) for v in ran.values())
    while taken := b.take(8):
        for peer, t in taken:
            ran[peer].append(t)
    assert ran == added
