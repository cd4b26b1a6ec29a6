"""Group commit: one durable commit and one checkpoint per batch; failures release nothing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import Callable
from contextvars import Context
from pathlib import Path
from typing import TypeVarTuple

import nacl.signing
import pytest
from structlog.testing import capture_logs

from node.audit.log import MerkleAuditLog
from node.server.group_commit import BatchWriter
from node.store.sqlcipher import Store

KEY = bytes(range(32))
SK = nacl.signing.SigningKey(bytes(range(1, 33)))


Ts = TypeVarTuple("Ts")


def _step(log: MerkleAuditLog, i: int) -> int:
    with log.store.transaction():  # a savepoint inside the open batch
        return log.append({"event": "lookup", "i": i}, time_ms=1_000 + i)


async def _request(writer: BatchWriter, log: MerkleAuditLog, i: int, *, peer: str = "") -> int:
    return await writer.run_in_batch(functools.partial(_step, log, i), peer=peer)


def test_batch_commits_once_with_one_checkpoint(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "n.db", KEY, create=True)
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)

    async def main() -> None:
        writer = BatchWriter(store=store, batch_max=10, batch_ms=50)
        writer.start()
        seqs = await asyncio.gather(*(_request(writer, log, i) for i in range(25)))
        assert sorted(seqs) == list(range(1, 26))
        assert writer.batches == 3 and writer.committed == 25
        assert writer.yields == 0 and writer.lock_report()["yields"] == 0  # one peer alone
        await writer.stop()

    asyncio.run(main())
    assert [h.size for h in log.heads()] == [10, 20, 25]
    assert log.verify().ok
    store.close()


def test_nothing_is_released_when_the_commit_fails(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "n.db", KEY, create=True)
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)

    def broken() -> None:
        raise OSError("disk full")

    async def main() -> None:
        writer = BatchWriter(store=store, batch_max=100, batch_ms=10)
        writer.start()
        def failing() -> None:
            with log.store.transaction():
                log.append({"event": "lookup", "i": 1}, time_ms=1_001)
            store.before_commit("zz_broken", broken)

        with pytest.raises(OSError):
            await writer.run_in_batch(failing)
        # the next batch works again
        assert await _request(writer, log, 2) == 1
        await writer.stop()

    asyncio.run(main())
    assert log.next_seq() == 2 and log.verify().ok
    store.close()


def test_the_event_loop_never_runs_database_work(tmp_path: Path) -> None:
    """Every step runs on the one database thread, never on the loop's thread."""
    import threading

    store = Store.open(tmp_path / "n.db", KEY, create=True)
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)

    async def main() -> None:
        writer = BatchWriter(store=store, batch_max=4, batch_ms=5)
        loop_thread = threading.get_ident()
        threads = await asyncio.gather(*(writer.run_in_batch(threading.get_ident)
                                         for _ in range(6)),
                                       writer.call(threading.get_ident))
        assert len(set(threads)) == 1 and loop_thread not in threads
        assert writer.thread_id == threads[0]
        await writer.stop()

    asyncio.run(main())
    assert log.next_seq() == 1
    store.close()



def test_a_batch_wakes_its_event_loop_once(tmp_path: Path) -> None:
    """Each ``call_soon_threadsafe`` writes to the loop's self-pipe: a batch of ten settles
    its ten waiters with one, and each still gets its own result."""
    store = Store.open(tmp_path / "n.db", KEY, create=True)
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        wakeups: list[object] = []
        plain = loop.call_soon_threadsafe

        def counted(callback: Callable[[*Ts], object], *args: *Ts,
                    context: Context | None = None) -> asyncio.Handle:
            wakeups.append(callback)
            return plain(callback, *args, context=context)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign]  # a counting stand-in
        writer = BatchWriter(store=store, batch_max=10, batch_ms=10_000)  # full at ten
        writer.start()
        seqs = await asyncio.gather(*(_request(writer, log, i) for i in range(10)))
        assert seqs == list(range(1, 11))
        assert writer.batches == 1 and len(wakeups) == 1
        await writer.stop()

    asyncio.run(main())
    store.close()


def test_a_batch_yields_to_a_peer_that_arrives_behind_a_flooders_steps(
        tmp_path: Path) -> None:
    """A flooder's ten steps make one batch; a modest peer's step arrives while the first
    runs.  The batch commits that one step and puts the other nine back; the next batch
    starts with the modest step and takes two of the flooder's after it (its share)."""
    store = Store.open(tmp_path / "n.db", KEY, create=True)
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)
    order: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        writer = BatchWriter(store=store, batch_max=16, batch_ms=50)
        writer.start()
        modest: list[asyncio.Future[int]] = []

        def step(name: str, i: int) -> int:
            order.append(name)
            if name == "F0":  # the modest peer's request arrives while F0 runs
                arrived = threading.Event()

                def arrive() -> None:
                    modest.append(asyncio.ensure_future(
                        writer.run_in_batch(functools.partial(step, "P0", 100), peer="KGZ")))
                    arrived.set()

                loop.call_soon_threadsafe(arrive)
                assert arrived.wait(5)
                while writer._queue.empty():  # queued on the loop thread: wait for it
                    threading.Event().wait(0.001)
            with log.store.transaction():
                return log.append({"event": "lookup", "who": name}, time_ms=1_000 + i)

        flood = [writer.run_in_batch(functools.partial(step, f"F{i}", i), peer="UZB")
                 for i in range(10)]
        await asyncio.gather(*flood)
        await asyncio.gather(*modest)
        assert writer.yields == 1 and writer.batches == 3 and writer.committed == 11
        await writer.stop()

    asyncio.run(main())
    assert order == ["F0", "P0", "F1", "F2"] + [f"F{i}" for i in range(3, 10)]
    assert [h.size for h in log.heads()] == [1, 4, 11]
    assert log.verify().ok
    store.close()


