"""The tokens replicas share in PostgreSQL (node/server/db_limits.py), on a real cluster and
an injected clock: one bucket for the node, whichever replica a call reaches."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from node.server.db_limits import (
    LEASE_S,
    RETRY_AFTER_S,
    DbTokens,
    SharedTokensUnavailable,
    lease_size,
)
from node.server.limits import PeerLimits
from node.store.peer_buckets import bucket_key
from tests.unit.server._clock import Clock
from tests.waiting import until


@pytest.fixture
def replicas(pool: Any) -> Iterator[tuple[DbTokens, DbTokens, Clock]]:
    clock = Clock(1_800_000_000.0)
    a, b = (DbTokens(connect=pool.side_connection, clock=clock) for _ in range(2))
    yield a, b, clock
    a.close()
    b.close()


def _row(pool: Any, bucket: str) -> tuple[Any, ...] | None:
    db = pool.database()
    try:
        row: tuple[Any, ...] | None = db.query_one(
            "SELECT tokens, stamp FROM peer_buckets WHERE bucket = ?", (bucket_key(bucket),))
        return row
    finally:
        db.close()


def test_the_burst_and_the_rate_are_the_nodes_across_replicas(
        replicas: tuple[DbTokens, DbTokens, Clock]) -> None:
    a, b, clock = replicas
    limits = PeerLimits(rate_per_s=1.0, burst=6, max_in_flight=100)

    async def run() -> list[float | None]:
        return [await (a if i % 2 else b).take("KGZ-BS", limits, max_wait_s=0)
                for i in range(8)]

    assert asyncio.run(run()) == [0.0] * 6 + [None, None]  # six for the node, not each
    clock.t += 0.5
    assert asyncio.run(a.take("KGZ-BS", limits, max_wait_s=0)) is None  # refused 0.5 s ago:
    assert a.statements == 4  # ... so refused again without asking (a deny of 1 / rate)
    clock.t += 0.5
    assert asyncio.run(a.take("KGZ-BS", limits, max_wait_s=0)) == 0.0  # one token refilled
    assert asyncio.run(b.take("KGZ-BS", limits, max_wait_s=0)) is None  # and taken
    assert asyncio.run(b.take("UZB-BS", limits, max_wait_s=0)) == 0.0  # another peer's own


def test_tokens_are_promised_in_order_across_replicas_and_a_refund_gives_one_back(
        replicas: tuple[DbTokens, DbTokens, Clock], pool: Any) -> None:
    a, b, clock = replicas
    limits = PeerLimits(rate_per_s=2.0, burst=1, max_in_flight=100)

    async def run() -> list[float | None]:
        return [await (a if i % 2 else b).take("KGZ-BS", limits, max_wait_s=1.6)
                for i in range(5)]

    assert asyncio.run(run()) == [0.0, 0.5, 1.0, 1.5, None]
    a.refund_soon("KGZ-BS", limits)  # a call promised a token gave up
    a.close()  # its refund sent
    row = _row(pool, "KGZ-BS")
    assert row is not None and row[0] == pytest.approx(-2.0)  # 3 promised ahead, one back
    clock.t += 0.5  # the refusal's deny (1 / rate) passed, one token refilled
    assert asyncio.run(b.take("KGZ-BS", limits, max_wait_s=1.6)) == pytest.approx(1.0)


def test_a_replica_whose_clock_is_behind_refills_nothing_and_moves_no_stamp_back(
        pool: Any) -> None:
    ahead, behind = Clock(1_800_000_000.0), Clock(1_800_000_000.0)
    behind.t -= 30
    a = DbTokens(connect=pool.side_connection, clock=ahead)
    b = DbTokens(connect=pool.side_connection, clock=behind)
    limits = PeerLimits(rate_per_s=1.0, burst=2, max_in_flight=100)
    try:
        assert asyncio.run(a.take("KGZ-BS", limits, max_wait_s=0)) == 0.0
        assert asyncio.run(a.take("KGZ-BS", limits, max_wait_s=0)) == 0.0
        behind.t += 20  # 20 s on its clock, still 10 s behind the stamp: no refill
        assert asyncio.run(b.take("KGZ-BS", limits, max_wait_s=0)) is None
    finally:
        a.close()
        b.close()
    row = _row(pool, "KGZ-BS")
    assert row is not None and row[1] == ahead.t


def test_an_unreachable_database_is_reported_so_the_call_is_decided_locally() -> None:
    def refuse() -> Any:
        raise OSError("connection refused")

    tokens = DbTokens(connect=refuse, clock=Clock(1_800_000_000.0))
    limits = PeerLimits(rate_per_s=1.0, burst=2, max_in_flight=100)
    try:
        with structlog.testing.capture_logs() as logs:
            for _ in range(3):
                with pytest.raises(SharedTokensUnavailable):
                    asyncio.run(tokens.take("KGZ-BS", limits, max_wait_s=0))
    finally:
        tokens.close()
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("shared_limits_unavailable", "warning")]  # once, not per call


def test_after_a_failure_the_database_is_not_asked_again_for_a_second() -> None:
    """A host that does not answer costs each attempt its connect timeout, on the one
    limits thread every call's statement waits for: after a failure the calls are decided
    locally at once, and the database is tried again only after RETRY_AFTER_S."""
    attempts: list[float] = []
    clock = Clock(1_800_000_000.0)

    def refuse() -> Any:
        attempts.append(clock.t)
        raise OSError("connection timed out")

    tokens = DbTokens(connect=refuse, clock=clock)
    limits = PeerLimits(rate_per_s=1.0, burst=2, max_in_flight=100)
    try:
        for step in (0.0, 0.5, RETRY_AFTER_S - 0.6, 0.2, 0.2):  # t0, +0.5, +0.9, +1.1, +1.3
            clock.t += step
            with pytest.raises(SharedTokensUnavailable):
                asyncio.run(tokens.take("KGZ-BS", limits, max_wait_s=0))
            with pytest.raises(SharedTokensUnavailable):
                asyncio.run(tokens.take_slot("KGZ-BS", limits))
    finally:
        tokens.close()
    start = 1_800_000_000.0
    assert attempts == [start, pytest.approx(start + RETRY_AFTER_S + 0.1)]  # t0, t0 + 1.1


def test_a_call_cancelled_while_its_token_is_taken_gives_it_back(pool: Any) -> None:
    """Cancelled while its statement is under way (held in ``connect`` until the test lets
    it go): the token it was granted goes back to the row."""
    started, go = threading.Event(), threading.Event()

    def connect() -> Any:
        started.set()
        go.wait(30)
        return pool.side_connection()

    tokens = DbTokens(connect=connect, clock=Clock(1_800_000_000.0))
    limits = PeerLimits(rate_per_s=0.001, burst=3, max_in_flight=100)

    async def run() -> None:
        task = asyncio.create_task(tokens.take("KGZ-BS", limits, max_wait_s=0))
        assert await asyncio.to_thread(started.wait, 30)  # its statement is under way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        go.set()
        await asyncio.to_thread(until, "the refund sent", lambda: tokens.statements == 2)

    try:
        asyncio.run(run())
    finally:
        go.set()
        tokens.close()
    row = _row(pool, "KGZ-BS")
    assert row is not None and row[0] == pytest.approx(3.0)


def test_a_lease_is_a_tenth_of_the_burst_at_most_a_tenth_of_a_second_of_the_rate() -> None:
    assert [lease_size(PeerLimits(r, b, 1)) for r, b in [
        (5000.0, 10_000), (100.0, 100), (100.0, 1000), (1000.0, 50), (0.0001, 4), (1.0, 6)]] \
        == [500, 10, 10, 5, 1, 1]


def test_a_lease_spends_tokens_without_a_statement_and_never_more_than_the_row_granted(
        replicas: tuple[DbTokens, DbTokens, Clock], pool: Any) -> None:
    a, b, _ = replicas
    limits = PeerLimits(rate_per_s=100.0, burst=100, max_in_flight=1000)  # leases of 10

    async def run() -> list[float | None]:
        return [await (a if i % 2 else b).take("KGZ-BS", limits, max_wait_s=0)
                for i in range(300)]

    got = asyncio.run(run())
    assert got.count(0.0) == 100 and got.count(None) == 200  # the burst, once for the node
    assert a.statements + b.statements == 12  # ten leases of 10, then one refusal each
    row = _row(pool, "KGZ-BS")
    assert row is not None and row[0] == pytest.approx(0.0)


def test_a_lease_not_spent_in_time_is_dropped_and_a_refund_goes_back_into_it(
        replicas: tuple[DbTokens, DbTokens, Clock], pool: Any) -> None:
    a, _, clock = replicas
    limits = PeerLimits(rate_per_s=100.0, burst=100, max_in_flight=1000)  # leases of 10
    assert asyncio.run(a.take("KGZ-BS", limits, max_wait_s=0)) == 0.0  # 9 leased
    a.refund_soon("KGZ-BS", limits)  # back into the lease: 10, no statement
    assert [asyncio.run(a.take("KGZ-BS", limits, max_wait_s=0)) for _ in range(10)] \
        == [0.0] * 10
    assert a.statements == 1
    assert asyncio.run(a.take("KGZ-BS", limits, max_wait_s=0)) == 0.0  # a second lease
    assert a.statements == 2
    clock.t += LEASE_S  # its 9 tokens not spent in time: dropped, not given back
    assert asyncio.run(a.take("KGZ-BS", limits, max_wait_s=0)) == 0.0
    assert a.statements == 3
    row = _row(pool, "KGZ-BS")  # 100 - 3 leases of 10 + LEASE_S of refill (100), capped
    assert row is not None and row[0] == pytest.approx(90.0)
    tighter = PeerLimits(rate_per_s=100.0, burst=50, max_in_flight=1000)
    assert asyncio.run(a.take("KGZ-BS", tighter, max_wait_s=0)) == 0.0  # new limits: asks
    assert a.statements == 4
