"""A peer's calls in flight, leased to the replicas through PostgreSQL (``peer_slots``,
node/server/db_limits.py), on a real cluster and an injected clock: ``max_in_flight`` for
the node, whichever replicas its calls reach."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from node.server.db_limits import (
    SLOTS_LEASE_S,
    DbTokens,
    SharedTokensUnavailable,
    slot_chunk,
)
from node.server.limits import PeerLimits
from node.store.peer_buckets import bucket_key
from tests.unit.server._clock import Clock
from tests.waiting import until

T0 = 1_800_000_000.0


def _limits(max_in_flight: int) -> PeerLimits:
    return PeerLimits(rate_per_s=1000.0, burst=1000, max_in_flight=max_in_flight)


@pytest.fixture
def replicas(pool: Any) -> Iterator[tuple[DbTokens, DbTokens, Clock]]:
    clock = Clock(T0)
    a = DbTokens(connect=pool.side_connection, clock=clock, replica="replica-a")
    b = DbTokens(connect=pool.side_connection, clock=clock, replica="replica-b")
    yield a, b, clock
    a.close()
    b.close()


def _take(tokens: DbTokens, n: int, limits: PeerLimits, bucket: str = "KGZ-BS") -> list[bool]:
    async def run() -> list[bool]:
        return [await tokens.take_slot(bucket, limits) for _ in range(n)]

    return asyncio.run(run())


def _rows(pool: Any, bucket: str = "KGZ-BS") -> dict[str, tuple[int, float]]:
    db = pool.database()
    try:
        return {str(r): (int(s), float(e)) for r, s, e in db.query(
            "SELECT replica, slots, expires FROM peer_slots WHERE bucket = ?",
            (bucket_key(bucket),))}
    finally:
        db.close()


def _settled(tokens: DbTokens) -> None:
    """Wait for what the limits thread has queued (a give-back)."""
    tokens._pool.submit(lambda: None).result(timeout=30)


def test_a_chunk_is_a_tenth_of_max_in_flight() -> None:
    assert [slot_chunk(n) for n in (1, 4, 10, 11, 25, 100, 1000)] == [1, 1, 1, 2, 3, 10, 100]


def test_two_replicas_never_hold_more_than_max_in_flight_together(
        replicas: tuple[DbTokens, DbTokens, Clock], pool: Any) -> None:
    a, b, _ = replicas
    limits = _limits(20)  # chunks of 2
    assert _take(a, 15, limits) == [True] * 15
    assert a.statements == 8 and a.slots_held("KGZ-BS") == (15, 16)  # 8 chunks of 2
    assert _take(b, 6, limits) == [True] * 4 + [False] * 2  # what A's lease leaves
    assert b.slots_held("KGZ-BS") == (4, 4)
    assert b.statements == 3  # 2, then 4, then refused: the second refusal asks nothing
    assert {r: s for r, (s, _) in _rows(pool).items()} == {"replica-a": 16, "replica-b": 4}
    assert _take(a, 2, limits) == [True, False]  # A's own lease, then nothing left
    assert _take(b, 1, limits, bucket="UZB-BS") == [True]  # another peer's own


def test_replicas_asking_at_once_are_granted_max_in_flight_exactly(
        replicas: tuple[DbTokens, DbTokens, Clock], pool: Any) -> None:
    """Both replicas' grants race on the bucket's advisory lock: of 60 calls held, 10."""
    a, b, _ = replicas
    limits = _limits(10)  # chunks of 1: a grant per call
    got: list[list[bool]] = []
    start = threading.Barrier(2)

    def replica(tokens: DbTokens) -> None:
        start.wait(30)
        got.append(_take(tokens, 30, limits))

    threads = [threading.Thread(target=replica, args=(t,)) for t in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(g.count(True) for g in got) == 10
    assert sum(s for s, _ in _rows(pool).values()) == 10
    assert a.slots_held("KGZ-BS")[0] + b.slots_held("KGZ-BS")[0] == 10


def test_a_dead_replicas_slots_come_back_when_its_lease_expires(
        replicas: tuple[DbTokens, DbTokens, Clock], pool: Any) -> None:
    a, b, clock = replicas
    limits = _limits(4)
    assert _take(a, 4, limits) == [True] * 4  # then A stops renewing: as if killed
    assert _take(b, 1, limits) == [False]
    clock.t = T0 + SLOTS_LEASE_S - 0.5
    assert _take(b, 1, limits) == [False]  # A's lease still live (asked: past the deny)
    assert b.statements == 2
    clock.t = T0 + SLOTS_LEASE_S
    assert _take(b, 4, limits) == [True] * 4
    assert set(_rows(pool)) == {"replica-b"}  # the dead lease deleted by B's grant


def test_renewal_keeps_a_live_replicas_slots(
        replicas: tuple[DbTokens, DbTokens, Clock], pool: Any) -> None:
    a, b, clock = replicas
    limits = _limits(4)
    assert _take(a, 3, limits) == [True] * 3  # held by calls still under way
    for _ in range(4):  # 4 x 3 s: longer than a lease, renewed every pass
        clock.t += 3.0
        a.renew_slots()
    assert _rows(pool)["replica-a"] == (3, clock.t + SLOTS_LEASE_S)
    assert _take(b, 2, limits) == [True, False]
    assert a.statements == 3 + 4


def test_a_lease_near_its_end_is_renewed_by_the_call_using_it(
        replicas: tuple[DbTokens, DbTokens, Clock], pool: Any) -> None:
    a, _, clock = replicas
    limits = _limits(20)  # chunks of 2
    assert _take(a, 1, limits) == [True] and a.statements == 1
    clock.t = T0 + SLOTS_LEASE_S / 2 - 0.01
    assert _take(a, 1, limits) == [True] and a.statements == 1  # the lease's second slot
    a.release_slot("KGZ-BS")
    clock.t = T0 + SLOTS_LEASE_S / 2  # half the lease gone: renewed (no more asked for)
    assert _take(a, 1, limits) == [True] and a.statements == 2
    assert _rows(pool)["replica-a"] == (2, clock.t + SLOTS_LEASE_S)


def test_a_lease_that_expired_is_not_renewed_but_granted_again(
        replicas: tuple[DbTokens, DbTokens, Clock], pool: Any) -> None:
    a, b, clock = replicas
    limits = _limits(4)
    assert _take(a, 2, limits) == [True] * 2
    clock.t = T0 + SLOTS_LEASE_S  # A's renewal late (a stalled loop): B counts A's slots free
    assert _take(b, 3, limits) == [True] * 3
    a.renew_slots()
    assert _rows(pool) == {"replica-b": (3, T0 + SLOTS_LEASE_S * 2)}  # A's row gone, not back
    assert _take(a, 1, limits) == [False]  # granted again: one left, and A's two calls hold it
    assert a.slots_held("KGZ-BS") == (2, 1)


def test_surplus_goes_back_with_hysteresis_and_an_idle_lease_altogether(
        replicas: tuple[DbTokens, DbTokens, Clock], pool: Any) -> None:
    a, b, _ = replicas
    limits = _limits(20)  # chunks of 2
    assert _take(a, 12, limits) == [True] * 12
    for _ in range(4):  # 8 in flight: 4 over them, not more than two chunks
        a.release_slot("KGZ-BS")
    _settled(a)
    assert a.slots_held("KGZ-BS") == (8, 12) and a.statements == 6
    a.release_slot("KGZ-BS")  # 7 in flight: down to one chunk above them
    _settled(a)
    assert a.slots_held("KGZ-BS") == (7, 9) and a.statements == 7
    assert _rows(pool)["replica-a"][0] == 9
    assert _take(b, 12, limits) == [True] * 11 + [False]
    for _ in range(7):  # at 4 in flight back to 6 slots, at 1 to 3
        a.release_slot("KGZ-BS")
        _settled(a)
    assert a.slots_held("KGZ-BS") == (0, 3) and a.statements == 9
    a.renew_slots()  # used since the last pass: renewed
    assert "replica-a" in _rows(pool)
    a.renew_slots()  # idle since: given back
    assert "replica-a" not in _rows(pool) and a.slots_held("KGZ-BS") == (0, 0)


def test_a_call_cancelled_while_its_slot_is_granted_gives_it_back(pool: Any) -> None:
    started, go = threading.Event(), threading.Event()

    def connect() -> Any:
        started.set()
        go.wait(30)
        return pool.side_connection()

    tokens = DbTokens(connect=connect, clock=Clock(T0), replica="replica-a")

    async def run() -> None:
        task = asyncio.create_task(tokens.take_slot("KGZ-BS", _limits(4)))
        assert await asyncio.to_thread(started.wait, 30)  # its statement is under way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        go.set()
        await asyncio.to_thread(until, "the slot given back",
                                lambda: tokens.slots_held("KGZ-BS") == (0, 1))

    try:
        asyncio.run(run())
    finally:
        go.set()
        tokens.close()


def test_a_replica_that_stops_gives_its_slots_back(pool: Any) -> None:
    a = DbTokens(connect=pool.side_connection, clock=Clock(T0), replica="replica-a")
    assert _take(a, 3, _limits(4)) == [True] * 3
    assert _take(a, 1, _limits(4), bucket="UZB-BS") == [True]
    a.close()
    assert _rows(pool) == {} and _rows(pool, "UZB-BS") == {}


def test_an_unreachable_database_is_reported_once_for_slots_and_tokens() -> None:
    def refuse() -> Any:
        raise OSError("connection refused")

    tokens = DbTokens(connect=refuse, clock=Clock(T0))
    limits = _limits(4)
    try:
        with structlog.testing.capture_logs() as logs:
            for _ in range(2):
                with pytest.raises(SharedTokensUnavailable):
                    asyncio.run(tokens.take_slot("KGZ-BS", limits))
                with pytest.raises(SharedTokensUnavailable):
                    asyncio.run(tokens.take("KGZ-BS", limits, max_wait_s=0))
    finally:
        tokens.close()
    assert [(e["event"], e["log_level"]) for e in logs] == [
        ("shared_limits_unavailable", "warning")]
    assert tokens.slots_held("KGZ-BS") == (0, 0)


def test_a_limits_v1_database_migrates_to_v2_keeping_its_buckets(pool: Any) -> None:
    """A database migrated before ``peer_slots`` existed (limits v1): refused as outdated
    until ``bxnode store migrate`` applies limits v2 alone; the buckets' rows stay."""
    from node.core.errors import ConfigError
    from node.store.postgresql.migrate import check_schema, migrate
    from node.store.schema import steps

    v1 = next(s for s in steps() if (s.name, s.version) == ("limits", 1))
    db = pool.database()
    try:
        db.execute_raw("DROP TABLE peer_slots")
        db.execute("UPDATE bxnode_schema SET version = 1, ddl_sha256 = ? WHERE name = 'limits'",
                   (v1.digest,))
        db.execute("INSERT INTO peer_buckets (bucket, tokens, stamp) VALUES ('k', 3, 1)")
        with pytest.raises(ConfigError) as exc:
            check_schema(db)
        assert exc.value.reason == "schema_outdated" and "limits v1 < v2" in str(exc.value)
        assert [(s.name, s.version) for s in migrate(db).applied] == [("limits", 2)]
        check_schema(db)
        assert db.query("SELECT bucket, tokens FROM peer_buckets") == [("k", 3.0)]
    finally:
        db.close()
    a = DbTokens(connect=pool.side_connection, clock=Clock(T0), replica="replica-a")
    try:
        assert _take(a, 2, _limits(4)) == [True, True]
    finally:
        a.close()
