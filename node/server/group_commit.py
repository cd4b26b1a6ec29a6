"""Group commit on the database thread: many requests, one durable commit, one checkpoint.

The event loop never touches the database.  One dedicated thread (``bxnode-db``) owns the
node's :class:`~node.store.db.Database` connection, and everything that reads or writes it
runs there:

* :meth:`BatchWriter.run_in_batch` queues a step (a request's steps 7-11); it returns only
  once the batch that ran it has committed.  Nothing is sent before its audit entry is
  durable.
* :meth:`BatchWriter.call` runs a read (or a write with its own transaction) on the same
  thread, between batches.
* A step may bring a ``pre`` function (``run_in_batch(fn, pre=...)``): its reads, run on
  the same thread once the batch is made, just before its transaction opens -- outside
  the writers' lock, so that another worker or replica commits meanwhile.  What a ``pre``
  read is used only once checked under the lock (the lookup's answer: node/watchlist/
  lookup.py, "Read before the lock").

A batch is gathered *before* its transaction opens: the thread takes the first queued
step, waits at most ``batch_ms`` for more (up to ``batch_max``; with ``batch_ms = 0`` it
takes whatever queued up while the last batch committed), then opens one transaction,
runs every step of the batch in it — each request's own ``transaction()`` nests as a
SAVEPOINT — lets the audit log seal the batch into the tree and sign one checkpoint just
before ``COMMIT`` (``Database.before_commit``), commits durably, and only then releases
the waiting steps.  So the database's write lock (SQLite's, or the ``audit`` advisory lock
on PostgreSQL that every replica takes) is held only while the batch runs and commits,
never while it waits for company.  If the commit fails, every step of that batch gets the
error and none of their responses is sent.

A batch is made peer by peer (:class:`node.server.fair.FairBatches`): the steps waiting are
filed under the peer each request came from, and a batch takes one per peer in turn, the
peer with fewest waiting first, so a modest peer's step runs near the head of the next
batch, not behind a flooder's burst; once only one peer's steps are left the batch takes
at most two more of them and commits.  Between two steps the thread files what arrived
meanwhile, and if a peer that is not in the running batch would wait behind more than two
steps of one other peer, the batch commits what has run and puts the rest back, in order,
at the front of the next one (``yields``).  Every step still runs, in its peer's order,
and is durable before it is answered; only the order between peers changes.  Reads that
arrive while a batch runs wait for its commit.

The serial section is measured: at stop (and every minute at debug level) the writer logs
``writer_lock`` -- its batches and requests, the wall and thread-CPU time its batches took,
and how long the store's transactions waited for the writers' lock and held it
(:class:`node.store.db.LockTimes`; with ``serve --workers`` or replicas, one process's
hold is the others' wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from node.core.metrics import NO_METRICS, Metrics
from node.logging import error_fields
from node.server.fair import FairBatches
from node.store.db import Database, LockTimes

__all__ = ["BatchWriter"]

log = structlog.get_logger("bxnode.audit.group_commit")

T = TypeVar("T")


@dataclass(slots=True)
class _Step:
    fn: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    batched: bool
    #: The peer the request came from (its limits' bucket): batches are made peer by peer.
    peer: str = ""
    #: Reads run just before the batch's transaction opens (once: then None).
    pre: Callable[[], None] | None = None
    result: Any = None
    error: BaseException | None = field(default=None)


_STOP = object()

#: How often the ``writer_lock`` figures are logged at debug level.
_STATS_EVERY_S = 60.0


class BatchWriter:
    def __init__(self, *, store: Database, batch_max: int = 256, batch_ms: int = 2,
                 metrics: Metrics = NO_METRICS) -> None:
        if batch_max < 1 or batch_ms < 0:
            raise ValueError("batch_max must be >= 1 and batch_ms >= 0")
        self.store = store
        self.batch_max = batch_max
        self.batch_ms = batch_ms
        self.metrics = metrics
        self._queue: queue.SimpleQueue[_Step | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="bxnode-db", daemon=True)
        self._started = False
        self._start_lock = threading.Lock()
        self.thread_id: int | None = None
        self.batches = 0
        self.committed = 0
        #: Why the last batch did not commit (None once one has): reads may still work while
        #: every write fails (a full disk), so health probes with a write meanwhile.  Our
        #: error's message, or a driver's error's type alone (node.logging.error_fields).
        self.commit_error: str | None = None
        #: Wall and thread-CPU seconds the database thread spent running batches.
        self.batch_s = 0.0
        self.batch_cpu_s = 0.0
        #: Wall and thread-CPU seconds the steps' reads before the lock (``pre``) took.
        self.preread_s = 0.0
        self.preread_cpu_s = 0.0
        #: Batches that committed early for a peer that arrived while they ran.
        self.yields = 0
        self._stats_at = time.monotonic()
        # the database thread's own state
        self._steps: FairBatches[_Step] = FairBatches()
        self._reads: deque[_Step] = deque()
        self._carried = False  # the last batch yielded: its rest waits already
        self._stopping = False

    # --- on the event loop --------------------------------------------------------------------

    async def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the database thread, between batches."""
        return await self._submit(fn, batched=False)  # type: ignore[no-any-return]

    async def run_in_batch(self, fn: Callable[[], T], *, peer: str = "",
                           pre: Callable[[], None] | None = None) -> T:
        """Run ``fn`` in the next batch; return its result once that batch is durable.
        ``pre`` (if given) runs first, on the database thread just before the batch's
        transaction opens (outside it and the writers' lock); it must not raise (if it
        does, the error is logged and ``fn`` still runs).

        If ``fn`` raises (a refusal), what it wrote commits with the batch and its error is
        raised once that is durable; if the batch's commit fails, the commit's error is
        raised.  Steps that must leave nothing behind on error use their own
        ``transaction()`` (a savepoint inside the batch).  ``peer`` (the requester's limits
        bucket; "" for the node's own work) is whom the batch is fair to.
        """
        return await self._submit(fn, batched=True, peer=peer,  # type: ignore[no-any-return]
                                  pre=pre)

    async def sync(self) -> None:
        """Wait until everything queued so far is durable (e.g. before a witness answers)."""
        await self.run_in_batch(lambda: None)

    async def _submit(self, fn: Callable[[], Any], *, batched: bool, peer: str = "",
                      pre: Callable[[], None] | None = None) -> Any:
        self.start()
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Step(fn, loop, fut, batched, peer, pre=pre))
        return await asyncio.shield(fut)

    def start(self) -> None:
        with self._start_lock:
            if not self._started:
                self._started = True
                self._thread.start()

    async def stop(self) -> None:
        """Run what is queued, commit it, then stop the database thread."""
        if not self._started:
            return
        self._queue.put(_STOP)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        log.info("writer_lock", **self.lock_report())

    def lock_report(self) -> dict[str, float | int]:
        """The serial section so far: batches, requests, their time, and the writers' lock
        (wait and hold, totals in ms and means per transaction that took it)."""
        times = getattr(self.store, "lock_times", None)
        lock = times if isinstance(times, LockTimes) else LockTimes()
        per = max(1, lock.held)
        return {"batches": self.batches, "requests": self.committed, "yields": self.yields,
                "batch_ms": round(self.batch_s * 1000, 1),
                "batch_cpu_ms": round(self.batch_cpu_s * 1000, 1),
                "preread_ms": round(self.preread_s * 1000, 1),
                "preread_cpu_ms": round(self.preread_cpu_s * 1000, 1),
                "lock_held": lock.held, "lock_wait_ms": round(lock.wait_s * 1000, 1),
                "lock_hold_ms": round(lock.hold_s * 1000, 1),
                "lock_wait_ms_mean": round(lock.wait_s * 1000 / per, 3),
                "lock_hold_ms_mean": round(lock.hold_s * 1000 / per, 3)}

    # --- on the database thread -----------------------------------------------------------------

    def _run(self) -> None:
        self.thread_id = threading.get_ident()
        while True:
            if not self._steps and not self._reads:
                if self._stopping:
                    return
                self._file(self._queue.get())  # nothing to do: wait for work
            self._drain()
            self._run_reads()
            if not self._steps:
                continue
            if not self._carried and not self._stopping:
                self._gather()
            self._carried = False
            self._commit(self._steps.take(self.batch_max))
            self._run_reads()

    def _file(self, item: _Step | object) -> None:
        if item is _STOP:
            self._stopping = True
            return
        assert isinstance(item, _Step)
        if item.batched:
            self._steps.add(item.peer, item)
        else:
            self._reads.append(item)

    def _drain(self) -> None:
        """File everything queued now, without waiting."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            self._file(item)

    def _run_reads(self) -> None:
        while self._reads:
            self._call(self._reads.popleft())

    def _gather(self) -> None:
        """Wait at most ``batch_ms`` for company, until ``batch_max`` steps wait.  Reads
        that arrive meanwhile run at once, outside the batch."""
        deadline = time.monotonic() + self.batch_ms / 1000
        while len(self._steps) < self.batch_max and not self._stopping:
            wait = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
            except queue.Empty:
                return
            self._file(item)
            self._run_reads()

    def _call(self, step: _Step) -> None:
        try:
            step.result = step.fn()
        except BaseException as exc:
            step.error = exc
        _release(step)

    def _commit(self, taken: list[tuple[str, _Step]]) -> None:
        batch = [step for _, step in taken]  # all get the error if the batch cannot open
        unrun = Counter(peer for peer, _ in taken)
        error: BaseException | None = None
        self._preread(batch, unrun)
        started = time.perf_counter()
        cpu = time.thread_time()
        try:
            with self.store.transaction():  # seal + sign checkpoint, then COMMIT (durable)
                for i, step in enumerate(batch):
                    try:
                        step.result = step.fn()
                    except Exception as exc:
                        step.error = exc
                    unrun[step.peer] -= 1
                    if i + 1 < len(taken) and self._yield_after(taken[i + 1:], unrun):
                        del batch[i + 1:]
                        break
        except BaseException as exc:
            fields = error_fields(exc)  # a driver's text can hold the batch's values
            log.error("audit_batch_commit_failed", requests=len(batch), **fields)
            error = exc
            self.commit_error = fields["error"]
        else:
            self.commit_error = None
            self.batches += 1
            self.committed += len(batch)
        took = time.perf_counter() - started
        self.batch_s += took
        self.batch_cpu_s += time.thread_time() - cpu
        self.metrics.batch_committed(size=len(batch), seconds=took, ok=error is None)
        if time.monotonic() - self._stats_at > _STATS_EVERY_S:
            self._stats_at = time.monotonic()
            log.debug("writer_lock", **self.lock_report())
        if error is not None:
            for step in batch:
                step.error = error
        _release_all(batch)

    def _preread(self, batch: list[_Step], unrun: Counter[str]) -> None:
        """Each step's ``pre`` (once), before the transaction opens, together in one
        ``Database.reading()`` (on PostgreSQL one read-only transaction, no lock).  Between
        two, what arrived is filed; once a peer outside the batch waits that the batch
        will yield to after its first step (:meth:`_yield_after`), the rest are left
        unread -- they read under the lock, or in the batch they are put back into -- so a
        newcomer does not wait for the reads of steps that run after it."""
        if not any(step.pre is not None for step in batch):
            return
        started, cpu = time.perf_counter(), time.thread_time()
        try:
            with self.store.reading():
                for i, step in enumerate(batch):
                    pre, step.pre = step.pre, None
                    if pre is None:
                        continue
                    if i:
                        self._drain()
                        if self._steps.yield_to(unrun):
                            step.pre = pre
                            break
                    try:
                        pre()
                    except Exception as exc:  # the step reads under the lock instead
                        log.error("batch_preread_failed", **error_fields(exc))
        except Exception as exc:  # the database would not even begin: the same
            log.error("batch_preread_failed", **error_fields(exc))
        self.preread_s += time.perf_counter() - started
        self.preread_cpu_s += time.thread_time() - cpu

    def _yield_after(self, rest: list[tuple[str, _Step]], unrun: Counter[str]) -> bool:
        """Between two steps: file what arrived; if a peer outside ``rest`` (the batch's
        unrun steps, ``unrun`` per peer) would wait behind too many of one peer's steps,
        put the rest back (True)."""
        self._drain()
        if not self._steps.yield_to(unrun):
            return False
        self._steps.put_back(rest)
        self._carried = True
        self.yields += 1
        return True


def _release(step: _Step) -> None:
    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
        step.loop.call_soon_threadsafe(_settle, step)


def _release_all(batch: list[_Step]) -> None:
    """A batch's steps, settled with one wake-up of each event loop they came from (not one
    each: every ``call_soon_threadsafe`` writes to the loop's self-pipe)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Step]] = {}
    for step in batch:
        by_loop.setdefault(step.loop, []).append(step)
    for loop, steps in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(_settle_each, steps)


def _settle_each(steps: list[_Step]) -> None:
    for step in steps:
        _settle(step)


def _settle(step: _Step) -> None:
    fut = step.future
    if fut.done():
        return
    if step.error is None:
        fut.set_result(step.result)
    else:
        fut.set_exception(step.error)
        fut.exception()  # retrieved: waiters re-raise it themselves
