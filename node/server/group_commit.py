"""Group commit on the database thread: many requests, one durable commit, one checkpoint.

The event loop never touches the database.  One dedicated thread (``bxnode-db``) owns the
node's :class:`~node.store.db.Database` connection, and everything that reads or writes it
runs there:

* :meth:`BatchWriter.run_in_batch` runs a step (a request's steps 7-11) inside the open
  batch — the first step of a batch opens the transaction, and each step's own
  ``transaction()`` nests as a SAVEPOINT in it — and returns only once the batch holding
  its writes has committed.  Nothing is sent before its audit entry is durable.
* :meth:`BatchWriter.call` runs a read (or a write that needs no durability wait) on the
  same thread, inside the open batch if there is one.

The batch commits when it holds ``batch_max`` steps or its first is ``batch_ms`` old:
the audit log seals the batch into the tree and signs one checkpoint just before
``COMMIT`` (``Database.before_commit``), the commit is durable, and only then are the
waiting steps released.  If the commit fails, every waiter of that batch gets the error
and none of their responses is sent.  While the database thread commits, the loop goes on
accepting and authenticating requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import structlog

from node.store.db import Database

__all__ = ["BatchWriter"]

log = structlog.get_logger("bxnode.audit.group_commit")

T = TypeVar("T")


class BatchWriter:
    def __init__(self, *, store: Database, batch_max: int = 256, batch_ms: int = 2) -> None:
        if batch_max < 1 or batch_ms < 0:
            raise ValueError("batch_max must be >= 1 and batch_ms >= 0")
        self._store = store
        self.store = store
        self.batch_max = batch_max
        self.batch_ms = batch_ms
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="bxnode-db")
        self.thread_id: int | None = None
        # Batch state: touched only on the database thread.
        self._stack: contextlib.ExitStack | None = None
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._count = 0
        self._batch_no = 0
        self._opened = 0.0
        self.batches = 0
        self.committed = 0

    # --- on the event loop --------------------------------------------------------------------

    async def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the database thread (inside the open batch, if any)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._on_thread, fn)

    async def run_in_batch(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` inside the open batch; return its result once the batch is durable.

        If ``fn`` raises (a refusal), what it wrote commits with the batch and its error is
        raised once that is durable; if the batch's commit fails, the commit's error is
        raised.  Steps that must leave nothing behind on error use their own
        ``transaction()`` (a savepoint inside the batch).
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        result, error, batch_no = await loop.run_in_executor(self._pool, self._join, fn, loop,
                                                             done)
        if batch_no is not None and self.batch_ms > 0:
            loop.call_later(self.batch_ms / 1000, self._commit_soon, batch_no)
        elif batch_no is not None:
            self._commit_soon(batch_no)
        await asyncio.shield(done)
        if error is not None:
            raise error
        return result  # type: ignore[return-value]

    async def sync(self) -> None:
        """Commit whatever is open now and wait for it (e.g. before a witness answers)."""
        await self.run_in_batch(lambda: None)

    def _commit_soon(self, batch_no: int) -> None:
        with contextlib.suppress(RuntimeError):  # the pool is shut down: stop() committed
            self._pool.submit(self._commit_if, batch_no)

    def start(self) -> None:
        """Nothing to start: the database thread exists from construction on."""

    async def stop(self) -> None:
        """Commit the open batch, then stop the database thread."""
        await self.call(self._commit)
        self._pool.shutdown(wait=True)

    # --- on the database thread -----------------------------------------------------------------

    def _on_thread(self, fn: Callable[[], T]) -> T:
        self.thread_id = threading.get_ident()
        return fn()

    def _join(self, fn: Callable[[], T], loop: asyncio.AbstractEventLoop,
              done: asyncio.Future[None]) -> tuple[T | None, BaseException | None, int | None]:
        """Run one step in the batch (opening one if needed).  Returns its result or the
        error it raised, and, for the step that opened the batch, the batch's number (the
        loop arms its timer).  A step that raises is a refusal: whatever it wrote (its
        audit entry) commits with the batch, and the error reaches its caller only then."""
        self.thread_id = threading.get_ident()
        opened: int | None = None
        if self._stack is None:
            stack = contextlib.ExitStack()
            stack.enter_context(self._store.transaction())
            self._stack = stack
            self._waiters, self._count = [], 0
            self._batch_no += 1
            self._opened = time.monotonic()
            opened = self._batch_no
        result: T | None = None
        error: BaseException | None = None
        try:
            result = fn()
        except Exception as exc:
            error = exc
        self._waiters.append((loop, done))
        self._count += 1
        if self._count >= self.batch_max:
            self._commit()
            opened = None
        return result, error, opened

    def _commit_if(self, batch_no: int) -> None:
        if self._stack is not None and self._batch_no == batch_no:
            self._commit()

    def _commit(self) -> None:
        stack, waiters, count = self._stack, self._waiters, self._count
        self._stack, self._waiters, self._count = None, [], 0
        if stack is None:
            return
        error: BaseException | None = None
        try:
            stack.close()  # seal + sign checkpoint, then COMMIT (durable)
        except BaseException as exc:
            log.error("audit_batch_commit_failed", error=str(exc), requests=count)
            error = exc
        else:
            self.batches += 1
            self.committed += count
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_settle, fut, error)
        if error is not None and not isinstance(error, Exception):
            raise error


def _settle(fut: asyncio.Future[Any], error: BaseException | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)
        fut.exception()  # retrieved: waiters re-raise it themselves
