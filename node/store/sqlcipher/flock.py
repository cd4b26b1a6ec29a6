"""The writers' queue of one database file: an exclusive ``flock`` on ``<db>.lock``, waited
for at most the busy timeout.

bxnode's writers of a file (``serve --workers``, the CLI beside a running node) queue on a
flock before ``BEGIN IMMEDIATE``: the kernel hands it to the next waiter the moment it is
released, where SQLite's busy handler sleeps and polls.  But a blocking ``flock()`` has no
timeout, and a writer that holds it and stops (a process suspended, or hung on its disk)
would then stop every other writer of the file for good: the node would answer no peer,
without saying why.

So :class:`WriterFlock` tries without blocking first (the common case: no thread, no
cost), and on contention one helper thread per file blocks in ``flock()`` while the writer
waits at most ``timeout_s`` for it, then fails with ``database_locked`` (UNAVAILABLE), as
a statement that waits longer than ``[storage] busy_timeout_s`` for SQLite's lock does.
The helper's pending ``flock()`` is not wasted: the next writer that asks waits for the
same one, and if nobody wants it by the time it comes, the helper gives it back at once.
The helper holds its own duplicate of the descriptor (one open file description, so one
lock), which it closes when done: closing the store meanwhile cannot hand the helper a
reused descriptor number.
"""

from __future__ import annotations

import fcntl
import os
import threading

from node.core.errors import EnvironmentFault

__all__ = ["WriterFlock"]


class WriterFlock:
    """``acquire()`` / ``release()`` of an exclusive flock on a lock file, waited for at
    most ``timeout_s``.  One owner at a time (the store's); safe against its own helper."""

    def __init__(self, fd: int, timeout_s: float) -> None:
        self._fd = fd
        self.timeout_s = timeout_s
        self._mutex = threading.Lock()
        self._got = threading.Event()  # the helper holds the flock for a waiting writer
        self._pending = False  # a helper is blocked in flock()
        self._wanted = False  # a writer waits for the helper's flock
        self._closed = False

    @classmethod
    def open(cls, path: str, timeout_s: float) -> WriterFlock | None:
        """The lock file at ``path`` (created 0600); None where it cannot be opened (a
        read-only place: SQLite's own lock still guards the database)."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        return cls(fd, timeout_s)

    def acquire(self) -> None:
        with self._mutex:
            if self._closed:
                raise RuntimeError("the writers' lock file is closed")
            if not self._pending:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return
                except BlockingIOError:
                    pass
                self._pending = True
                self._got.clear()
                helper_fd = os.dup(self._fd)
                threading.Thread(target=self._wait, args=(helper_fd,), daemon=True,
                                 name="bxnode-db-flock").start()
            self._wanted = True
        if self._got.wait(self.timeout_s):
            return
        with self._mutex:
            if self._got.is_set():  # it came while the wait ended
                return
            self._wanted = False
        raise EnvironmentFault(
            f"database: another writer has held the database's lock for longer than "
            f"{self.timeout_s:g} s ([storage] busy_timeout_s)", reason="database_locked")

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Close the lock file (releasing the flock if held); a pending helper hands its
        flock to nobody."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            self._wanted = False
        os.close(self._fd)

    def _wait(self, fd: int) -> None:
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError:  # the next writer tries again itself
                with self._mutex:
                    self._pending = False
                return
            with self._mutex:
                self._pending = False
                if self._wanted and not self._closed:
                    self._wanted = False
                    self._got.set()
                    return
                fcntl.flock(fd, fcntl.LOCK_UN)  # the writer gave up: nobody wants it now
        finally:
            os.close(fd)
