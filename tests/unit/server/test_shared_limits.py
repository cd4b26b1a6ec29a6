"""The per-peer buckets every worker of ``serve --workers N`` shares
(node/server/shared_limits.py), on an injected clock: one agreement for the whole node,
whatever worker a call reaches."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from node.server.limits import PeerLimiter, PeerLimits
from node.server.shared_limits import (
    IDLE_REUSE_S,
    SharedBuckets,
    SharedLimitsError,
    create_table,
    forget_worker,
)
from tests.unit.server._clock import Clock


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "serve.limits"
    create_table(path, workers=2)
    return path


@pytest.fixture
def opened() -> Iterator[list[SharedBuckets]]:
    tables: list[SharedBuckets] = []
    yield tables
    for t in tables:
        t.close()


def worker(path: Path, index: int, limits: PeerLimits, clock: Clock,
           opened: list[SharedBuckets], *, workers: int = 2) -> PeerLimiter:
    t = SharedBuckets.attach(path, worker=index, workers=workers)
    opened.append(t)
    return PeerLimiter(limits_for=lambda _peer: limits, clock=clock, table=t)


def test_the_burst_and_the_rate_are_the_whole_nodes(table: Path,
                                                    opened: list[SharedBuckets]) -> None:
    clock = Clock(1000.0)
    limits = PeerLimits(rate_per_s=1.0, burst=10, max_in_flight=100)
    a, b = (worker(table, i, limits, clock, opened) for i in (0, 1))
    got = [(a if i % 2 else b).reserve("KGZ-BS") for i in range(14)]
    assert got == [0.0] * 10 + [None] * 4  # ten for the node, not ten for each worker
    clock.t += 1.0
    assert [a.reserve("KGZ-BS"), b.reserve("KGZ-BS")] == [0.0, None]
    clock.t += 1.0
    assert [b.reserve("KGZ-BS"), a.reserve("KGZ-BS")] == [0.0, None]
    assert [a.reserve("UZB-BS") for _ in range(10)] == [0.0] * 10  # another peer's own
    assert a.in_flight("KGZ-BS") == b.in_flight("KGZ-BS") == 12


def test_tokens_are_promised_in_order_across_workers(table: Path,
                                                     opened: list[SharedBuckets]) -> None:
    clock = Clock(1000.0)
    limits = PeerLimits(rate_per_s=1.0, burst=1, max_in_flight=100)
    a, b = (worker(table, i, limits, clock, opened) for i in (0, 1))
    waits = [a.reserve("KGZ-BS", max_wait_s=3.5), b.reserve("KGZ-BS", max_wait_s=3.5),
             a.reserve("KGZ-BS", max_wait_s=3.5), b.reserve("KGZ-BS", max_wait_s=3.5),
             a.reserve("KGZ-BS", max_wait_s=3.5)]
    assert waits == [0.0, 1.0, 2.0, 3.0, None]
    b.refund("KGZ-BS")  # the one promised 3.0 s gave up: its token back
    assert a.reserve("KGZ-BS", max_wait_s=3.5) == 3.0


def test_requests_in_flight_are_counted_for_the_node_and_released_by_their_worker(
        table: Path, opened: list[SharedBuckets]) -> None:
    clock = Clock(1000.0)
    limits = PeerLimits(rate_per_s=1000.0, burst=1000, max_in_flight=3)
    a, b = (worker(table, i, limits, clock, opened) for i in (0, 1))
    assert [a.reserve("KGZ-BS"), a.reserve("KGZ-BS"), b.reserve("KGZ-BS")] == [0.0] * 3
    assert b.reserve("KGZ-BS") is None and a.reserve("KGZ-BS") is None
    b.release("KGZ-BS")
    b.release("KGZ-BS")  # b held one: its second release frees none of a's
    assert a.in_flight("KGZ-BS") == 2
    assert b.reserve("KGZ-BS") == 0.0 and a.reserve("KGZ-BS") is None


def test_a_dead_workers_requests_in_flight_are_cleared(table: Path,
                                                      opened: list[SharedBuckets]) -> None:
    clock = Clock(1000.0)
    limits = PeerLimits(rate_per_s=1000.0, burst=1000, max_in_flight=4)
    a, b = (worker(table, i, limits, clock, opened) for i in (0, 1))
    assert [b.reserve("KGZ-BS") for _ in range(3)] == [0.0] * 3
    assert a.reserve("KGZ-BS") == 0.0 and a.reserve("KGZ-BS") is None
    forget_worker(table, worker=1, workers=2)  # what the supervisor does when it died
    assert a.in_flight("KGZ-BS") == 1
    assert [a.reserve("KGZ-BS") for _ in range(4)] == [0.0, 0.0, 0.0, None]
    # a worker starting under an index clears what a process with it left, nothing else
    again = worker(table, 0, limits, clock, opened)
    assert again.in_flight("KGZ-BS") == 0
    tokens = again.table.read("KGZ-BS")
    assert tokens is not None and tokens[0] == pytest.approx(1000 - 7)  # tokens stay taken


def _take(path: str, n: int, out: multiprocessing.Queue[list[float | None]]) -> None:
    t = SharedBuckets.attach(Path(path), worker=1, workers=2)
    lim = PeerLimiter(limits_for=lambda _p: PeerLimits(0.0001, 10, 100), clock=lambda: 1000.0,
                      table=t)
    out.put([lim.reserve("KGZ-BS") for _ in range(n)])
    t.close()


def test_another_process_sees_the_same_bucket(table: Path,
                                              opened: list[SharedBuckets]) -> None:
    """Two real processes on one file, as two workers are."""
    clock = Clock(1000.0)
    a = worker(table, 0, PeerLimits(0.0001, 10, 100), clock, opened)
    assert [a.reserve("KGZ-BS") for _ in range(6)] == [0.0] * 6
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue[list[float | None]] = ctx.Queue()
    p = ctx.Process(target=_take, args=(str(table), 6, out))
    p.start()
    got = out.get(timeout=60)
    p.join(60)
    assert p.exitcode == 0
    assert got == [0.0] * 4 + [None] * 2
    assert a.reserve("KGZ-BS") is None
    assert a.in_flight("KGZ-BS") == 10


def test_a_full_table_refuses_a_new_peer_until_a_slot_has_been_idle_a_day(
        tmp_path: Path, opened: list[SharedBuckets]) -> None:
    path = tmp_path / "serve.limits"
    create_table(path, workers=1, slots=4)
    clock = Clock(1000.0)
    lim = worker(path, 0, PeerLimits(1.0, 2, 10), clock, opened, workers=1)
    for peer in ("A", "B", "C", "D"):
        assert lim.reserve(peer) == 0.0
    lim.release("A")
    with structlog.testing.capture_logs() as logs:
        assert lim.reserve("E") is None and lim.reserve("E") is None  # fail closed
    assert [e["event"] for e in logs] == ["limits_table_full"]  # logged once, not per call
    clock.t += IDLE_REUSE_S - 1
    assert lim.reserve("E") is None  # A idle, but not yet for a day
    clock.t += 1
    assert lim.reserve("E") == 0.0  # A's slot: nothing in flight, unused for a day
    assert lim.reserve("B") == 0.0 and lim.in_flight("B") == 2  # B holds its slot
    for peer in ("B", "C", "D", "E"):  # every bucket found where it was put
        assert lim.table.read(peer) is not None
    assert lim.table.read("A") is None


def test_a_worker_cannot_use_a_missing_foreign_or_mismatched_table(tmp_path: Path) -> None:
    path = tmp_path / "serve.limits"
    with pytest.raises(SharedLimitsError, match="does not exist"):
        SharedBuckets.attach(path, worker=0, workers=2)
    path.write_bytes(b"not a table" * 100)
    with pytest.raises(SharedLimitsError, match="is not a bxnode limits table"):
        SharedBuckets.attach(path, worker=0, workers=2)
    create_table(path, workers=2, slots=8)
    with path.open("r+b") as f:  # cut short
        f.truncate(100)
    with pytest.raises(SharedLimitsError, match="is not a bxnode limits table"):
        SharedBuckets.attach(path, worker=0, workers=2)
    create_table(path, workers=2)  # replaces what was there
    with pytest.raises(SharedLimitsError, match="made for 2 workers, not worker 2 of 3"):
        SharedBuckets.attach(path, worker=2, workers=3)
    with pytest.raises(SharedLimitsError, match="made for 2 workers, not worker 2 of 2"):
        SharedBuckets.attach(path, worker=2, workers=2)
    with pytest.raises(SharedLimitsError, match=r"1\.\.64 workers, not 65"):
        create_table(path, workers=65)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    SharedBuckets.attach(path, worker=1, workers=2).close()
