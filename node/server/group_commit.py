"""Group commit for the aio server: many requests, one durable commit, one signed checkpoint.

The node's store is one SQLCipher connection used from the event loop.  The writer opens
a transaction when the first request of a batch arrives; each request then runs in its own
SAVEPOINT inside it (``Store.transaction()`` nests), and its handler awaits
:meth:`BatchWriter.durable` before it sends anything.  The writer task commits when the
batch holds ``batch_max`` requests or its first is ``batch_ms`` old: the audit log seals the
batch into the tree and signs one checkpoint just before ``COMMIT`` (``Store.before_commit``),
the commit is durable (WAL, ``synchronous=FULL``), and only then are the waiting responses
released.  If the commit fails, every waiter gets the error and no response of the batch is
sent.  Between batches no transaction is open, so other processes (the CLI) can write.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from node.store.sqlcipher import Store

__all__ = ["BatchWriter"]

log = structlog.get_logger("bxnode.audit.group_commit")


class BatchWriter:
    def __init__(self, *, store: Store, batch_max: int = 256, batch_ms: int = 2) -> None:
        if batch_max < 1 or batch_ms < 0:
            raise ValueError("batch_max must be >= 1 and batch_ms >= 0")
        self._store = store
        self.batch_max = batch_max
        self.batch_ms = batch_ms
        self._stack: contextlib.ExitStack | None = None
        self._done: asyncio.Future[None] | None = None
        self._count = 0
        self._opened = 0.0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.committed = 0

    # --- request side (on the event loop) -------------------------------------------------

    def begin(self) -> asyncio.Future[None]:
        """Join the open batch (opening one if needed); returns the batch's durability future."""
        if self._stack is None:
            if self._store.in_transaction:
                raise RuntimeError("the store already has a transaction open")
            stack = contextlib.ExitStack()
            stack.enter_context(self._store.transaction())
            self._stack = stack
            self._done = asyncio.get_running_loop().create_future()
            self._count = 0
            self._opened = time.monotonic()
            if self._wake is not None:
                self._wake.set()
        assert self._done is not None
        return self._done

    def added(self) -> None:
        """One more request is in the batch; a full batch commits at once."""
        self._count += 1
        if self._count >= self.batch_max:
            self.commit()

    async def durable(self, done: asyncio.Future[None]) -> None:
        """Return once the batch ``done`` belongs to has committed; raise if it failed."""
        if self._task is None:  # no writer task running: commit now
            self.commit()
        await asyncio.shield(done)

    async def sync(self) -> None:
        """Commit whatever is open now and wait for it (e.g. before a witness answers)."""
        if self._stack is not None:
            done = self._done
            self.commit()
            assert done is not None
            await asyncio.shield(done)

    # --- writer side ------------------------------------------------------------------------

    def commit(self) -> None:
        stack, done, count = self._stack, self._done, self._count
        self._stack, self._done, self._count = None, None, 0
        if stack is None or done is None:
            return
        try:
            stack.close()  # seal + sign checkpoint, then COMMIT (durable)
        except BaseException as exc:
            log.error("audit_batch_commit_failed", error=str(exc), requests=count)
            if not done.done():
                done.set_exception(exc)
                done.exception()  # retrieved: waiters re-raise it themselves
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        self.committed += count
        if not done.done():
            done.set_result(None)

    async def run(self) -> None:
        self._wake = asyncio.Event()
        try:
            while True:
                if self._stack is None:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                age_ms = (time.monotonic() - self._opened) * 1000
                if self._count >= self.batch_max or age_ms >= self.batch_ms:
                    self.commit()
                    await asyncio.sleep(0)  # let the released handlers send
                    continue
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(),
                                           (self.batch_ms - age_ms) / 1000)
        finally:
            self._wake = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        """Commit the open batch and stop the writer task."""
        self.commit()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