def test_steps_of_a_batch_whose_transaction_cannot_open_all_get_the_error(
        tmp_path: Path) -> None:
    """Another process holds the database's write lock: the batch's BEGIN fails after the
    busy timeout, and every step taken for it gets that error (none is left waiting)."""
    import sqlcipher3

    path = tmp_path / "n.db"
    store = Store.open(path, KEY, create=True, busy_timeout_s=0.2)
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)
    other = sqlcipher3.connect(str(path), isolation_level=None)
    other.execute(f"PRAGMA key = \"x'{KEY.hex()}'\"")
    other.execute("BEGIN EXCLUSIVE")

    async def main() -> None:
        writer = BatchWriter(store=store, batch_max=16, batch_ms=50)
        writer.start()
        results = await asyncio.wait_for(asyncio.gather(
            *(_request(writer, log, i) for i in range(3)),
            *(_request(writer, log, i, peer="KGZ") for i in range(3, 5)),
            return_exceptions=True), 10)
        assert len(results) == 5
        assert all(isinstance(r, Exception) for r in results), results
        other.execute("ROLLBACK")
        assert await _request(writer, log, 9) == 1  # and the next batch works
        await writer.stop()

    asyncio.run(main())
    other.close()
    store.close()


def test_a_steps_reads_run_before_its_batchs_transaction_and_outside_the_lock(
        tmp_path: Path) -> None:
    """``pre`` runs on the database thread once the batch is made, with no transaction
    open and the writers' lock free (another process takes it meanwhile), each once; one
    that raises is logged and its step still runs."""
    store = Store.open(tmp_path / "n.db", KEY, create=True)
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)
    other = Store.open(tmp_path / "n.db", KEY)  # another worker's connection
    seen: list[tuple[str, int, bool, bool]] = []

    def pre(i: int) -> None:
        seen.append(("pre", i, store.in_transaction, threading.get_ident() == writer.thread_id))
        if i == 0:  # the lock is free: another writer commits in between
            with other.transaction():
                other.set_meta("between", "1")
        if i == 1:
            raise KeyError("N0481516")

    def step(i: int) -> int:
        seen.append(("step", i, store.in_transaction, store.get_meta("between") == "1"))
        return _step(log, i)

    async def main() -> list[int]:
        writer.start()
        return list(await asyncio.gather(*(writer.run_in_batch(
            functools.partial(step, i), pre=functools.partial(pre, i)) for i in range(3))))

    writer = BatchWriter(store=store, batch_max=10, batch_ms=50)
    with capture_logs() as logs:
        seqs = asyncio.run(main())
        asyncio.run(writer.stop())
    assert sorted(seqs) == [1, 2, 3]
    assert [s[:2] for s in seen] == [("pre", 0), ("pre", 1), ("pre", 2),
                                     ("step", 0), ("step", 1), ("step", 2)]
    assert all(s[2:] == (False, True) for s in seen[:3])  # no transaction, the db thread
    assert all(s[2:] == (True, True) for s in seen[3:])   # in the batch, after the other's commit
    [failed] = [e for e in logs if e["event"] == "batch_preread_failed"]
    assert failed["error"] == "KeyError" and "N0481516" not in str(failed)
    report = writer.lock_report()
    assert report["preread_ms"] > 0 and (report["batches"], report["requests"]) == (1, 3)
    other.close()
    store.close()


def test_a_newcomer_stops_the_reads_of_steps_that_will_run_after_it(tmp_path: Path) -> None:
    """Six steps of one peer are read before their batch's lock; while the first is read
    another peer's step arrives: the rest are left unread (the batch yields to the
    newcomer after its first step), and each is read once, in the batch it runs in."""
    store = Store.open(tmp_path / "n.db", KEY, create=True)
    log = MerkleAuditLog(store=store, node_id="KAZ-BS", signing_key=SK)
    seen: list[str] = []
    arrived: list[concurrent.futures.Future[int]] = []

    def pre(name: str) -> None:
        seen.append(f"pre {name}")
        if name == "K0":
            arrived.append(asyncio.run_coroutine_threadsafe(writer.run_in_batch(
                functools.partial(step, "U"), peer="UZB-BS", pre=functools.partial(pre, "U")),
                loops[0]))
            # wait on the writer's own queue for the newcomer's step, and leave it there
            writer._queue.put(writer._queue.get(timeout=10))

    def step(name: str) -> int:
        seen.append(f"step {name}")
        return _step(log, len(seen))

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        writer.start()
        await asyncio.gather(*(writer.run_in_batch(
            functools.partial(step, f"K{i}"), peer="KGZ-BS", pre=functools.partial(pre, f"K{i}"))
            for i in range(6)))
        await writer.sync()

    loops: list[asyncio.AbstractEventLoop] = []
    writer = BatchWriter(store=store, batch_max=16, batch_ms=50)
    asyncio.run(main())
    asyncio.run(writer.stop())
    assert seen[:3] == ["pre K0", "step K0", "pre U"]  # K1..K5 not read before K0's batch
    assert seen.index("step U") < seen.index("step K1")
    assert sorted(seen) == sorted([f"{w} {n}" for n in ("K0", "K1", "K2", "K3", "K4", "K5", "U")
                                   for w in ("pre", "step")])  # each read exactly once
    assert writer.yields >= 1 and arrived[0].result(10) >= 1
    store.close()
